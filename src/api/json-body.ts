/**
 * The API's JSON body parser: Fastify's own (same errors, same prototype
 * poisoning checks) for ordinary bodies. A large body is what a batch is,
 * `{ "messages": [ item, item, ... ] }`: JSON.parse of 10 MB holds the event
 * loop 70–120 ms (250+ on 2 busy cores) and cannot be cut into slices, so
 * such a body is split at its items (a scan that knows strings and nesting)
 * and each item is parsed on its own, taking turns with the rest of the
 * process (turn-budget.ts). Any other large body (another shape, or one the
 * scan cannot vouch for) is parsed whole as before, one such parse per turn
 * of the event loop, so bodies arriving together are never parsed back to back.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { startPacer } from '../turn-budget.ts';

/** Below this a parse takes a few ms at most: done at once. */
const LARGE_BODY_CHARS = 1024 * 1024;
/** Characters scanned between looks at the clock. */
const SCAN_STEP = 64 * 1024;

type ParseValue = (text: string) => unknown;

export function registerJsonBodyParser(app: FastifyInstance): void {
  const fastifyParse = app.getDefaultJsonParser('error', 'error');
  const parse = (request: FastifyRequest, text: string): unknown => {
    let result: { error: Error | null; value: unknown } | undefined;
    fastifyParse(request, text, (error, value) => (result = { error, value }));
    if (result!.error) throw result!.error;
    return result!.value;
  };
  let wholeParses: Promise<unknown> = Promise.resolve();
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser<string>('application/json', { parseAs: 'string' }, async (request: FastifyRequest, body: string) => {
    if (body.length < LARGE_BODY_CHARS) return parse(request, body);
    const list = await parseListBody(body, (text) => parse(request, text));
    if (list !== undefined) return list;
    // Each whole parse waits for the one before it, then for a turn of its own.
    const mine = wholeParses.then(() => nextTurn()).then(() => parse(request, body));
    wholeParses = mine.catch(() => undefined);
    return mine;
  });
}

const isSpace = (c: number) => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;

function blank(text: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (!isSpace(text.charCodeAt(i))) return false;
  return true;
}
/** `{ "key" : [` at the start, with JSON whitespace anywhere between. */
const HEAD = /^[ \n\r\t]*\{[ \n\r\t]*("(?:[^"\\\n\r]|\\.){1,64}")[ \n\r\t]*:[ \n\r\t]*\[/;

/**
 * `{ "<key>": [ items ] }` parsed item by item, yielding between slices; the
 * same value JSON.parse gives. undefined when the body is not of that shape
 * (the caller parses it whole); throws what `parseValue` throws for a bad item.
 */
export async function parseListBody(text: string, parseValue: ParseValue): Promise<Record<string, unknown[]> | undefined> {
  const head = HEAD.exec(text.slice(0, 256));
  if (!head) return undefined;
  let key: string;
  try {
    key = JSON.parse(head[1]!) as string;
  } catch {
    return undefined;
  }
  if (key === '__proto__') return undefined;
  // The array's closing bracket, then `}` and only whitespace.
  let end = text.length - 1;
  while (end >= 0 && isSpace(text.charCodeAt(end))) end--;
  if (text.charCodeAt(end) !== 0x7d) return undefined;
  end--;
  while (end >= 0 && isSpace(text.charCodeAt(end))) end--;
  if (text.charCodeAt(end) !== 0x5d) return undefined;

  const pacer = startPacer();
  try {
    const cuts = await itemBounds(text, head[0].length, end, pacer);
    if (cuts === undefined) return undefined;
    const items: unknown[] = [];
    for (let i = 0; i < cuts.length; i += 2) {
      if (pacer.due()) await pacer.nextTurn();
      items.push(parseValue(text.slice(cuts[i], cuts[i + 1])));
    }
    return { [key]: items };
  } finally {
    pacer.end();
  }
}

/**
 * Start and end of each item between `from` (after `[`) and `to` (the `]`):
 * commas at the top level of the array, outside strings. undefined when the
 * brackets do not balance, a string does not end there or an item is empty
 * ("[1,,2]", "[1,]"): the whole parse then names the error.
 */
async function itemBounds(text: string, from: number, to: number, pacer: ReturnType<typeof startPacer>): Promise<number[] | undefined> {
  const scan: Scan = { i: from, depth: 0, inString: false, start: from, cuts: [], bad: false };
  while (scan.i < to) {
    if (pacer.due()) await pacer.nextTurn();
    scanSome(text, scan, Math.min(to, scan.i + SCAN_STEP));
    if (scan.bad) return undefined;
  }
  const { cuts, start } = scan;
  if (scan.inString || scan.depth !== 0) return undefined;
  // "[]" and "[ ]" hold no item; otherwise the last item ends at the bracket.
  if (blank(text, start, to)) return cuts.length === 0 ? cuts : undefined;
  cuts.push(start, to);
  return cuts;
}

interface Scan {
  i: number;
  depth: number;
  inString: boolean;
  /** Where the current item started. */
  start: number;
  cuts: number[];
  bad: boolean;
}

/** Scans text[scan.i, until): a plain loop, kept apart from the awaits so it stays fast. */
function scanSome(text: string, scan: Scan, until: number): void {
  let { i, depth, inString, start } = scan;
  for (; i < until; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c)
        i++; // a backslash: the next character is escaped
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) depth++;
    else if (c === 0x7d || c === 0x5d) {
      if (--depth < 0) break;
    } else if (c === 0x2c && depth === 0) {
      if (blank(text, start, i)) {
        depth = -1;
        break;
      }
      scan.cuts.push(start, i);
      start = i + 1;
    }
  }
  scan.bad = depth < 0;
  Object.assign(scan, { i, depth, inString, start });
}
