/**
 * The shared worker runner: one BullMQ Worker per queue (one per RBM agent,
 * the inbound queue, the SMS queue, the callback queue), dispatching by job
 * name to handlers (one per job name of the queue's kind, jobs/index.ts), and
 * the only place where a failure's class becomes BullMQ calls: the decision
 * is failure-action.ts's, the calls are made here.
 */
import { DelayedError, UnrecoverableError, Worker, type Job } from 'bullmq';
import { classify } from '../errors.ts';
import type { Handler, Logger, Outcome } from '../handlers/types.ts';
import { throttled } from '../log-throttle.ts';
import { countMetric, metricsKey } from '../status/store.ts';
import { AdaptiveRate, ADAPTIVE_RATE_KEY_TYPE } from './adaptive-rate.ts';
import { failureAction, retryAfterOf } from './failure-action.ts';
import { limiterFor } from './limiter.ts';
import type { RateAdaptOptions } from './rate-controller.ts';
import type { JobsOf, QueueKind } from '../../jobs/index.ts';
import type { JobQueues } from './job-queues.ts';
import { settlesWithin } from './settles-within.ts';

/** Beyond the lock's time, how long a closing worker may take before it is let go. */
const CLOSE_MARGIN_MS = 3000;

/** A handler for each job name a queue kind carries (jobs/index.ts): the compiler rejects a missing one. */
export type HandlersOf<K extends QueueKind> = { readonly [N in JobsOf<K>]: Handler };

export interface QueueWorkerOptions<K extends QueueKind = QueueKind> {
  /** Which queue: its kind, and for an outbound queue its agent. */
  kind: K;
  agentId?: string | undefined;
  /** For a laned kind without an agent (the inbound queue): which lane's queue (its prefix, keyspace.ts). */
  lane?: string | undefined;
  /** The workers' queue registry: its connection is a blocking one (maxRetriesPerRequest: null), which BullMQ duplicates. */
  queues: JobQueues;
  handlers: HandlersOf<K>;
  concurrency: number;
  /** The upstream's quota (an RBM agent's, the SMS provider's); the limiter spreads it over short windows. None: unlimited. */
  ratePerSec?: number;
  limiterWindowMs: number;
  /** Adapt the rate to 429s (agent queues): ratePerSec becomes a ceiling, the limiter lives in Redis. */
  adaptRate?: RateAdaptOptions;
  /** How long a job's lock lasts, and how often locks of crashed workers are checked (BullMQ stalled jobs). */
  lockDurationMs: number;
  stalledIntervalMs: number;
  /** A job whose worker died this many times fails; a send is safe to run again (stable IDs), so it is generous. */
  maxStalledCount: number;
  /** Pause on a 429 that carried no Retry-After; with adaptRate, only how long that job waits. */
  rateLimitPauseMs: number;
  keepCompleted: number;
  keepFailedMs: number;
  /** For jobs whose backoff type is not BullMQ's own: the delay before a retry (the callback schedule). */
  backoffStrategy?: (attemptsMade: number) => number;
  /** Told of each job put back without an attempt (`defer`), once it is delayed: the callback worker lists it for a wake-up. */
  onDeferred?: (job: { id: string; data: unknown }, err: unknown) => Promise<void>;
  log: Logger;
}

export interface QueueWorker {
  worker: Worker;
  /** Finishes the jobs in hand, then stops taking new ones. */
  close(): Promise<void>;
}

