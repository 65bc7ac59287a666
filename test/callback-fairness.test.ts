/**
 * Callbacks isolated per receiver, end to end: the real callback worker, real
 * HTTP receivers. A dead receiver (one that accepts and never answers, one
 * that refuses connections) with 10,000 deliveries queued ahead must not hold
 * up another receiver's 100; its own deliveries wait, parked, and are all
 * delivered, each once, when it comes back; parked ones that outlive the
 * retry horizon fail for good without having used their attempts.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { Queue } from 'bullmq';
import { CALLBACK_QUEUE, deliverCallbackJobId, callbackWebhookId, type DeliverCallbackPayload } from '../jobs/index.ts';
import { createMetrics } from '../src/api/metrics.ts';
import { metricsKey } from '../src/status/store.ts';
import { freePort, startCallbackReceiver, startHarness, waitFor, type Harness } from './helpers.ts';

const SECRET = `whsec_${randomBytes(32).toString('base64')}`;

type Receiver = Awaited<ReturnType<typeof startCallbackReceiver>>;
let h: Harness | undefined;
let queue: Queue | undefined;
const receivers: Receiver[] = [];
afterEach(async () => {
  // Receivers first: a call hanging on one ends now, not at the callback timeout.
  await Promise.all(receivers.splice(0).map((r) => r.close()));
  await queue?.close();
  await h?.close();
  h = undefined;
  queue = undefined;
});

async function receiver(...args: Parameters<typeof startCallbackReceiver>): Promise<Receiver> {
  const r = await startCallbackReceiver(...args);
  receivers.push(r);
  return r;
}

async function harness(name: string, env: Record<string, string> = {}): Promise<Harness> {
  h = await startHarness({ name, env: { CALLBACK_SECRET: SECRET, CALLBACK_ALLOW_HOSTS: '127.0.0.1', ...env } });
  queue = new Queue(CALLBACK_QUEUE, { connection: h.redis.producer, prefix: h.config.queuePrefix });
  return h;
}

function deliveries(url: string, count: number): DeliverCallbackPayload[] {
  const at = Date.now();
  return Array.from({ length: count }, () => ({
    url,
    scope: 'default',
    data: { messageId: randomUUID(), agentId: 'agent-a', state: 'DELIVERED', previousState: 'SENT', at },
  }));
}

/** Queued as the callback feed queues them, in chunks as a busy feed would. */
async function enqueue(h: Harness, list: DeliverCallbackPayload[]): Promise<void> {
  for (let i = 0; i < list.length; i += 1000) await h.service.callbacks.queue.enqueue(list.slice(i, i + 1000));
}

const counter = async (h: Harness, field: string) => Number((await h.redis.producer.hget(metricsKey(h.config.queuePrefix), field)) ?? 0);
const parkedSoFar = async (h: Harness) => (await counter(h, 'callback_parked|open')) + (await counter(h, 'callback_parked|busy'));

describe('a dead receiver delays only its own callbacks', () => {
  it.each([
    ['accepts and never answers', 'hang'],
    ['refuses connections', 'refuse'],
  ] as const)('10,000 queued to a receiver that %s, then 100 to a live one: the 100 arrive within 5 s', async (_what, kind) => {
    // The service's defaults: CALLBACK_TIMEOUT_MS 10 s, 50 in flight, 10 per receiver, breaker after 5.
    const h = await harness(`fair-${kind}`);
    const dead = kind === 'hang' ? (await receiver(() => 'hang')).url : `http://127.0.0.1:${await freePort()}`;
    const live = await receiver();
    h.startCallbacks();

    const started = Date.now();
    await enqueue(h, deliveries(`${dead}/status`, 10_000));
    const queuedDead = Date.now();
    const t0 = Date.now();
    const parkedAtT0 = await parkedSoFar(h);
    await enqueue(h, deliveries(`${live.url}/status`, 100));
    const delivered = await Promise.race([
      live.until(100, (r) => r.status === 200),
      new Promise<never>((_, reject) =>
        setTimeout(() => reject(new Error(`the live receiver got ${live.received.length} of 100 within 5 s`)), 5000),
      ),
    ]);
    const tookMs = Date.now() - t0;
    expect(new Set(delivered.map((r) => r.headers['webhook-id'])).size).toBe(100);
    const parked = await parkedSoFar(h);
    // How fast the worker steps over the dead receiver's deliveries once they are all it has (its cost per skipped job).
    const skipFrom = Date.now();
    await waitFor(
      () => parkedSoFar(h),
      (n) => n >= parked + 1000,
    );
    const skipRate = Math.round(((await parkedSoFar(h)) - parked) / ((Date.now() - skipFrom) / 1000));
    const deadCalls = kind === 'hang' ? receivers[0]!.received.length : await counter(h, 'callback|retried');
    console.log(
      `dead receiver (${kind}): 10,000 queued in ${queuedDead - started} ms; the live 100 delivered ${tookMs} ms after they were queued; ` +
        `dead deliveries parked: ${parked} in all (${Math.round(parked / ((Date.now() - started) / 1000))}/s since the first was queued; ${Math.round((parked - parkedAtT0) / (tookMs / 1000))}/s while the live 100 went), ` +
        `then ${skipRate}/s alone; ${deadCalls} calls reached or tried the dead receiver`,
    );
    expect(tookMs).toBeLessThan(5000);
    // The dead receiver got no more calls than its cap (hang) or the breaker's threshold and the cap (refuse).
    expect(deadCalls).toBeLessThanOrEqual(kind === 'hang' ? 10 : 15);
    // Nothing of the dead receiver's was given up or lost: all still queued.
    await waitFor(
      () => queue!.getJobCounts('completed'),
      (c) => c.completed === 100,
    );
    const { failed, ...queued } = await queue!.getJobCounts('wait', 'prioritized', 'delayed', 'active', 'failed');
    expect(failed).toBe(0);
    expect(Object.values(queued).reduce((a, b) => a + b, 0)).toBe(10_000);
  });
});

