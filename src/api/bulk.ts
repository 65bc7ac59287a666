/**
 * The shape check of a bulk body ({ "messages": [...] } or { "events": [...] })
 * before any item is looked at: a list of 1 to 10,000 items.
 */
import { MAX_LISTED_PROBLEMS, PayloadError } from '../errors.ts';

export const MAX_BATCH = 10_000;

export function bulkItems(body: unknown, field: 'messages' | 'events'): unknown[] {
  const list = (body as Record<string, unknown> | null)?.[field];
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new PayloadError(`${field} batch`, [
      { path: '', problem: `expected an object { "${field}": [...] }, got ${Array.isArray(body) ? 'an array' : typeof body}` },
    ]);
  }
  const extra = Object.keys(body).filter((k) => k !== field);
  if (extra.length > 0) {
    const problems = extra.slice(0, MAX_LISTED_PROBLEMS).map((k) => ({ path: k, problem: `unknown field: expected only "${field}"` }));
    throw new PayloadError(`${field} batch`, problems, { count: extra.length });
  }
  if (!Array.isArray(list))
    throw new PayloadError(`${field} batch`, [
      { path: field, problem: `expected an array, got ${list === undefined ? 'nothing' : typeof list}` },
    ]);
  if (list.length === 0) throw new PayloadError(`${field} batch`, [{ path: field, problem: 'expected at least 1 item, got 0' }]);
  if (list.length > MAX_BATCH)
    throw new PayloadError(`${field} batch`, [{ path: field, problem: `expected at most ${MAX_BATCH} items, got ${list.length}` }]);
  return list;
}

/** Prefixes a producer's item paths ("37.to") with the body field ("messages.37.to"); the count goes along. */
export function underField(err: unknown, field: string): unknown {
  if (!(err instanceof PayloadError)) return err;
  const problems = err.problems.map((p) => ({
    path: /^\d/.test(p.path) ? `${field}.${p.path}` : `${field}.0.${p.path}`.replace(/\.$/, ''),
    problem: p.problem,
  }));
  return new PayloadError(`${field} batch`, problems, { index: err.index, count: err.problemCount, code: err.code });
}
