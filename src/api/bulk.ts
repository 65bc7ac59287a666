/**
 * Batch routes ({ "messages": [...] } or { "events": [...] }): their route
 * options, and the shape check of the body before any item is looked at: a
 * list of 1 to 10,000 items.
 */
import { MAX_LISTED_PROBLEMS, PayloadError } from '../errors.ts';
import { doc } from './openapi.ts';

export const MAX_BATCH = 10_000;

type BulkField = 'messages' | 'events';

/** A batch route's options: its body limit, and its document (tag and body schema named by the field). */
export function bulkRoute(field: BulkField, summary: string, itemSchema: Record<string, unknown>, bodyLimit: number) {
  return {
    bodyLimit,
    ...doc(field, summary, {
      type: 'object',
      properties: { [field]: { type: 'array', maxItems: MAX_BATCH, items: itemSchema } },
      required: [field],
    }),
  };
}

/**
 * The items of a batch body. The body's declared type is what the producer
 * takes; nothing has checked it yet, so its shape is checked here as unknown.
 */
export function bulkItems<F extends BulkField, T>(body: Record<F, T[]>, field: F): T[] {
  const raw: unknown = body;
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new PayloadError(`${field} batch`, [
      { path: '', problem: `expected an object { "${field}": [...] }, got ${Array.isArray(raw) ? 'an array' : typeof raw}` },
    ]);
  }
  const extra = Object.keys(raw).filter((k) => k !== field);
  if (extra.length > 0) {
    const problems = extra.slice(0, MAX_LISTED_PROBLEMS).map((k) => ({ path: k, problem: `unknown field: expected only "${field}"` }));
    throw new PayloadError(`${field} batch`, problems, { count: extra.length });
  }
  const list = body[field];
  const rawList: unknown = list;
  if (!Array.isArray(rawList))
    throw new PayloadError(`${field} batch`, [
      { path: field, problem: `expected an array, got ${rawList === undefined ? 'nothing' : typeof rawList}` },
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
