/**
 * The shared worker runner: one BullMQ Worker per queue (one per RBM agent,
 * the inbound queue, the SMS queue), dispatching by job name to handlers, and the only place where a failure's classification
 * becomes a BullMQ call:
 *   rateLimited → pause the agent's whole queue (Queue.rateLimit) and delay the
 *                 job until the pause ends, without using an attempt
 *   defer       → delay the job until the token source asks the token endpoint
 *                 again (retryAfterMs), without using an attempt
 *   permanent   → UnrecoverableError: no retry
 *   retry       → rethrow: BullMQ retries with the job's backoff
 */
import { DelayedError, UnrecoverableError, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { classify } from '../errors.ts';
import type { Handler, Logger, Outcome } from '../handlers/types.ts';
import { throttled } from '../log-throttle.ts';
import { metricsKey } from '../status/store.ts';
import { limiterFor } from './limiter.ts';
import { sharedQueue } from './shared-queue.ts';

export interface QueueWorkerOptions {
  queueName: string;
  prefix: string;
  /** A blocking connection (maxRetriesPerRequest: null); BullMQ duplicates it as needed. */
  connection: Redis;
  handlers: Readonly<Record<string, Handler>>;
  concurrency: number;
  /** The upstream's quota (an RBM agent's, the SMS provider's); the limiter spreads it over short windows. None: unlimited. */
  ratePerSec?: number;
  limiterWindowMs: number;
  /** How long a job's lock lasts, and how often locks of crashed workers are checked (BullMQ stalled jobs). */
  lockDurationMs: number;
  stalledIntervalMs: number;
  /** A job whose worker died this many times fails; a send is safe to run again (stable IDs), so it is generous. */
  maxStalledCount: number;
  /** Pause on a 429 that carried no Retry-After. */
  rateLimitPauseMs: number;
  keepCompleted: number;
  keepFailedMs: number;
  /** For jobs whose backoff type is not BullMQ's own: the delay before a retry (the callback schedule). */
  backoffStrategy?: (attemptsMade: number) => number;
  log: Logger;
}

export interface QueueWorker {
  worker: Worker;
  /** Finishes the jobs in hand, then stops taking new ones. */
  close(): Promise<void>;
}

export function startQueueWorker(opts: QueueWorkerOptions): QueueWorker {
  // Used only to pause this queue for every worker process at once.
  // Its errors are the shared connection's, which the worker below reports too.
  const queue = sharedQueue(opts.queueName, opts.connection, opts.prefix);

  const processor = async (job: Job, token?: string): Promise<Outcome> => {
    const handler = opts.handlers[job.name];
    if (!handler) throw new UnrecoverableError(`no handler for job '${job.name}' on ${opts.queueName}`);
    const maxAttempts = job.opts.attempts ?? 1;
    try {
      return await handler(job.data, { jobId: job.id ?? '', attempt: job.attemptsMade + 1, maxAttempts });
    } catch (err) {
      const kind = classify(err);
      if (kind === 'rateLimited') {
        const pauseMs = (err as { retryAfterMs?: number }).retryAfterMs || opts.rateLimitPauseMs;
        opts.log.warn({ queue: opts.queueName, pauseMs }, 'upstream answered 429: pausing the queue');
        await queue.rateLimit(pauseMs);
        await opts.connection.multi().hincrby(metricsKey(opts.prefix), `ratelimited|${opts.queueName}`, 1).hincrby(metricsKey(opts.prefix), `throttled_ms|${opts.queueName}`, pauseMs).exec();
        // Not Worker.RateLimitError(): in bullmq 6.7 that puts a prioritized job
        // back without the marker that wakes a long-polling worker, which then
        // sleeps its whole drainDelay (5 s) after every 429. A delayed job carries
        // its own wake-up marker, and moveToDelayed skips the attempt count.
        await job.moveToDelayed(Date.now() + pauseMs, token);
        throw new DelayedError();
      }
      if (kind === 'defer') {
        // Not an attempt: a token outage says nothing about this job and may
        // outlast its whole backoff horizon (8 attempts with jitter: 64–127 s).
        const delayMs = (err as { retryAfterMs?: number }).retryAfterMs || opts.rateLimitPauseMs;
        await opts.connection.hincrby(metricsKey(opts.prefix), `deferred|${opts.queueName}`, 1);
        await job.moveToDelayed(Date.now() + delayMs, token);
        throw new DelayedError();
      }
      if (kind === 'permanent') throw new UnrecoverableError((err as Error).message);
      if (job.attemptsMade + 1 < maxAttempts) await opts.connection.hincrby(metricsKey(opts.prefix), `retries|${opts.queueName}`, 1);
      throw err;
    }
  };

  const worker = new Worker(opts.queueName, processor, {
    connection: opts.connection,
    prefix: opts.prefix,
    concurrency: opts.concurrency,
    ...(opts.ratePerSec ? { limiter: limiterFor(opts.ratePerSec, opts.limiterWindowMs) } : {}),
    lockDuration: opts.lockDurationMs,
    stalledInterval: opts.stalledIntervalMs,
    maxStalledCount: opts.maxStalledCount,
    ...(opts.backoffStrategy ? { settings: { backoffStrategy: opts.backoffStrategy } } : {}),
    // At worker level these take {count}/{age}; `true` breaks completion in bullmq 6.7 (DESIGN.md).
    removeOnComplete: { count: opts.keepCompleted },
    removeOnFail: { age: Math.ceil(opts.keepFailedMs / 1000) },
  });
  // Throttled: these repeat per reconnect try or per fetch attempt (a wrong Redis gave 94,000 lines in 20 s).
  worker.on('error', (err) => throttled(opts.log).error('worker error', err, opts.queueName));
  worker.on('failed', (job, err) => {
    if (job && (err instanceof UnrecoverableError || job.attemptsMade >= (job.opts.attempts ?? 1))) {
      opts.log.error({ queue: opts.queueName, jobId: job.id, reason: err.message }, 'job failed for good');
    }
  });

  let closing: Promise<void> | undefined;
  return {
    worker,
    close() {
      closing ??= (async () => {
        await worker.close();
        await queue.close();
      })();
      return closing;
    },
  };
}
