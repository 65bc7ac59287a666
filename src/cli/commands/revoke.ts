/**
 * `revoke`: DELETE /v1/messages/:id, optionally queueing the SMS fallback.
 * 404 exits 3 (unknown message), 409 exits 4 (being sent, delivered, final).
 */
import type { Register } from '../context.ts';
import { ApiError, CliErrorCodes, ExitCodes } from '../errors.ts';

export const registerRevoke: Register = (program, run) => {
  program
    .command('revoke <messageId>')
    .description('take back a message not yet delivered')
    .option('--fallback', "send the message's SMS fallback instead", false)
    .addHelpText('after', '\nA message being sent right now, already delivered, or in a final state cannot be revoked (exit 4).')
    .action((messageId: string, opts: { fallback: boolean }, cmd) =>
      run(cmd, async ({ api, out }) => {
        try {
          const revoked = await api().revoke(messageId, opts.fallback);
          out.result(revoked, [`${revoked.messageId} ${revoked.state}${revoked.fallback ? ', SMS fallback queued' : ''}`]);
          return ExitCodes.OK;
        } catch (err) {
          if (err instanceof ApiError && err.status === 404) throw err.as(CliErrorCodes.NOT_FOUND, ExitCodes.NOT_FOUND);
          if (err instanceof ApiError && err.status === 409) throw err.as(CliErrorCodes.REVOKE_NOT_POSSIBLE, ExitCodes.REVOKE_NOT_POSSIBLE);
          throw err;
        }
      }),
    );
};
