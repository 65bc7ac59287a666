/**
 * What the runner (runner.ts) does with a handler's failure, decided here
 * without BullMQ or Redis so the decision can be tested on its own; the runner
 * makes the calls. From the failure's class (errors.ts classify()):
 *   rateLimited → with Retry-After (or on a queue without an adaptive rate):
 *                 pause the whole queue (Queue.rateLimit) that long ('pause-queue');
 *                 without it, on an agent queue: lower the agent's rate
 *                 (adaptive-rate.ts) and pause nothing ('throttle').
 *                 Either way the job is delayed without using an attempt
 *   defer       → delay the job until retryAfterMs (the token source asks the
 *                 token endpoint again; a callback receiver is parked), without
 *                 using an attempt ('delay')
 *   permanent   → UnrecoverableError: no retry ('fail')
 *   retry       → rethrow: BullMQ retries with the job's backoff, or fails the
 *                 job on its last attempt ('retry')
 *   notRcs      → as retry: the handlers turn a 404 into an outcome; one that
 *                 escapes them is retried like any failure not understood here
 */
import type { Classification } from '../errors.ts';

/** The facts about the job and its queue that decide, besides the failure's class. */
export interface FailureFacts {
  /** The failure's own wait (Retry-After, the token source's next try, a parked callback's wake-up); absent or 0: none said. */
  retryAfterMs: number | undefined;
  /** Tries made before this one (BullMQ's job.attemptsMade). */
  attemptsMade: number;
  maxAttempts: number;
  /** The queue adapts its rate to 429s (an agent queue): a 429 without Retry-After lowers the rate instead of pausing. */
  adaptive: boolean;
  /** The wait when the failure names none (RATE_LIMIT_PAUSE_MS). */
  rateLimitPauseMs: number;
}

export type FailureAction =
  /** Pause the queue for every worker that long, and delay the job as long; no attempt used. */
  | { kind: 'pause-queue'; ms: number }
  /** Lower the queue's adaptive rate, pause nothing, and delay the job; no attempt used. */
  | { kind: 'throttle'; ms: number }
  /** Delay the job, the queue keeps running; no attempt used. */
  | { kind: 'delay'; ms: number }
  /** Fail the job for good (UnrecoverableError). */
  | { kind: 'fail' }
  /** Rethrow: an attempt is used; BullMQ retries with backoff unless this was the last one. */
  | { kind: 'retry'; lastAttempt: boolean };

/** The wait a failure names (RbmApiError's Retry-After, RbmTokenUnavailableError, CallbackParkedError, SmsProviderError). */
export function retryAfterOf(err: unknown): number | undefined {
  const ms = (err as { retryAfterMs?: unknown } | null | undefined)?.retryAfterMs;
  return typeof ms === 'number' ? ms : undefined;
}

export function failureAction(kind: Classification, facts: FailureFacts): FailureAction {
  if (kind === 'rateLimited') {
    // No pause: the lowered limiter paces the queue from its next fetch; the job waits the default pause.
    if (facts.adaptive && !facts.retryAfterMs) return { kind: 'throttle', ms: facts.rateLimitPauseMs };
    return { kind: 'pause-queue', ms: facts.retryAfterMs || facts.rateLimitPauseMs };
  }
  // Not an attempt: a token outage says nothing about this job and may
  // outlast its whole backoff horizon (8 attempts with jitter: 64–127 s).
  if (kind === 'defer') return { kind: 'delay', ms: facts.retryAfterMs || facts.rateLimitPauseMs };
  if (kind === 'permanent') return { kind: 'fail' };
  return { kind: 'retry', lastAttempt: facts.attemptsMade + 1 >= facts.maxAttempts };
}
