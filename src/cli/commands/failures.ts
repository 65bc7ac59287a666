/**
 * `failures list` and `failures retry`: the dead letters of GET /v1/failures
 * and POST /v1/failures:retry, for an operator at a terminal or a script.
 */
import type { Register } from '../context.ts';
import { ExitCodes, UsageError } from '../errors.ts';

export const registerFailures: Register = (program, run) => {
  const failures = program.command('failures').description('messages that failed for good: list them, re-drive them');

  failures
    .command('list')
    .description('list failed messages, newest first, with their reason')
    .option('--reason <code>', 'only this error code (RBM_API, RBM_NETWORK, SMS_PROVIDER, ...)')
    .option('--limit <n>', 'at most this many (1-1000)', '100')
    .option('--before <ms>', "only failures before this time (ms epoch): the previous page's `next`")
    .addHelpText('after', '\nA full page ends with "next <ms>": pass it as --before for the next page (with --json: the "next" field).')
    .action((opts: { reason?: string; limit: string; before?: string }, cmd) =>
      run(cmd, async ({ api, out }) => {
        const limit = Number(opts.limit);
        if (!Number.isInteger(limit) || limit < 1 || limit > 1000)
          throw new UsageError(`--limit: expected a whole number from 1 to 1000, got '${opts.limit}'`);
        const before = opts.before === undefined ? undefined : Number(opts.before);
        if (before !== undefined && (!Number.isSafeInteger(before) || before < 1))
          throw new UsageError(`--before: expected a time in ms since the epoch (a page's next), got '${opts.before}'`);
        const list = await api().listFailures({
          ...(opts.reason ? { reason: opts.reason } : {}),
          limit,
          ...(before !== undefined ? { before } : {}),
        });
        const lines = list.failures.map(
          (f) => `${f.messageId} ${f.state} ${f.reason} ${f.to} ${new Date(f.failedAt).toISOString()} ${f.message}`,
        );
        out.result(list, lines.length === 0 ? ['no failures'] : list.next === undefined ? lines : [...lines, `next ${list.next}`]);
        return ExitCodes.OK;
      }),
    );

  failures
    .command('retry [messageIds...]')
    .description('re-drive failed messages: the send again (same messageId), or the SMS again')
    .option('--reason <code>', 'every failure with this error code instead of a list of IDs')
    .addHelpText('after', '\nExit 1 when any message could not be re-driven (the reasons are printed).')
    .action((messageIds: string[], opts: { reason?: string }, cmd) =>
      run(cmd, async ({ api, out }) => {
        if ((messageIds.length === 0) === (opts.reason === undefined)) {
          throw new UsageError('expected message IDs or --reason, not both and not neither');
        }
        const result = await api().retryFailures(opts.reason ? { reason: opts.reason } : { messageIds });
        out.result(result, [`retried ${result.retried.length}`, ...result.skipped.map((s) => `skipped ${s.messageId}: ${s.why}`)]);
        return result.skipped.length === 0 ? ExitCodes.OK : ExitCodes.SERVICE;
      }),
    );
};
