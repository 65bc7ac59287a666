/**
 * `batch <file>`: every line of a CSV or JSONL file checked first (one bad
 * line: exit 2, nothing sent), then sent in chunks to /v1/messages:batch and
 * /v1/events:batch, streaming the file twice rather than holding it. A refused
 * chunk stops the run; the summary says what was queued before it (exit 1).
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { Option } from 'commander';
import cliProgress from 'cli-progress';
import type { SendEventInput } from '../../../jobs/send-event.ts';
import type { SendMessageInput } from '../../../jobs/send-message.ts';
import { intOption, type CommandContext, type Register } from '../context.ts';
import { CliError, CliErrorCodes, ExitCodes, InputError, MAX_DETAILS, UsageError, type Detail, type ExitCode } from '../errors.ts';
import { CSV_COLUMNS, formatFromPath, parseInput, type InputFormat, type ParsedLine } from '../input.ts';

/** The API's limit per call. */
const MAX_CHUNK = 10_000;

export interface BatchSummary {
  file: string;
  format: InputFormat;
  linesRead: number;
  messagesQueued: number;
  eventsQueued: number;
  /** Items the service already had (same key or ID): not queued again. */
  duplicates: number;
  batchIds: string[];
  /** Items not queued because the run stopped. */
  failed: number;
  error?: { code: string; message: string; details: readonly Detail[]; problemCount: number };
}

interface BatchOptions {
  format?: InputFormat;
  chunkSize: number;
  idempotencyKey?: string;
}

const FORMAT_HELP = `
Input:
  .csv            a header row, then one text message a row; columns ${CSV_COLUMNS.slice(0, 2).join(',')} and optionally
                  ${CSV_COLUMNS.slice(2).join(', ')}
  .jsonl/.ndjson  one JSON object a line: a message as POST /v1/messages takes it, or an
                  agent event { "to", "eventType": "READ", "messageId" } (goes to /v1/events:batch)

Re-running safely: with --idempotency-key BASE every line without a key of its own gets
BASE:line-N, and every chunk the Idempotency-Key BASE:messages-I (or BASE:events-I), so running
the same file again with the same BASE queues nothing twice, whatever --chunk-size. Line numbers
are the keys: edit a file only by appending to it. Without the option a re-run sends everything again.`;

export const registerBatch: Register = (program, run) => {
  program
    .command('batch <file>')
    .description('queue every message (and READ receipt) of a CSV or JSONL file, in chunks')
    .addOption(new Option('--format <format>', 'input format (default: from the extension)').choices(['csv', 'jsonl']))
    .option('--chunk-size <n>', `items per API call (1–${MAX_CHUNK})`, intOption('--chunk-size', 1, MAX_CHUNK), 1000)
    .option('--idempotency-key <base>', 'derive per-line and per-chunk keys from BASE, so a re-run queues nothing twice')
    .addHelpText('after', FORMAT_HELP)
    .action((file: string, opts: BatchOptions, cmd) => run(cmd, (ctx) => batch(ctx, file, opts)));
};

async function batch(ctx: CommandContext, file: string, opts: BatchOptions): Promise<ExitCode> {
  const format = opts.format ?? formatFromPath(file);
  if (!format) throw new UsageError(`cannot tell the format of '${file}': name it .csv, .jsonl or .ndjson, or give --format`);
  const size = await stat(file).then(
    (s) => (s.isFile() ? s.size : -1),
    () => -1,
  );
  if (size < 0) throw new UsageError(`cannot read '${file}': not a file`);
  const read = () => parseInput(createReadStream(file), { format, idempotencyBase: opts.idempotencyKey });

  // Pass 1: every line checked before anything is sent. Lines come in file
  // order, so the first problems kept are the first in the file; a file of
  // a million bad lines is counted, not held.
  const problems: Detail[] = [];
  let problemCount = 0;
  let badLines = 0;
  let items = 0;
  for await (const parsed of read()) {
    if (parsed.kind !== 'invalid') {
      items += 1;
      continue;
    }
    badLines += 1;
    problemCount += parsed.problems.length;
    for (const p of parsed.problems.slice(0, MAX_DETAILS - problems.length))
      problems.push({ path: `line ${parsed.line}${p.path ? `: ${p.path}` : ''}`, problem: p.problem });
  }
  if (problemCount > 0) {
    throw new InputError(
      `${file}: ${badLines} bad line${badLines === 1 ? '' : 's'}; nothing was sent`,
      problems.sort((a, b) => lineOf(a) - lineOf(b)),
      problemCount,
    );
  }
  if (items === 0) throw new UsageError(`${file} has no messages or events; nothing was sent`);

  const summary: BatchSummary = {
    file,
    format,
    linesRead: items,
    messagesQueued: 0,
    eventsQueued: 0,
    duplicates: 0,
    batchIds: [],
    failed: 0,
  };
  const bar = ctx.out.interactive
    ? new cliProgress.SingleBar(
        { stream: ctx.out.stderr, format: 'queueing [{bar}] {value}/{total} {percentage}% | ETA {eta_formatted}', hideCursor: true },
        cliProgress.Presets.shades_classic,
      )
    : undefined;
  bar?.start(items, 0);
  const stop = ctx.stopSignal();
  let accepted = 0;
  let halted: CliError | undefined;
  try {
    await sendAll(ctx, read(), opts, stop, (kind, result) => {
      accepted += result.count;
      summary.duplicates += result.duplicates;
      if (kind === 'messages') summary.messagesQueued += result.count - result.duplicates;
      else summary.eventsQueued += result.count - result.duplicates;
      if (result.batchId && !summary.batchIds.includes(result.batchId)) summary.batchIds.push(result.batchId);
      bar?.update(accepted);
    });
  } catch (err) {
    if (!(err instanceof CliError)) throw err;
    halted = err;
  } finally {
    bar?.stop();
  }
  summary.failed = items - accepted;
  if (halted) summary.error = { code: halted.code, message: halted.message, details: halted.details, problemCount: halted.problemCount };
  ctx.out.result(summary, summaryLines(summary, opts));
  if (halted && !ctx.globals.json) ctx.out.error(halted);
  return halted ? (halted.exitCode === ExitCodes.INTERRUPTED ? ExitCodes.INTERRUPTED : ExitCodes.SERVICE) : ExitCodes.OK;
}