describe('a receiver that comes back', () => {
  it.each([
    ['hung', 'hang'],
    ['refused connections', 'refuse'],
  ] as const)('one that %s gets every parked delivery once it answers again, each exactly once', async (_what, kind) => {
    const h = await harness(`back-${kind}`, {
      CALLBACK_TIMEOUT_MS: '1000',
      CALLBACK_BREAKER_COOLDOWN_MS: '200',
      CALLBACK_BREAKER_MAX_COOLDOWN_MS: '1000',
      CALLBACK_RETRY_BASE_MS: '200',
      CALLBACK_RETRY_MAX_DELAY_MS: '1000',
      CALLBACK_RETRY_FOR_MS: '120000',
    });
    let answering = false;
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    // A hanging receiver listens from the start; a refusing one has nothing on its port until it comes back.
    const back = kind === 'hang' ? await receiver(() => (answering ? 200 : 'hang'), { port }) : undefined;
    h.startCallbacks();
    const list = deliveries(`${url}/status`, 200);
    await enqueue(h, list);

    // The breaker opens, and the receiver's deliveries wait.
    await waitFor(
      () => h.service.metricsSource.read(),
      (s) => s.callbackReceiversOpen === 1,
    );
    await waitFor(
      () => parkedSoFar(h),
      (n) => n >= 200 - 10,
    );
    const metrics = createMetrics({ read: () => h.service.metricsSource.read() });
    const text = await metrics.registry.metrics();
    expect(text).toMatch(/^rbm_callback_receivers_open 1$/m);
    expect(text).toMatch(/^rbm_callback_breakers_total\{event="opened"\} 1$/m);
    expect(text).toMatch(/^rbm_callbacks_parked_total\{reason="(open|busy)"\} \d+$/m);

    const comingBack = Date.now();
    answering = true;
    const r = back ?? (await receiver(() => 200, { port }));
    const ids = new Set(list.map((d) => callbackWebhookId(d.data)));
    const got = await r.until(200, (x) => x.status === 200);
    console.log(
      `receiver that ${kind === 'hang' ? 'hung' : 'refused'}: all 200 parked deliveries arrived ${Date.now() - comingBack} ms after it answered again`,
    );
    expect(new Set(got.map((x) => x.headers['webhook-id']))).toEqual(ids);
    // Every job finishes completed: none failed, none left behind.
    await waitFor(
      () => queue!.getJobCounts('wait', 'prioritized', 'delayed', 'active', 'completed', 'failed'),
      (c) => c.completed === 200,
    );
    const counts = await queue!.getJobCounts('wait', 'prioritized', 'delayed', 'active', 'failed');
    expect(counts).toEqual({ wait: 0, prioritized: 0, delayed: 0, active: 0, failed: 0 });
    // Each change once: a second 200 for a webhook-id would be a duplicate delivery.
    const answered = r.received.filter((x) => x.status === 200).map((x) => x.headers['webhook-id']);
    expect(answered).toHaveLength(200);
    expect((await h.service.metricsSource.read()).callbackReceiversOpen).toBe(0);
  });
});

describe('the retry horizon', () => {
  it('a delivery still parked when CALLBACK_RETRY_FOR_MS has passed fails for good without a call', async () => {
    const h = await harness('horizon', {
      CALLBACK_BREAKER_THRESHOLD: '2',
      // Deliveries over the in-flight cap when the breaker opened sleep up to a timeout before they look again.
      CALLBACK_TIMEOUT_MS: '1000',
      CALLBACK_BREAKER_COOLDOWN_MS: '100000',
      CALLBACK_BREAKER_MAX_COOLDOWN_MS: '100000',
      CALLBACK_RETRY_BASE_MS: '100000',
      CALLBACK_RETRY_FOR_MS: '2000',
    });
    const refusing = await receiver(() => 500);
    const list = deliveries(`${refusing.url}/status`, 20);
    await enqueue(h, list);
    const failedBefore = await counter(h, 'callback|failed');
    h.startCallbacks();
    const outcomes = await Promise.allSettled(
      list.map((d) => h.outcomeOn(CALLBACK_QUEUE, deliverCallbackJobId(callbackWebhookId(d.data)))),
    );
    const reasons = outcomes.map((o) => (o.status === 'rejected' ? (o.reason as Error).message : 'completed'));
    // The first calls were answered 500 (one attempt: the first retry would start past the horizon), and opened the
    // breaker; the others were parked, made no call, and gave up at the horizon.
    const called = new Set(refusing.received.map((r) => r.headers['webhook-id']));
    expect(called.size).toBeGreaterThanOrEqual(2);
    expect(called.size).toBeLessThanOrEqual(10);
    list.forEach((d, i) => {
      if (called.has(callbackWebhookId(d.data))) expect(reasons[i]).toMatch(/answered 500/);
      else expect(reasons[i]).toMatch(/not delivered within the retry horizon: its receiver kept failing \(last: answered 500\)/);
    });
    expect((await counter(h, 'callback|failed')) - failedBefore).toBe(20);
  });
});
