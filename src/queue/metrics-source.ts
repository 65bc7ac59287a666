/**
 * What /metrics reads from Redis at scrape time: the service-wide counters and
 * histogram buckets (kept by the transition script and the workers, whatever
 * process they run in), each queue's jobs per state, each agent's effective
 * rate, and the webhook events not yet handled.
 */
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { readDispatcherStats } from '../agents/membership.ts';
import { openReceiversKey } from '../callbacks/receivers.ts';
import { callbackFeedKey, intakeStreamKey, metricsKey } from '../status/store.ts';
import { ADAPTIVE_RATE_KEY_TYPE, readEffectiveRate } from './adaptive-rate.ts';
import type { JobQueues } from './job-queues.ts';

export interface MetricsSnapshot {
  /** Fields like `state|SENT|agent-a`, `fallback|NOT_RCS`, `retries|<queue>`, `h|delivered|5`. */
  counters: Record<string, number>;
  queues: Array<{ queue: string; counts: Record<string, number> }>;
  /** Messages per second each agent's limiter allows now; an agent no dispatcher has served yet is absent. */
  agentRates: Array<{ agent: string; rate: number }>;
  webhookEventsPending: number;
  /** Status changes not yet turned into callback deliveries. */
  callbackFeedPending: number;
  /** Callback receivers whose breaker is open (their deliveries parked). */
  callbackReceiversOpen: number;
  /** Each live dispatch process: the agents it serves and the Redis connections it holds, as of its last beat. */
  dispatchers: Array<{ id: string; agents: number; connections: number }>;
}

export class MetricsSource {
  private readonly prefix: string;

  constructor(
    private readonly redis: Redis,
    private readonly registry: JobQueues,
    /** The agents whose queues count: read at every scrape, so agents added at run time show. */
    private readonly agentIds: () => readonly string[],
  ) {
    this.prefix = registry.prefix;
  }

  /** Every queue of the service now (also what bull-board shows): each agent's, each lane's inbound one, then the shared ones. */
  get queues(): Queue[] {
    return [
      ...this.agentIds().map((agent) => this.registry.queue('outbound', agent)),
      ...this.registry.keyspace.tags.map((lane) => this.registry.queue('inbound', undefined, lane)),
      ...(['sms', 'callbacks'] as const).map((k) => this.registry.queue(k)),
    ];
  }

  async read(): Promise<MetricsSnapshot> {
    const queues = this.queues;
    const lanes = this.registry.keyspace.tags;
    const rateKeys = this.agentIds().map((agent, i) => ({ agent, key: queues[i]!.toKey(ADAPTIVE_RATE_KEY_TYPE) }));
    const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
    // Each lane has its counters and streams (keyspace.ts): the service's figures are their sums.
    const [hashes, pending, feed, open, rates, dispatchers, ...counts] = await Promise.all([
      Promise.all(lanes.map((lane) => this.redis.hgetall(metricsKey(lane)))),
      Promise.all(lanes.map((lane) => this.redis.xlen(intakeStreamKey(lane)))).then(sum),
      Promise.all(lanes.map((lane) => this.redis.xlen(callbackFeedKey(lane)))).then(sum),
      this.redis.zcard(openReceiversKey(this.prefix)),
      Promise.all(rateKeys.map(async ({ agent, key }) => ({ agent, rate: await readEffectiveRate(this.redis, key) }))),
      readDispatcherStats(this.redis, this.prefix),
      ...queues.map((q) => q.getJobCounts('wait', 'prioritized', 'delayed', 'active', 'completed', 'failed')),
    ]);
    const counters: Record<string, number> = {};
    for (const hash of hashes as Array<Record<string, string>>) {
      for (const [k, v] of Object.entries(hash)) counters[k] = (counters[k] ?? 0) + Number(v);
    }
    // The lanes' inbound queues show as one.
    const byName = new Map<string, Record<string, number>>();
    queues.forEach((q, i) => {
      const c = counts[i] as Record<string, number>;
      const seen = byName.get(q.name);
      if (!seen) byName.set(q.name, { ...c });
      else for (const [k, v] of Object.entries(c)) seen[k] = (seen[k] ?? 0) + v;
    });
    return {
      counters,
      queues: [...byName].map(([queue, c]) => ({ queue, counts: c })),
      agentRates: (rates as Array<{ agent: string; rate: number | undefined }>).flatMap(({ agent, rate }) =>
        rate === undefined ? [] : [{ agent, rate }],
      ),
      webhookEventsPending: pending as number,
      callbackFeedPending: feed as number,
      callbackReceiversOpen: open as number,
      dispatchers: (dispatchers as Awaited<ReturnType<typeof readDispatcherStats>>).map(({ id, agents, connections }) => ({
        id,
        agents,
        connections,
      })),
    };
  }
}
