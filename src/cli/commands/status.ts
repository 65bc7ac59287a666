/**
 * `status`: a message's state and timeline (GET /v1/messages/:id); with
 * --watch, polls and prints each new timeline entry until a final state.
 * An unknown message exits 3.
 */
import type { MessageStatus, TimelineEntry } from '../api-client.ts';
import { intOption, type CommandContext, type Register } from '../context.ts';
import { ApiError, CliErrorCodes, ExitCodes, type ExitCode } from '../errors.ts';

/** Nothing moves a message out of these (a late DELIVERED/READ aside). */
const FINAL = new Set(['READ', 'FAILED', 'FALLBACK_SENT', 'FALLBACK_FAILED', 'EXPIRED', 'REVOKED', 'NOT_RCS']);
/**
 * Final unless the message has an SMS fallback, which the service queues a
 * moment later; the record does not say whether it has one, so wait a little.
 */
const MAY_FALL_BACK = new Set(['EXPIRED', 'REVOKED', 'NOT_RCS']);
const FALLBACK_SETTLE_MS = 3000;

export const registerStatus: Register = (program, run) => {
  program
    .command('status <messageId>')
    .description("a message's state and timeline")
    .option('--watch', `poll until a final state (${[...FINAL].join(', ')}) or Ctrl-C`, false)
    .option('--interval <ms>', 'polling interval for --watch', intOption('--interval', 50, 60_000), 1000)
    .addHelpText('after', '\nWith --json: the status object; with --watch, one status object a line each time it changes.')
    .action((messageId: string, opts: { watch: boolean; interval: number }, cmd) =>
      run(cmd, (ctx) => (opts.watch ? watch(ctx, messageId, opts.interval) : once(ctx, messageId))),
    );
};

async function fetchStatus(ctx: CommandContext, messageId: string): Promise<MessageStatus> {
  try {
    return await ctx.api().getStatus(messageId);
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) throw err.as(CliErrorCodes.NOT_FOUND, ExitCodes.NOT_FOUND);
    throw err;
  }
}

async function once(ctx: CommandContext, messageId: string): Promise<ExitCode> {
  const status = await fetchStatus(ctx, messageId);
  ctx.out.result(status, [...summaryLines(status), 'timeline:', ...status.timeline.map(entryLine)]);
  return ExitCodes.OK;
}

async function watch(ctx: CommandContext, messageId: string, intervalMs: number): Promise<ExitCode> {
  const stop = ctx.stopSignal();
  let status = await fetchStatus(ctx, messageId);
  ctx.out.result(status, [...summaryLines(status), 'timeline:', ...status.timeline.map(entryLine)]);
  let shown = status.timeline.length;
  let settleUntil: number | undefined;
  for (;;) {
    if (FINAL.has(status.state)) {
      if (!MAY_FALL_BACK.has(status.state)) return ExitCodes.OK;
      settleUntil ??= Date.now() + FALLBACK_SETTLE_MS;
      if (Date.now() >= settleUntil) return ExitCodes.OK;
    } else {
      settleUntil = undefined;
    }
    if (await sleep(intervalMs, stop)) return ExitCodes.INTERRUPTED;
    const next = await fetchStatus(ctx, messageId);
    if (next.timeline.length !== shown || next.state !== status.state) {
      ctx.out.result(next, next.timeline.slice(shown).map(entryLine));
      shown = next.timeline.length;
    }
    status = next;
  }
}

function summaryLines(s: MessageStatus): string[] {
  return [
    `messageId  ${s.messageId}`,
    `state      ${s.state}`,
    `agent      ${s.agentId}`,
    `to         ${s.to}`,
    ...(s.batchId ? [`batch      ${s.batchId}`] : []),
    ...(s.attempts !== undefined ? [`attempts   ${s.attempts}`] : []),
    ...(s.lastError ? [`last error ${s.lastError.code}: ${s.lastError.message}`] : []),
  ];
}

function entryLine(e: TimelineEntry): string {
  const why = [e.event && e.event !== e.state ? `event ${e.event}` : '', e.detail ?? ''].filter(Boolean).join(', ');
  return `  ${new Date(e.at).toISOString()}  ${e.state.padEnd(17)}${why ? ` ${why}` : ''}`.trimEnd();
}

/** Resolves true when the signal fired first. */
function sleep(ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve(false);
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      resolve(true);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
