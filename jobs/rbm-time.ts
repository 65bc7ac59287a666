/**
 * RBM's time formats: protobuf Timestamp (RFC 3339) and Duration ("600s") as
 * zod schemas, with parsers to epoch milliseconds. Pure functions, no clock:
 * callers pass `nowMs`, so old jobs re-validate the same way later.
 */
import { z } from 'zod';
import { expected } from './common.ts';

/** RBM accepts an expiration at most 15 days after submission (spec §2.2). */
export const MAX_EXPIRATION_S = 15 * 24 * 60 * 60;
export const MAX_EXPIRATION_MS = MAX_EXPIRATION_S * 1000;

const TIMESTAMP = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$/;
const DURATION = /^(\d+)(?:\.(\d{1,9}))?s$/;
const DAYS_IN_MONTH = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/** Fractional digits ("045123456") as milliseconds (45.123456). */
function fractionMs(digits: string | undefined): number {
  return digits ? Number(digits.padEnd(9, '0')) / 1e6 : 0;
}

/**
 * Epoch ms of an RFC 3339 timestamp (up to 9 fractional digits, 'Z' or an
 * offset), or NaN when it is malformed or names no real date (Feb 30, 25:00).
 * Date.parse is not used: it drops digits past milliseconds and rolls over bad dates.
 */
export function parseTimestampMs(value: string): number {
  const m = TIMESTAMP.exec(value);
  if (!m) return Number.NaN;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  const monthDays = month === 2 && !leap ? 28 : (DAYS_IN_MONTH[month - 1] ?? 0);
  if (month < 1 || month > 12 || day < 1 || day > monthDays || hour > 23 || minute > 59 || second > 59) return Number.NaN;
  const zone = m[8] ?? 'Z';
  let offsetMin = 0;
  if (zone !== 'Z') {
    const oh = Number(zone.slice(1, 3));
    const om = Number(zone.slice(4, 6));
    if (oh > 23 || om > 59) return Number.NaN;
    offsetMin = (zone[0] === '-' ? -1 : 1) * (oh * 60 + om);
  }
  // Date.UTC maps years 0-99 to 1900-1999; setUTCFullYear does not.
  const date = new Date(Date.UTC(2000, month - 1, day, hour, minute, second));
  date.setUTCFullYear(year);
  return date.getTime() - offsetMin * 60_000 + fractionMs(m[7]);
}

/** Milliseconds in a protobuf Duration string ("3.5s" → 3500); throws RangeError on any other format. */
export function parseTtlMs(ttl: string): number {
  const m = DURATION.exec(ttl);
  if (!m) throw new RangeError(`expected a duration like "600s" or "3.5s", got ${JSON.stringify(ttl)}`);
  return Number(m[1]) * 1000 + fractionMs(m[2]);
}

const TTL = 'a duration in seconds like "600s" or "3.5s", more than 0 and at most 15 days (1296000s)';
const ttlError = expected(TTL);

/** `ttl` as RBM's protobuf Duration JSON; the 15-day cap needs no clock, so it is checked here. */
export const ttl = z.string({ error: ttlError }).check((payload) => {
  const m = DURATION.exec(payload.value);
  const ms = m ? Number(m[1]) * 1000 + fractionMs(m[2]) : Number.NaN;
  if (ms > 0 && ms <= MAX_EXPIRATION_MS) return;
  payload.issues.push({ code: 'custom', input: payload.value, message: ttlError({ input: payload.value }) });
});

function timestampSchema(zOnly: boolean) {
  const what = zOnly
    ? 'an RFC 3339 UTC timestamp like "2026-04-05T15:01:23Z" (up to 9 fractional digits, ending in Z)'
    : 'an RFC 3339 timestamp like "2026-04-05T15:01:23Z" or "2026-04-05T17:01:23+02:00"';
  const error = expected(what);
  return z.string({ error }).check((payload) => {
    const v = payload.value;
    if ((!zOnly || v.endsWith('Z')) && !Number.isNaN(parseTimestampMs(v))) return;
    payload.issues.push({ code: 'custom', input: v, message: error({ input: v }) });
  });
}

/** `expireTime`: RBM documents it as UTC; requiring the Z keeps deadlines unambiguous. */
export const utcTimestamp = timestampSchema(true);
/** Calendar event times: protobuf Timestamp JSON, which accepts offsets on input. */
export const timestamp = timestampSchema(false);

/**
 * The absolute deadline (ms epoch) a message's ttl or expireTime gives,
 * counted from `nowMs` for a ttl; undefined when it has neither. Rounded up:
 * a local deadline must never come before RBM's own. Throws on a malformed value
 * (a validated message has none).
 */
export function expirationMs(message: { ttl?: string | undefined; expireTime?: string | undefined }, nowMs: number): number | undefined {
  if (message.ttl !== undefined) return Math.ceil(nowMs + Math.ceil(parseTtlMs(message.ttl)));
  if (message.expireTime !== undefined) {
    const at = parseTimestampMs(message.expireTime);
    if (Number.isNaN(at)) throw new RangeError(`expected an RFC 3339 expireTime, got ${JSON.stringify(message.expireTime)}`);
    return Math.ceil(at);
  }
  return undefined;
}
