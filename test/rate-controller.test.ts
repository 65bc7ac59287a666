/**
 * The adaptive rate's decisions, pure: a fake clock, no Redis, no HTTP. The
 * last case runs the controller against the emulator's own token bucket in
 * simulated time, with the same fixed-window limiter the queue uses.
 */
import { describe, expect, it } from 'vitest';
import { TokenBucket } from '../src/emulator/quota.ts';
import { limiterForRate } from '../src/queue/limiter.ts';
import {
  CLEAN_MS,
  HOLD_MS,
  MIN_RATE,
  initialState,
  onClean,
  onThrottled,
  type RateAdaptOptions,
  type RateState,
} from '../src/queue/rate-controller.ts';

const o: RateAdaptOptions = { decrease: 0.9, increase: 0.02 };
const T0 = 1_000_000;

describe('onThrottled', () => {
  it('scales the rate by decrease × the share of the last second RBM accepted', () => {
    const s = initialState(200);
    // The first 429 of a small overshoot: a 10 % step.
    expect(onThrottled(s, T0, { accepted: 199, limited: 1 }, o)!.rate).toBeCloseTo(179.1);
    // Four times the quota (3 calls in 4 refused): just under the quota in one step.
    expect(onThrottled(s, T0, { accepted: 50, limited: 150 }, o)!.rate).toBeCloseTo(45);
    // What the limiter really delivered does not matter, only the share: 160 calls at a nominal 200.
    expect(onThrottled(s, T0, { accepted: 40, limited: 120 }, o)!.rate).toBeCloseTo(45);
  });

  it('too few calls to trust a share: a plain decrease step', () => {
    expect(onThrottled(initialState(200), T0, { accepted: 0, limited: 1 }, o)!.rate).toBeCloseTo(180);
    expect(onThrottled(initialState(200), T0, { accepted: 4, limited: 5 }, o)!.rate).toBeCloseTo(180);
  });

  it('a burst of 429s is one decrease: the rest within the hold change nothing', () => {
    const cut = onThrottled(initialState(200), T0, { accepted: 50, limited: 150 }, o)!;
    for (let t = 0; t < HOLD_MS; t += 50) expect(onThrottled(cut, T0 + t, { accepted: 0, limited: 200 }, o)).toBeUndefined();
    const again = onThrottled(cut, T0 + HOLD_MS, { accepted: 45, limited: 5 }, o)!;
    expect(again.rate).toBeCloseTo(45 * 0.9 * 0.9);
    expect(again.decreasedAt).toBe(T0 + HOLD_MS);
  });

  it('a second of nothing but 429s cuts to a tenth of 0.9, not to zero; never below the floor (or the ceiling, when lower)', () => {
    expect(onThrottled(initialState(200), T0, { accepted: 0, limited: 30 }, o)!.rate).toBeCloseTo(18);
    expect(onThrottled({ ceiling: 200, rate: 1.5, decreasedAt: 0, increasedAt: 0 }, T0, { accepted: 0, limited: 20 }, o)!.rate).toBe(
      MIN_RATE,
    );
    expect(onThrottled({ ceiling: 0.5, rate: 0.5, decreasedAt: 0, increasedAt: 0 }, T0, { accepted: 0, limited: 1 }, o)!.rate).toBe(0.5);
  });
});

describe('onClean', () => {
  const low: RateState = { ceiling: 200, rate: 45, decreasedAt: T0, increasedAt: 0 };
  const clean = (accepted: number) => ({ accepted, limited: 0 });

  it('adds increase × the ceiling after each clean second', () => {
    expect(onClean(low, T0 + CLEAN_MS - 1, clean(45), o)).toBeUndefined();
    const up = onClean(low, T0 + CLEAN_MS, clean(45), o)!;
    expect(up).toEqual({ ...low, rate: 49, increasedAt: T0 + CLEAN_MS });
    expect(onClean(up, T0 + 2 * CLEAN_MS - 1, clean(49), o)).toBeUndefined();
    expect(onClean(up, T0 + 2 * CLEAN_MS, clean(49), o)!.rate).toBe(53);
  });

  it('a second with a 429 in it is not clean, even one the hold ignored', () => {
    expect(onClean(low, T0 + 5 * CLEAN_MS, { accepted: 45, limited: 1 }, o)).toBeUndefined();
  });

  it('steps by at most a quarter of the current rate, so a quota far below the ceiling is probed gently', () => {
    const far: RateState = { ceiling: 10_000, rate: 40, decreasedAt: T0, increasedAt: 0 };
    expect(onClean(far, T0 + CLEAN_MS, clean(40), o)!.rate).toBe(50);
  });

  it('never passes the ceiling, and does nothing at it', () => {
    const near: RateState = { ceiling: 200, rate: 199, decreasedAt: T0, increasedAt: 0 };
    expect(onClean(near, T0 + CLEAN_MS, clean(199), o)!.rate).toBe(200);
    expect(onClean(initialState(200), T0 + 10 * CLEAN_MS, clean(200), o)).toBeUndefined();
  });

  it('an idle second teaches nothing: no increase without accepted sends', () => {
    expect(onClean(low, T0 + 10 * CLEAN_MS, clean(0), o)).toBeUndefined();
  });
});

