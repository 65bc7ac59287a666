/**
 * Input files for `batch`: CSV (a header row; one simple text message a row)
 * or JSONL (one API message, or agent event, a line), parsed as a stream into
 * validated items that keep their line number. Validation uses the service's
 * own schemas (jobs/), so a file that passes here is refused by no schema there.
 */
import { Readable } from 'node:stream';
import { createInterface } from 'node:readline';
import { extname } from 'node:path';
import { parse as parseCsv, type CsvError } from 'csv-parse';
import { validate, type Problem } from '../../jobs/common.ts';
import { checkInputTiming, sendMessageInput, type SendMessageInput } from '../../jobs/send-message.ts';
import { sendEventInput, type SendEventInput } from '../../jobs/send-event.ts';

export const InputFormats = { csv: 'csv', jsonl: 'jsonl' } as const;
export type InputFormat = (typeof InputFormats)[keyof typeof InputFormats];

export type ParsedLine =
  | { line: number; kind: 'message'; item: SendMessageInput }
  | { line: number; kind: 'event'; item: SendEventInput }
  | { line: number; kind: 'invalid'; problems: Problem[] };

export interface ParseOptions {
  format: InputFormat;
  /** Lines with no key of their own get `lineKey(base, line)`, so a re-run queues nothing twice. */
  idempotencyBase?: string | undefined;
  /** Clock for expireTime checks (ms epoch). */
  now?: number;
}

/** The flags of `send` and the columns of a CSV row: one text message with the usual options. */
export interface SimpleMessage {
  to: string;
  text: string;
  agentId?: string | undefined;
  trafficType?: string | undefined;
  ttl?: string | undefined;
  smsFallback?: string | undefined;
  idempotencyKey?: string | undefined;
}

export const CSV_COLUMNS = ['to', 'text', 'agentId', 'trafficType', 'ttl', 'smsFallback', 'idempotencyKey'] as const;
type CsvColumn = (typeof CSV_COLUMNS)[number];
const REQUIRED_COLUMNS: readonly CsvColumn[] = ['to', 'text'];
/** Message field paths back to the CSV column a user can fix. */
const COLUMN_OF_PATH: Readonly<Record<string, CsvColumn>> = {
  to: 'to',
  contentMessage: 'text',
  'contentMessage.text': 'text',
  agentId: 'agentId',
  messageTrafficType: 'trafficType',
  ttl: 'ttl',
  fallback: 'smsFallback',
  'fallback.sms.text': 'smsFallback',
  idempotencyKey: 'idempotencyKey',
};

export function formatFromPath(path: string): InputFormat | undefined {
  const ext = extname(path).toLowerCase();
  if (ext === '.csv') return 'csv';
  if (ext === '.jsonl' || ext === '.ndjson') return 'jsonl';
  return undefined;
}

export function lineKey(base: string, line: number): string {
  return `${base}:line-${line}`;
}

/**
 * A friendlier TTL: "90" or "90s" → "90s", "10m" → "600s", "2h", "1d". RBM
 * wants seconds ("600s"); anything else passes through for the schema to report.
 */
export function normalizeTtl(value: string): string {
  const m = /^(\d+(?:\.\d+)?)\s*([smhd]?)$/.exec(value.trim());
  if (!m) return value;
  const seconds = Number(m[1]) * ({ '': 1, s: 1, m: 60, h: 3600, d: 86_400 } as const)[m[2] as '' | 's' | 'm' | 'h' | 'd'];
  return `${Number.isInteger(seconds) ? seconds : seconds.toFixed(3).replace(/0+$/, '')}s`;
}

/** The API message for a simple one; empty options are left out. */
export function simpleMessage(m: SimpleMessage): Record<string, unknown> {
  const given = (v: string | undefined): v is string => v !== undefined && v !== '';
  return {
    to: m.to,
    contentMessage: { text: m.text },
    ...(given(m.agentId) ? { agentId: m.agentId } : {}),
    ...(given(m.trafficType) ? { messageTrafficType: m.trafficType.toUpperCase() } : {}),
    ...(given(m.ttl) ? { ttl: normalizeTtl(m.ttl) } : {}),
    ...(given(m.smsFallback) ? { fallback: { sms: { text: m.smsFallback } } } : {}),
    ...(given(m.idempotencyKey) ? { idempotencyKey: m.idempotencyKey } : {}),
  };
}

/** Every problem the service would find with a message (but an unknown agent, which only it knows). */
export function checkMessage(raw: unknown, now = Date.now()): { ok: true; value: SendMessageInput } | { ok: false; problems: Problem[] } {
  const checked = validate(sendMessageInput, raw);
  if (!checked.ok) return checked;
  const timing = checkInputTiming(checked.value, now);
  // The schemas never transform a value: the input is what gets sent.
  return timing.length > 0 ? { ok: false, problems: timing } : { ok: true, value: raw as SendMessageInput };
}

export function checkEvent(raw: unknown): { ok: true; value: SendEventInput } | { ok: false; problems: Problem[] } {
  const checked = validate(sendEventInput, raw);
  return checked.ok ? { ok: true, value: raw as SendEventInput } : checked;
}

