/**
 * The callback retry schedule: the first delay doubles up to a cap, and the
 * retries stop once their delays add up to the retry horizon (24 h by
 * default: 5 s, 10 s, 20 s … 1 h, then hourly: 33 attempts in all). A receiver
 * that is down for a day still gets every change once it is back.
 */
export interface RetrySchedule {
  baseMs: number;
  maxDelayMs: number;
  /** The horizon: no retry starts later than this after the first attempt. */
  forMs: number;
}

/** The delay before each retry, in order; its length is the number of retries. */
export function retryDelays(s: RetrySchedule): number[] {
  const delays: number[] = [];
  let total = 0;
  for (let next = Math.min(s.baseMs, s.maxDelayMs); total + next <= s.forMs; next = Math.min(next * 2, s.maxDelayMs)) {
    delays.push(next);
    total += next;
  }
  return delays;
}

/** BullMQ's backoff for a job that has failed `attemptsMade` times. */
export function backoffStrategy(s: RetrySchedule): (attemptsMade: number) => number {
  const delays = retryDelays(s);
  return (attemptsMade) => delays[Math.min(attemptsMade, delays.length) - 1] ?? s.maxDelayMs;
}
