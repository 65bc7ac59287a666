/** Repeating error lines are summed up: first at once, then one summary per window, windows growing while it repeats. */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { LogThrottle } from '../src/log-throttle.ts';
import { reconnectDelay, RECONNECT_MAX_MS } from '../src/queue/connection.ts';

function recorder() {
  const lines: Array<{ level: string; fields: Record<string, unknown>; msg: string | undefined }> = [];
  const at = (level: string) => (fields: object, msg?: string) =>
    void lines.push({ level, fields: fields as Record<string, unknown>, msg });
  return { lines, log: { error: at('error'), warn: at('warn') } };
}

beforeEach(() => vi.useFakeTimers());
afterEach(() => vi.useRealTimers());

describe('LogThrottle', () => {
  it('logs the first of a kind at once and sums up the repeats once per window, the window doubling while it repeats', () => {
    const { lines, log } = recorder();
    const throttle = new LogThrottle(log, { windowMs: 1000, maxWindowMs: 4000 });
    const err = new Error('connect ECONNREFUSED 127.0.0.1:6379');
    for (let i = 0; i < 10_000; i++) throttle.error('worker error', err, i % 2 ? 'queue-a' : 'queue-b');
    expect(lines).toEqual([{ level: 'error', fields: { err: err.message, source: 'queue-b' }, msg: 'worker error' }]);
    vi.advanceTimersByTime(1000);
    expect(lines[1]).toEqual({
      level: 'error',
      fields: { err: err.message, repeats: 9999, windowMs: 1000, sources: ['queue-a', 'queue-b'] },
      msg: 'worker error (9999 more in the last 1s)',
    });
    // Still failing: 2 s, then 4 s (the cap), then 4 s again.
    for (const windowMs of [2000, 4000, 4000]) {
      throttle.error('worker error', err, 'queue-a');
      vi.advanceTimersByTime(windowMs);
      expect(lines.at(-1)!.msg).toBe(`worker error (1 more in the last ${windowMs / 1000}s)`);
    }
    expect(lines).toHaveLength(5);
    // Quiet for a window: forgotten, so the next one is logged at once again.
    vi.advanceTimersByTime(4000);
    throttle.error('worker error', err);
    expect(lines).toHaveLength(6);
    expect(lines[5]!.msg).toBe('worker error');
  });

  it('treats messages differing only in numbers as one kind, and folds new kinds beyond the per-second budget', () => {
    const { lines, log } = recorder();
    const throttle = new LogThrottle(log, { maxKindsPerSec: 2 });
    for (let job = 0; job < 100; job++) throttle.error('worker error', new Error(`Missing lock for job ${job}. moveToFinished`));
    expect(lines).toHaveLength(1);
    for (let kind = 0; kind < 50; kind++) throttle.warn(`kind ${String.fromCharCode(97 + (kind % 26))}${kind >= 26 ? 'x' : ''}`, 'boom');
    // One more kind fits the budget of 2 per second; the 49 others become one line at the end of the second.
    expect(lines).toHaveLength(2);
    vi.advanceTimersByTime(1000);
    const folded = lines.find((l) => l.msg?.includes('other kinds'));
    expect(folded?.msg).toBe('49 more errors of other kinds in the last 1s');
    expect(folded?.fields.examples).toHaveLength(10);
    expect(lines.length).toBeLessThanOrEqual(4);
  });
});

describe('reconnectDelay', () => {
  it('doubles from 50 ms to a 2 s cap, with the upper half of each delay random', () => {
    expect([1, 2, 3, 4, 5, 6, 7, 30].map((n) => reconnectDelay(n, () => 1))).toEqual([50, 100, 200, 400, 800, 1600, 2000, 2000]);
    expect([1, 2, 30].map((n) => reconnectDelay(n, () => 0))).toEqual([25, 50, 1000]);
    for (let n = 1; n < 100; n++) expect(reconnectDelay(n)).toBeLessThanOrEqual(RECONNECT_MAX_MS);
  });
});
