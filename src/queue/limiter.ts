/**
 * BullMQ's limiter is exact per fixed window but releases a window's whole
 * quota at once; a quota enforced as a sliding window or token bucket answers
 * 429 to that burst. So a rate of R/s becomes R/10 per 100 ms, not R per
 * second. When R × window is not a whole number, the window grows until it is
 * (7/s → 7 per 1000 ms), so the long-run rate is exactly R, never above.
 */
export interface Limiter {
  max: number;
  duration: number;
}

export function limiterFor(ratePerSec: number, windowMs: number): Limiter {
  if (!Number.isInteger(ratePerSec) || ratePerSec < 1) throw new RangeError(`expected a whole rate ≥ 1 per second, got ${ratePerSec}`);
  for (let duration = windowMs; duration <= 1000; duration++) {
    const max = (ratePerSec * duration) / 1000;
    if (Number.isInteger(max) && max >= 1) return { max, duration };
  }
  return { max: ratePerSec, duration: 1000 };
}

/**
 * The limiter for an adapted, fractional rate (45.6/s): about one window's
 * share per window, the window stretched to the whole ms that keeps the rate
 * at or just under R. Growing the window until R × window is whole, as
 * limiterFor does, would turn 47/s into 47 per second at once: a burst a
 * token-bucket quota answers with 429s.
 */
export function limiterForRate(ratePerSec: number, windowMs: number): Limiter {
  if (!(ratePerSec > 0) || !Number.isFinite(ratePerSec)) throw new RangeError(`expected a rate > 0 per second, got ${ratePerSec}`);
  const max = Math.max(1, Math.round((ratePerSec * windowMs) / 1000));
  return { max, duration: Math.ceil((max * 1000) / ratePerSec) };
}