type Chunk = { lines: number[]; items: unknown[] };

/** Pass 2: chunks per kind, sent one at a time in file order, so a refusal stops at a known place. */
async function sendAll(
  ctx: CommandContext,
  lines: AsyncIterable<ParsedLine>,
  opts: BatchOptions,
  stop: AbortSignal,
  done: (kind: 'messages' | 'events', result: { count: number; duplicates: number; batchId?: string }) => void,
): Promise<void> {
  const chunks = { messages: { lines: [], items: [] } as Chunk, events: { lines: [], items: [] } as Chunk };
  const index = { messages: 0, events: 0 };
  const flush = async (kind: 'messages' | 'events') => {
    const chunk = chunks[kind];
    if (chunk.items.length === 0) return;
    if (stop.aborted) throw new CliError(CliErrorCodes.INTERRUPTED, ExitCodes.INTERRUPTED, 'stopped by a signal between chunks');
    const key = opts.idempotencyKey === undefined ? undefined : `${opts.idempotencyKey}:${kind}-${index[kind]}`;
    index[kind] += 1;
    try {
      if (kind === 'messages') {
        const r = await ctx.api().sendMessages(chunk.items as SendMessageInput[], key);
        done(kind, { count: r.messageIds.length, duplicates: r.duplicates, batchId: r.batchId });
      } else {
        const r = await ctx.api().sendEvents(chunk.items as SendEventInput[], key);
        done(kind, { count: r.eventIds.length, duplicates: r.duplicates });
      }
    } catch (err) {
      throw err instanceof CliError ? withFileLines(err, kind, chunk.lines) : err;
    }
    chunks[kind] = { lines: [], items: [] };
  };
  for await (const parsed of lines) {
    // The file changed between the passes: stop rather than send what was never checked.
    if (parsed.kind === 'invalid')
      throw new CliError(CliErrorCodes.INPUT_CHANGED, ExitCodes.SERVICE, `line ${parsed.line} changed since the file was checked; stopped`);
    const kind = parsed.kind === 'message' ? 'messages' : 'events';
    chunks[kind].lines.push(parsed.line);
    chunks[kind].items.push(parsed.item);
    if (chunks[kind].items.length >= opts.chunkSize) await flush(kind);
  }
  await flush('messages');
  await flush('events');
}

/** "messages.37.to" in the API's answer → "line 412: to", the place in the file to fix. */
function withFileLines(err: CliError, kind: string, lines: readonly number[]): CliError {
  const details = err.details.map((d) => {
    const m = new RegExp(`^${kind}\\.(\\d+)(?:\\.(.*))?$`).exec(d.path);
    const line = m ? lines[Number(m[1])] : undefined;
    return line === undefined ? d : { path: `line ${line}${m![2] ? `: ${m![2]}` : ''}`, problem: d.problem };
  });
  return err.withDetails(details);
}

function lineOf(d: Detail): number {
  return Number(/^line (\d+)/.exec(d.path)?.[1] ?? 0);
}

function summaryLines(s: BatchSummary, opts: BatchOptions): string[] {
  const n = (x: number) => x.toLocaleString('en-US');
  const rerun = opts.idempotencyKey
    ? '; re-run with the same --idempotency-key to queue only the rest'
    : '; without --idempotency-key a re-run sends everything again';
  return [
    `lines read       ${n(s.linesRead)}`,
    `messages queued  ${n(s.messagesQueued)}`,
    `events queued    ${n(s.eventsQueued)}`,
    `duplicates       ${n(s.duplicates)}${s.duplicates > 0 ? ' (already queued before: not sent again)' : ''}`,
    `batches          ${s.batchIds.length}${s.batchIds.length > 0 ? `: ${s.batchIds.join(' ')}` : ''}`,
    `failed           ${n(s.failed)}${s.failed > 0 ? ` (not queued: the run stopped${rerun})` : ''}`,
  ];
}