export function startQueueWorker<K extends QueueKind>(options: QueueWorkerOptions<K>): QueueWorker {
  // Pauses this queue for every worker process at once (Retry-After), and names its keys.
  // Its errors are the shared connection's, which the worker below reports too.
  const queue = options.queues.queue(options.kind, options.agentId, options.lane);
  // The queue's own prefix (its lane's, keyspace.ts); its counters go to its lane's metrics hash too.
  const opts = {
    ...options,
    queueName: queue.name,
    prefix: queue.opts.prefix ?? options.queues.prefix,
    connection: options.queues.connection,
  };
  const handlers: Readonly<Record<string, Handler>> = options.handlers;
  const adaptive =
    opts.adaptRate && opts.ratePerSec
      ? new AdaptiveRate({
          redis: opts.connection,
          queueName: opts.queueName,
          stateKey: queue.toKey(ADAPTIVE_RATE_KEY_TYPE),
          metaKey: queue.toKey('meta'),
          ceiling: opts.ratePerSec,
          limiterWindowMs: opts.limiterWindowMs,
          adapt: opts.adaptRate,
          log: opts.log,
        })
      : undefined;
  const processor = async (job: Job, token?: string): Promise<Outcome> => {
    // Own keys only: a job named 'constructor' (whoever wrote it to Redis) has no handler.
    const handler = Object.hasOwn(handlers, job.name) ? handlers[job.name] : undefined;
    if (!handler) throw new UnrecoverableError(`no handler for job '${job.name}' on ${opts.queueName}`);
    const maxAttempts = job.opts.attempts ?? 1;
    try {
      const outcome = await handler(job.data, { jobId: job.id ?? '', attempt: job.attemptsMade + 1, maxAttempts, queuedAt: job.timestamp });
      adaptive?.accepted();
      return outcome;
    } catch (err) {
      // What to do is decided in failure-action.ts (the why is there); the calls are made here.
      const action = failureAction(classify(err), {
        retryAfterMs: retryAfterOf(err),
        attemptsMade: job.attemptsMade,
        maxAttempts,
        adaptive: adaptive !== undefined,
        rateLimitPauseMs: opts.rateLimitPauseMs,
      });
      if (action.kind === 'throttle' || action.kind === 'pause-queue') {
        if (action.kind === 'throttle') {
          await adaptive?.throttled();
          await countMetric(opts.connection, opts.prefix, 'ratelimited', opts.queueName);
        } else {
          opts.log.warn({ queue: opts.queueName, pauseMs: action.ms }, 'upstream answered 429: pausing the queue');
          await queue.rateLimit(action.ms);
          await opts.connection
            .multi()
            .hincrby(metricsKey(opts.prefix), `ratelimited|${opts.queueName}`, 1)
            .hincrby(metricsKey(opts.prefix), `throttled_ms|${opts.queueName}`, action.ms)
            .exec();
        }
        // Not Worker.RateLimitError(): in bullmq 6.7 that puts a prioritized job
        // back without the marker that wakes a long-polling worker, which then
        // sleeps its whole drainDelay (5 s) after every 429. A delayed job carries
        // its own wake-up marker, and moveToDelayed skips the attempt count.
        await job.moveToDelayed(Date.now() + action.ms, token);
        throw new DelayedError();
      }
      if (action.kind === 'delay') {
        await countMetric(opts.connection, opts.prefix, 'deferred', opts.queueName);
        await job.moveToDelayed(Date.now() + action.ms, token);
        // Only now, once it is delayed, may something promote it (see onDeferred).
        await opts
          .onDeferred?.({ id: job.id ?? '', data: job.data }, err)
          .catch((e: Error) => throttled(opts.log).warn('after deferring a job', e, opts.queueName));
        throw new DelayedError();
      }
      // Answered, though not with success: the call still counted against the quota.
      adaptive?.accepted();
      if (action.kind === 'fail') throw new UnrecoverableError((err as Error).message);
      if (!action.lastAttempt) await countMetric(opts.connection, opts.prefix, 'retries', opts.queueName);
      throw err;
    }
  };

  const worker = new Worker(opts.queueName, processor, {
    connection: opts.connection,
    prefix: opts.prefix,
    concurrency: opts.concurrency,
    autorun: !adaptive,
    // An adaptive queue's limiter is the queue's global one in Redis (adaptive-rate.ts), set before the worker starts.
    ...(opts.ratePerSec && !adaptive ? { limiter: limiterFor(opts.ratePerSec, opts.limiterWindowMs) } : {}),
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
  adaptive?.ready.then(
    () => {
      if (!closing) worker.run().catch((err: Error) => opts.log.error({ queue: opts.queueName, err: err.message }, 'worker stopped'));
    },
    (err: Error) => opts.log.error({ queue: opts.queueName, err: err.message }, 'could not set the rate limit: worker not started'),
  );
  return {
    worker,
    close() {
      closing ??= (async () => {
        adaptive?.close();
        // Jobs in hand get their lock's time to finish; past that the worker is let go (settles-within.ts).
        const bound = opts.lockDurationMs + CLOSE_MARGIN_MS;
        if (!(await settlesWithin(worker.close(), bound))) {
          opts.log.warn(
            { queue: opts.queueName, afterMs: bound },
            'worker did not close in time; letting it go (its jobs run again elsewhere)',
          );
          void worker.close(true).catch(() => undefined);
        }
      })();
      return closing;
    },
  };
}