describe('limiterForRate', () => {
  it('gives about one window of traffic per window, at or just under the rate', () => {
    expect(limiterForRate(200, 100)).toEqual({ max: 20, duration: 100 });
    expect(limiterForRate(47, 100)).toEqual({ max: 5, duration: 107 });
    for (const rate of [0.5, 1, 7, 44.55, 47, 49.6, 123.4, 5000]) {
      const { max, duration } = limiterForRate(rate, 100);
      expect(Number.isInteger(max) && Number.isInteger(duration)).toBe(true);
      expect((max * 1000) / duration).toBeLessThanOrEqual(rate);
      expect((max * 1000) / duration).toBeGreaterThan(rate * 0.97);
      // The burst stays near one window's share, never a whole second's.
      expect(max).toBeLessThanOrEqual(Math.max(1, Math.round(rate / 10)));
    }
  });
});

/**
 * Simulated time in 1 ms steps: a queue limited to the controller's rate in
 * fixed windows that open `lagMs` late (as BullMQ's do, at the first fetch
 * after the last one closed), each send answered RTT later by a token bucket
 * of the quota, 429s retried (the backlog never runs dry), the calls of the
 * last second counted.
 */
function simulate(opts: { ceiling: number; quota: (t: number) => number; seconds: number; rttMs: number; lagMs: number }) {
  let state = initialState(opts.ceiling);
  let quotaNow = opts.quota(0);
  let bucket = new TokenBucket({ ratePerSec: quotaNow }, 0);
  let windowStart = -Infinity;
  let sentInWindow = 0;
  const inFlight: number[] = [];
  const accepts: number[] = [];
  const limits: number[] = [];
  const perSecond: Array<{ accepted: number; limited: number; rate: number }> = [];
  let highest = 0;
  for (let t = 0; t < opts.seconds * 1000; t++) {
    const sec = Math.floor(t / 1000);
    perSecond[sec] ??= { accepted: 0, limited: 0, rate: state.rate };
    if (opts.quota(t) !== quotaNow) {
      quotaNow = opts.quota(t);
      bucket = new TokenBucket({ ratePerSec: quotaNow }, t);
    }
    const { max, duration } = limiterForRate(state.rate, 100);
    if (t - windowStart >= duration + opts.lagMs) {
      windowStart = t;
      sentInWindow = 0;
    }
    while (sentInWindow < max) {
      sentInWindow += 1;
      inFlight.push(t + opts.rttMs);
    }
    while (inFlight.length && inFlight[0]! <= t) {
      inFlight.shift();
      while (accepts.length && accepts[0]! <= t - 1000) accepts.shift();
      if (bucket.take(t)) {
        accepts.push(t);
        perSecond[sec].accepted += 1;
      } else {
        limits.push(t);
        perSecond[sec].limited += 1;
        while (limits.length && limits[0]! <= t - 1000) limits.shift();
        state = onThrottled(state, T0 + t, { accepted: accepts.length, limited: limits.length }, o) ?? state;
      }
    }
    while (accepts.length && accepts[0]! <= t - 1000) accepts.shift();
    while (limits.length && limits[0]! <= t - 1000) limits.shift();
    if (t % 250 === 0) state = onClean(state, T0 + t, { accepted: accepts.length, limited: limits.length }, o) ?? state;
    highest = Math.max(highest, state.rate);
  }
  expect(highest).toBeLessThanOrEqual(opts.ceiling);
  return perSecond;
}

describe('against a token-bucket quota (simulated)', () => {
  it('configured 200/s, quota 50/s: ≥ 80 % of the quota, ≤ 5 % 429s after the first 10 s', () => {
    const secs = simulate({ ceiling: 200, quota: () => 50, seconds: 60, rttMs: 20, lagMs: 15 });
    const accepted = secs.reduce((n, s) => n + s.accepted, 0);
    const after = secs.slice(10);
    const limited = after.reduce((n, s) => n + s.limited, 0);
    const calls = after.reduce((n, s) => n + s.accepted + s.limited, 0);
    expect(accepted / (50 * 60)).toBeGreaterThanOrEqual(0.8);
    expect(limited / calls).toBeLessThanOrEqual(0.05);
  });

  it('climbs back to the configured rate once the quota is lifted', () => {
    const secs = simulate({ ceiling: 200, quota: (t) => (t < 10_000 ? 50 : 1000), seconds: 70, rttMs: 20, lagMs: 15 });
    expect(secs[9]!.rate).toBeLessThan(60);
    expect(secs.at(-1)!.rate).toBe(200);
    expect(secs.slice(-10).every((s) => s.limited === 0)).toBe(true);
  });
});