export function parseInput(source: Readable | string, options: ParseOptions): AsyncGenerator<ParsedLine> {
  const stream = typeof source === 'string' ? Readable.from([source]) : source;
  return options.format === 'csv' ? parseCsvLines(stream, options) : parseJsonLines(stream, options);
}

async function* parseJsonLines(stream: Readable, options: ParseOptions): AsyncGenerator<ParsedLine> {
  const now = options.now ?? Date.now();
  let line = 0;
  for await (const raw of createInterface({ input: stream, crlfDelay: Infinity })) {
    line += 1;
    const text = line === 1 ? raw.replace(/^\ufeff/, '') : raw;
    if (text.trim() === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (err) {
      yield { line, kind: 'invalid', problems: [{ path: '', problem: `not JSON: ${(err as Error).message}` }] };
      continue;
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      yield {
        line,
        kind: 'invalid',
        problems: [
          {
            path: '',
            problem: `expected a JSON object (a message or an event), got ${Array.isArray(value) ? 'an array' : JSON.stringify(value)}`,
          },
        ],
      };
      continue;
    }
    const obj = value as Record<string, unknown>;
    // An agent event names its eventType; a message never has one.
    const isEvent = 'eventType' in obj;
    const ownId = isEvent ? obj.eventId : obj.messageId;
    const item =
      options.idempotencyBase !== undefined && obj.idempotencyKey === undefined && ownId === undefined
        ? { ...obj, idempotencyKey: lineKey(options.idempotencyBase, line) }
        : obj;
    const checked = isEvent ? checkEvent(item) : checkMessage(item, now);
    if (!checked.ok) yield { line, kind: 'invalid', problems: checked.problems };
    else if (isEvent) yield { line, kind: 'event', item: checked.value as SendEventInput };
    else yield { line, kind: 'message', item: checked.value as SendMessageInput };
  }
}

/** "Agent ID", "agent_id", "agentid" → agentId: spreadsheets rename headers freely. */
function canonicalColumn(name: string): CsvColumn | undefined {
  const flat = name.toLowerCase().replace(/[\s_-]/g, '');
  return CSV_COLUMNS.find((c) => c.toLowerCase() === flat);
}

async function* parseCsvLines(stream: Readable, options: ParseOptions): AsyncGenerator<ParsedLine> {
  const now = options.now ?? Date.now();
  const headerProblems: Problem[] = [];
  const syntax: Array<{ line: number; problem: string }> = [];
  const parser = stream.pipe(
    parseCsv({
      bom: true,
      trim: true,
      skip_empty_lines: true,
      // A broken row is reported with its line and the rest still checked, so one run lists every problem.
      skip_records_with_error: true,
      on_skip: (err: CsvError | undefined) => {
        if (err) syntax.push({ line: (err as CsvError & { lines?: number }).lines ?? 0, problem: err.message });
      },
      columns: (header: string[]) => {
        const names = header.map((h) => canonicalColumn(h));
        header.forEach((h, i) => {
          if (names[i] === undefined) headerProblems.push({ path: h, problem: `unknown column: expected ${CSV_COLUMNS.join(', ')}` });
        });
        for (const c of REQUIRED_COLUMNS)
          if (!names.includes(c)) headerProblems.push({ path: c, problem: 'missing column: every CSV needs to and text' });
        return names.map((n, i) => n ?? `unknown:${i}`);
      },
      // Runs in step with on_skip, so the broken rows before this one come with it, in file order.
      on_record: (record: Record<string, string>, ctx: { lines: number }) => ({ line: ctx.lines, record, skipped: syntax.splice(0) }),
    }),
  );
  let lastBroken = 0;
  const broken = function* (skipped: Array<{ line: number; problem: string }>): Generator<ParsedLine> {
    // After a broken quote the parser may complain twice about one line: the first says it.
    for (const s of skipped)
      if (s.line !== lastBroken) {
        lastBroken = s.line;
        yield { line: s.line, kind: 'invalid', problems: [{ path: '', problem: s.problem }] };
      }
  };
  type Row = { line: number; record: Record<CsvColumn, string | undefined>; skipped: Array<{ line: number; problem: string }> };
  for await (const { line, record, skipped } of parser as AsyncIterable<Row>) {
    if (headerProblems.length > 0) break;
    yield* broken(skipped);
    const fields: SimpleMessage = { ...record, to: record.to ?? '', text: record.text ?? '' };
    if (options.idempotencyBase !== undefined && !fields.idempotencyKey) fields.idempotencyKey = lineKey(options.idempotencyBase, line);
    const checked = checkMessage(simpleMessage(fields), now);
    if (checked.ok) yield { line, kind: 'message', item: checked.value };
    else
      yield {
        line,
        kind: 'invalid',
        problems: checked.problems.map((p) => ({
          path: (Object.hasOwn(COLUMN_OF_PATH, p.path) ? COLUMN_OF_PATH[p.path] : undefined) ?? p.path,
          problem: p.problem,
        })),
      };
  }
  if (headerProblems.length > 0) {
    stream.destroy();
    yield { line: 1, kind: 'invalid', problems: headerProblems };
    return;
  }
  yield* broken(syntax.splice(0));
}
