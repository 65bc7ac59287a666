/**
 * What /metrics reads from Redis at scrape time: the service-wide counters and
 * histogram buckets (kept by the transition script and the workers, whatever
 * process they run in), each queue's jobs per state, and the webhook events
 * not yet handled.
 */
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { INBOUND_QUEUE } from '../../jobs/inbound-event.ts';
import { outboundQueueName } from '../../jobs/index.ts';
import { SMS_QUEUE } from '../../jobs/send-sms.ts';
import { CALLBACK_QUEUE } from '../../jobs/deliver-callback.ts';
import { callbackFeedKey, metricsKey } from '../status/store.ts';
import { inboundStreamKey } from './inbound-stream.ts';
import { sharedQueue } from './shared-queue.ts';

export interface MetricsSnapshot {
  /** Fields like `state|SENT|agent-a`, `fallback|NOT_RCS`, `retries|<queue>`, `h|delivered|5`. */
  counters: Record<string, number>;
  queues: Array<{ queue: string; counts: Record<string, number> }>;
  webhookEventsPending: number;
  /** Status changes not yet turned into callback deliveries. */
  callbackFeedPending: number;
}

export class MetricsSource {
  /** Every queue of the service (also what bull-board shows). */
  readonly queues: Queue[];

  constructor(private readonly redis: Redis, private readonly prefix: string, agentIds: readonly string[]) {
    this.queues = [...agentIds.map(outboundQueueName), INBOUND_QUEUE, SMS_QUEUE, CALLBACK_QUEUE].map((name) => sharedQueue(name, redis, prefix));
  }

  async read(): Promise<MetricsSnapshot> {
    const [hash, pending, feed, ...counts] = await Promise.all([
      this.redis.hgetall(metricsKey(this.prefix)),
      this.redis.xlen(inboundStreamKey(this.prefix)),
      this.redis.xlen(callbackFeedKey(this.prefix)),
      ...this.queues.map((q) => q.getJobCounts('wait', 'prioritized', 'delayed', 'active', 'completed', 'failed')),
    ]);
    return {
      counters: Object.fromEntries(Object.entries(hash as Record<string, string>).map(([k, v]) => [k, Number(v)])),
      queues: this.queues.map((q, i) => ({ queue: q.name, counts: counts[i] as Record<string, number> })),
      webhookEventsPending: pending as number,
      callbackFeedPending: feed as number,
    };
  }

  async close(): Promise<void> {
    await Promise.all(this.queues.map((q) => q.close()));
  }
}
