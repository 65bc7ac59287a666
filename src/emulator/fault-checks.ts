/**
 * The checks the control API's fault settings share (faults.ts, token-faults.ts,
 * sms.ts). Each throws a TypeError naming the bad field; the control route
 * answers it as 400 INVALID_ARGUMENT.
 */

/** latencyMs: a number >= 0; undefined when absent. */
export function checkLatencyMs(v: unknown): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !(v >= 0)) throw new TypeError(`latencyMs must be a number >= 0, got ${JSON.stringify(v)}`);
  return v;
}

/** failNext[i], once it is an object whose kind is one of `kinds`; its other fields are left to the caller. */
export function failNextEntry<E extends { kind: string }>(
  e: unknown,
  i: number,
  kinds: readonly E['kind'][],
): Partial<E> & Pick<E, 'kind'> {
  const entry = e as Partial<E> | null;
  if (typeof entry !== 'object' || entry === null) throw new TypeError(`failNext[${i}] must be an object`);
  if (!kinds.includes(entry.kind as E['kind'])) {
    throw new TypeError(`failNext[${i}].kind must be one of ${kinds.join(', ')}, got ${JSON.stringify(entry.kind)}`);
  }
  return entry as Partial<E> & Pick<E, 'kind'>;
}

/** failNext[i].count: an integer >= 1. */
export function checkCount(count: unknown, i: number): number {
  if (typeof count !== 'number' || !Number.isInteger(count) || count < 1) {
    throw new TypeError(`failNext[${i}].count must be an integer >= 1, got ${JSON.stringify(count)}`);
  }
  return count;
}
