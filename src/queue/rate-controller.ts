/**
 * The adaptive rate of one agent, as pure decisions over a state and a clock
 * (no I/O: adaptive-rate.ts keeps the state in Redis and applies it).
 *
 * The configured rate is a ceiling (DESIGN: "Rates adapt down, never past the
 * configured one"). A 429 without Retry-After multiplies the rate by
 * `decrease` × the share of the last second's calls RBM accepted: a small
 * overshoot (one 429 in a hundred) costs a 10 % step, a rate four times the
 * quota (three calls in four refused) lands just under the quota in one step,
 * where halving again and again would undershoot it or take many rounds of
 * 429s to get there. A share, not the accepted rate itself, because the
 * limiter delivers somewhat less than its nominal rate (each fixed window
 * opens only at the first fetch after the last one closed) and by how much
 * depends on the machine's load: scaling the nominal rate keeps that out of
 * the sum. Every clean second then adds `increase` × the ceiling back
 * (additive, so a lifted quota is found again in 1 / increase seconds), but
 * never more than a quarter of the current rate, so a quota far below the
 * ceiling is probed in steps it can absorb.
 */

export interface RateState {
  /** The configured rate: never exceeded. */
  ceiling: number;
  /** The effective rate, messages per second (fractional). */
  rate: number;
  /** When the rate was last lowered / raised, ms since the epoch (0: never). */
  decreasedAt: number;
  increasedAt: number;
}

export interface RateAdaptOptions {
  /** 0..1: a 429 multiplies the rate by this (and by the share of calls accepted). */
  decrease: number;
  /** 0..1: share of the ceiling added back per clean second. */
  increase: number;
}

/**
 * 429s that arrive within this long of a decrease were sent before it took
 * effect (jobs in flight, the limiter window already open): one burst is one
 * decrease, not one per answer. Longer than the second the next decision
 * measures, so that second holds only calls made at the lowered rate.
 */
export const HOLD_MS = 1500;
/** How long without a 429, and since the last change, before the rate goes up. */
export const CLEAN_MS = 1000;
/**
 * A share needs this many calls behind it; below, a plain `decrease` step (the
 * first call after a pause answered 429 says nothing about the quota). And it
 * counts as at least MIN_SHARE: a second of only 429s must not zero the rate.
 */
const MIN_CALLS = 10;
const MIN_SHARE = 0.1;
/** An increase step is at most this share of the current rate. */
const MAX_STEP = 0.25;
/** Below this the agent would look dead; RBM's smallest quotas are far above it. */
export const MIN_RATE = 1;

export function initialState(ceiling: number): RateState {
  return { ceiling, rate: ceiling, decreasedAt: 0, increasedAt: 0 };
}

/** The agent's calls over the last second, this 429 included. */
export interface LastSecond {
  accepted: number;
  limited: number;
}

/** A 429 without Retry-After. undefined: no change (the 429 belongs to a burst already answered). */
export function onThrottled(s: RateState, now: number, last: LastSecond, o: RateAdaptOptions): RateState | undefined {
  if (now - s.decreasedAt < HOLD_MS) return undefined;
  const calls = last.accepted + last.limited;
  const share = calls < MIN_CALLS ? 1 : Math.max(MIN_SHARE, last.accepted / calls);
  const rate = Math.max(Math.min(s.ceiling, MIN_RATE), s.rate * o.decrease * share);
  return { ...s, rate, decreasedAt: now };
}

/**
 * Called as sends complete. A clean second (sends accepted, no 429, no change
 * of rate) raises the rate one step; a second with no sends at all teaches
 * nothing, so an idle agent keeps what it learnt.
 */
export function onClean(s: RateState, now: number, last: LastSecond, o: RateAdaptOptions): RateState | undefined {
  if (s.rate >= s.ceiling || last.accepted <= 0 || last.limited > 0) return undefined;
  if (now - Math.max(s.decreasedAt, s.increasedAt) < CLEAN_MS) return undefined;
  const step = Math.min(o.increase * s.ceiling, MAX_STEP * s.rate);
  return { ...s, rate: Math.min(s.ceiling, s.rate + step), increasedAt: now };
}
