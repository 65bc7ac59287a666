/**
 * Checks of the store's inputs, each refusal a PayloadError that names the
 * field, what was expected and what came: a bad change would otherwise fail
 * the whole batch's SQL with a message naming neither.
 */
import { PayloadError, type Problem } from '../errors.ts';
import { MessageStates } from '../status/states.ts';
import { DAY_MS } from './partitions.ts';
import type { HistoryChange } from './types.ts';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const HEX_HASH = /^[0-9a-f]{64}$/i;
const STATES = new Set<string>(Object.values(MessageStates));
/** Year 2000 to 2200: anything else is a seconds-for-ms mistake or garbage. */
const MIN_MS = 946_684_800_000;
const MAX_MS = 7_258_118_400_000;

/** Most changes in one write (one statement each for events and messages). */
export const MAX_WRITE_CHANGES = 10_000;
export const MAX_AGENTS = 100;
/** The widest report or export range. */
export const MAX_REPORT_DAYS = 400;

function isTime(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= MIN_MS && v <= MAX_MS;
}

const got = (v: unknown) => (typeof v === 'string' ? `'${v.slice(0, 60)}'` : String(v));

export function checkChanges(changes: readonly HistoryChange[]): void {
  if (changes.length > MAX_WRITE_CHANGES) {
    throw new PayloadError('history write', [
      { path: '', problem: `expected at most ${MAX_WRITE_CHANGES} changes, got ${changes.length}` },
    ]);
  }
  changes.forEach((c, index) => {
    const problems: Problem[] = [];
    const bad = (path: string, expected: string, value: unknown) =>
      problems.push({ path, problem: `expected ${expected}, got ${got(value)}` });
    if (typeof c.agentId !== 'string' || c.agentId.length === 0 || c.agentId.length > 200) bad('agentId', 'an agent ID', c.agentId);
    if (typeof c.messageId !== 'string' || !UUID.test(c.messageId)) bad('messageId', 'a UUID', c.messageId);
    if (!STATES.has(c.state)) bad('state', 'a message state', c.state);
    if (c.previousState != null && !STATES.has(c.previousState)) bad('previousState', 'a message state or null', c.previousState);
    if (!isTime(c.at)) bad('at', 'a time in ms since the epoch', c.at);
    if (!isTime(c.createdAt)) bad('createdAt', 'a time in ms since the epoch', c.createdAt);
    if (c.toHash !== undefined && !HEX_HASH.test(c.toHash)) bad('toHash', '64 hex characters (phoneHash)', c.toHash);
    if (c.expireAt !== undefined && !isTime(c.expireAt)) bad('expireAt', 'a time in ms since the epoch', c.expireAt);
    if (c.callbackUrl !== undefined && (typeof c.callbackUrl !== 'string' || c.callbackUrl.length > 2048))
      bad('callbackUrl', 'a URL of at most 2048 characters', c.callbackUrl);
    if (problems.length > 0) throw new PayloadError('history change', problems, { index });
  });
}

export function checkAgents(agentIds: readonly string[], what: string): void {
  if (!Array.isArray(agentIds) || agentIds.length === 0 || agentIds.length > MAX_AGENTS) {
    throw new PayloadError(what, [{ path: 'agentIds', problem: `expected 1 to ${MAX_AGENTS} agents, got ${agentIds?.length}` }]);
  }
}

export function checkRange(from: number, to: number, what: string): void {
  const problems: Problem[] = [];
  if (!isTime(from)) problems.push({ path: 'from', problem: `expected a time in ms since the epoch, got ${got(from)}` });
  if (!isTime(to)) problems.push({ path: 'to', problem: `expected a time in ms since the epoch, got ${got(to)}` });
  else if (isTime(from) && (to <= from || to - from > MAX_REPORT_DAYS * DAY_MS)) {
    problems.push({
      path: 'to',
      problem: `expected after from and at most ${MAX_REPORT_DAYS} days later, got ${(to - from) / DAY_MS} days`,
    });
  }
  if (problems.length > 0) throw new PayloadError(what, problems);
}

export function checkHash(toHash: string, what: string): void {
  if (typeof toHash !== 'string' || !HEX_HASH.test(toHash)) {
    throw new PayloadError(what, [{ path: 'toHash', problem: `expected 64 hex characters (phoneHash), got ${got(toHash)}` }]);
  }
}
