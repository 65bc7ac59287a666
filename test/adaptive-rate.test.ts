/**
 * The adaptive rate end to end: real Redis, the emulator's token-bucket quota
 * over real HTTP, changed at run time through its control API. Two worker
 * sets on one agent stand for two dispatch processes: they share the rate
 * only through Redis.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Queue } from 'bullmq';
import { outboundQueueName } from '../jobs/index.ts';
import { createMetrics } from '../src/api/metrics.ts';
import { ADAPTIVE_RATE_KEY_TYPE } from '../src/queue/adaptive-rate.ts';
import { limiterForRate } from '../src/queue/limiter.ts';
import { busiestSecond, limiterReleases, rcsPhone, startHarness, waitFor, type Harness } from './helpers.ts';

let h: Harness | undefined;
let queue: Queue | undefined;
afterEach(async () => {
  await queue?.close();
  await h?.close();
  h = undefined;
  queue = undefined;
});

const text = (t: string) => ({ contentMessage: { text: t } });

async function control(h: Harness, path: string, method: string, body?: unknown): Promise<any> {
  const res = await fetch(`${h.emulator.url}/_emulator${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  expect(res.status, `control ${method} ${path}`).toBeLessThan(300);
  return res.json();
}

/** The stored state of agent-a's rate, and the limiter BullMQ's fetch script reads. */
async function rateOf(h: Harness) {
  queue ??= new Queue(outboundQueueName('agent-a'), { connection: h.redis.producer, prefix: h.service.keyspace.of('agent-a') });
  const [state, limiter] = await Promise.all([h.redis.producer.hgetall(queue.toKey(ADAPTIVE_RATE_KEY_TYPE)), queue.getGlobalRateLimit()]);
  return { rate: Number(state.rate), version: Number(state.v), limiter };
}

async function send(h: Harness, n: number, tag: string) {
  return h.producer.sendMessages(Array.from({ length: n }, (_, i) => ({ to: rcsPhone(i, tag), ...text(`${tag} ${i}`) })));
}

describe('adaptive rate', () => {
  it('drops under a quota below the configured rate, climbs back to it when the quota is lifted, never past it, burning no attempt', async () => {
    h = await startHarness({
      name: 'adapt',
      env: { RBM_AGENTS: 'agent-a:100', RATE_ADAPT_INCREASE_PER_SEC: '0.25', RBM_RATE_LIMIT_PAUSE_MS: '200' },
      emulator: { quotas: { 'agent-a': { ratePerSec: 40 } } },
    });
    const first = await send(h, 200, '301');
    h.startDispatch();
    h.startDispatch();
    // The worker sets start fetching once the limiter is in Redis.
    expect(
      (
        await waitFor(
          () => rateOf(h!),
          (r) => r.limiter !== null,
        )
      ).limiter,
    ).toEqual(limiterForRate(100, 100));

    // The quota holds: the two worker sets agree on one lower rate.
    const low = await waitFor(
      () => rateOf(h!),
      (r) => r.rate < 50,
    );
    expect(low.limiter).toEqual(limiterForRate(low.rate, 100));
    const limitedAtLow = (await control(h, '/counters', 'GET')).rateLimited as number;
    expect(limitedAtLow).toBeGreaterThan(0);

    // Lifted: clean seconds raise the rate back to the configured one, and not past it.
    await control(h, '/quotas/agent-a', 'DELETE');
    const second = await send(h, 450, '302');
    const top = await waitFor(
      () => rateOf(h!),
      (r) => r.rate === 100,
      15_000,
    );
    expect(top.limiter).toEqual(limiterForRate(100, 100));

    const all = [...first, ...second];
    const outcomes = (await Promise.all(all.map((s) => h!.outcome('agent-a', `msg-${s.messageId}`)))) as Array<{
      outcome: string;
      attempt: number;
    }>;
    expect(outcomes.filter((o) => !(o.outcome === 'SENT' && o.attempt === 1))).toEqual([]);
    const statuses = await Promise.all(all.map((s) => h!.producer.getStatus(s.messageId)));
    expect(statuses.filter((s) => !(s?.state === 'SENT' && s.attempts === 1))).toEqual([]);
    // The configured rate, plus one window's share (fixed windows: a trailing
    // second can hold 11 of them), plus one more when a raise lands in an open window.
    // Counted where the limiter releases jobs (Redis time), not at the emulator,
    // where a busy machine's HTTP jitter can bunch a second's calls together.
    const released = await limiterReleases(h, 'agent-a');
    expect(released.length).toBeGreaterThanOrEqual(all.length);
    expect(busiestSecond(released)).toBeLessThanOrEqual(120);
    expect((await rateOf(h)).rate).toBe(100);

    const metrics = createMetrics({ read: () => h!.service.metricsSource.read() });
    expect(await metrics.registry.metrics()).toContain('rbm_agent_effective_rate{agent="agent-a"} 100');
  }, 30_000);

  it('a burst of 429s answered together is one decrease, not one per answer', async () => {
    h = await startHarness({ name: 'adapt-burst', env: { RBM_AGENTS: 'agent-a:100', RBM_RATE_LIMIT_PAUSE_MS: '50' } });
    await control(h, '/faults', 'PUT', { failNext: [{ kind: '429', count: 25 }] });
    const sent = await send(h, 30, '303');
    h.startDispatch();
    h.startDispatch();
    const outcomes = (await Promise.all(sent.map((s) => h!.outcome('agent-a', `msg-${s.messageId}`)))) as Array<{ attempt: number }>;
    expect(outcomes.every((o) => o.attempt === 1)).toBe(true);
    expect((await control(h, '/counters', 'GET')).rateLimited).toBe(25);
    // The burst's first 429 had too few calls behind it for a share: one plain 10 % step, and a second would be ≤ 81.
    const { rate, version } = await rateOf(h);
    expect(rate).toBeGreaterThanOrEqual(90);
    expect(rate).toBeLessThan(100);
    // One write per worker set at start-up, one decrease, and at most the increases of clean seconds since.
    expect(version).toBeLessThanOrEqual(3 + Math.round((rate - 90) / 2));
  });

  it('honours Retry-After: the queue waits that long and the rate stays', async () => {
    h = await startHarness({ name: 'adapt-retry-after', env: { RBM_AGENTS: 'agent-a:100' } });
    await control(h, '/faults', 'PUT', { failNext: [{ kind: '429', count: 1, retryAfterSec: 1 }] });
    const requests: number[] = [];
    h.emulator.state.events.on('request', () => requests.push(Date.now()));
    h.startDispatch();
    const [sent] = await send(h, 1, '304');
    expect(await h.outcome('agent-a', `msg-${sent!.messageId}`)).toMatchObject({ outcome: 'SENT', attempt: 1 });
    expect(requests).toHaveLength(2);
    expect(requests[1]! - requests[0]!).toBeGreaterThanOrEqual(950);
    expect((await rateOf(h)).rate).toBe(100);
  });
});
