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
