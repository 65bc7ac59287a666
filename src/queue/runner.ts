/**
 * The shared worker runner: one BullMQ Worker per agent queue, dispatching by
 * job name to handlers, and the only place where a failure's classification
 * becomes a BullMQ call:
 *   rateLimited → pause the agent's whole queue (Queue.rateLimit) and delay the
 *                 job until the pause ends, without using an attempt
 *   permanent   → UnrecoverableError: no retry
 *   retry       → rethrow: BullMQ retries with the job's backoff
 */
import { DelayedError, Queue, UnrecoverableError, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { classify, RbmApiError } from '../errors.ts';
import type { Handler, Logger, Outcome } from '../handlers/types.ts';
import { limiterFor } from './limiter.ts';

export interface AgentWorkerOptions {
  queueName: string;
  prefix: string;
  /** A blocking connection (maxRetriesPerRequest: null); BullMQ duplicates it as needed. */
  connection: Redis;
  handlers: Readonly<Record<string, Handler>>;
  concurrency: number;
  /** The agent's quota; the limiter spreads it over short windows. */
  ratePerSec: number;
  limiterWindowMs: number;
  /** Pause on a 429 that carried no Retry-After. */
  rateLimitPauseMs: number;
  keepCompleted: number;
  keepFailedMs: number;
  log: Logger;
}

export interface AgentWorker {
  worker: Worker;
  /** Finishes the jobs in hand, then stops taking new ones. */
  close(): Promise<void>;
}

export function startAgentWorker(opts: AgentWorkerOptions): AgentWorker {
  // Used only to pause this agent's queue for every worker process at once.
  const queue = new Queue(opts.queueName, { connection: opts.connection, prefix: opts.prefix });
  queue.on('error', (err) => opts.log.error({ queue: opts.queueName, err: err.message }, 'queue connection error'));

  const processor = async (job: Job, token?: string): Promise<Outcome> => {
    const handler = opts.handlers[job.name];
    if (!handler) throw new UnrecoverableError(`no handler for job '${job.name}' on ${opts.queueName}`);
    const maxAttempts = job.opts.attempts ?? 1;
    try {
      return await handler(job.data, { jobId: job.id ?? '', attempt: job.attemptsMade + 1, maxAttempts });
    } catch (err) {
      const kind = classify(err);
      if (kind === 'rateLimited') {
        const pauseMs = (err instanceof RbmApiError && err.retryAfterMs) || opts.rateLimitPauseMs;
        opts.log.warn({ queue: opts.queueName, pauseMs }, 'RBM answered 429: pausing the agent queue');
        await queue.rateLimit(pauseMs);
        // Not Worker.RateLimitError(): in bullmq 6.7 that puts a prioritized job
        // back without the marker that wakes a long-polling worker, which then
        // sleeps its whole drainDelay (5 s) after every 429. A delayed job carries
        // its own wake-up marker, and moveToDelayed skips the attempt count.
        await job.moveToDelayed(Date.now() + pauseMs, token);
        throw new DelayedError();
      }
      if (kind === 'permanent') throw new UnrecoverableError((err as Error).message);
      throw err;
    }
  };

  const worker = new Worker(opts.queueName, processor, {
    connection: opts.connection,
    prefix: opts.prefix,
    concurrency: opts.concurrency,
    limiter: limiterFor(opts.ratePerSec, opts.limiterWindowMs),
    // At worker level these take {count}/{age}; `true` breaks completion in bullmq 6.7 (DESIGN.md).
    removeOnComplete: { count: opts.keepCompleted },
    removeOnFail: { age: Math.ceil(opts.keepFailedMs / 1000) },
  });
  worker.on('error', (err) => opts.log.error({ queue: opts.queueName, err: err.message }, 'worker error'));
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
