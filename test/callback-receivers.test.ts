/**
 * The per-receiver state of status callbacks (src/callbacks/receivers.ts)
 * against a real Redis, on a clock the test moves: the fair order, the
 * in-flight cap, the breaker's edges, and who gets woken when.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { openReceiversKey, PRIORITY_LIMIT, Receivers, receiverDigest, type ReceiverOptions } from '../src/callbacks/receivers.ts';
import { createRedis, whenReady } from '../src/queue/connection.ts';
import { metricsKey } from '../src/status/store.ts';
import { redisUrl, uniquePrefix } from './helpers.ts';

const prefix = uniquePrefix('cb-receivers');
const silent = { info() {}, warn() {}, error() {}, debug() {} };
const options: ReceiverOptions = {
  maxInFlight: 2,
  threshold: 3,
  cooldownMs: 1000,
  maxCooldownMs: 4000,
  timeoutMs: 500,
  retryForMs: 60_000,
};
let redis: Redis;
let clock = 1_800_000_000_000;
let woken: string[] = [];
let n = 0;

/** A fresh origin each time, so the tests share nothing but Redis. */
const origin = () => `https://receiver-${++n}.example`;

function receivers(o: Partial<ReceiverOptions> = {}) {
  return new Receivers(
    redis,
    prefix,
    { ...options, ...o },
    async (ids) => void woken.push(...ids),
    silent,
    () => clock,
  );
}

beforeAll(async () => {
  redis = createRedis(redisUrl(), 'producer');
  await whenReady(redis);
});
afterAll(async () => {
  const keys = await redis.keys(`${prefix}:*`);
  if (keys.length > 0) await redis.del(...keys);
  await redis.quit();
});

describe('fair order', () => {
  it("each receiver's deliveries are numbered by its own depth: a long backlog does not stand in front of a short one", async () => {
    const r = receivers();
    const [a, b] = [origin(), origin()];
    expect(await r.priorities(a, ['a1', 'a2', 'a3', 'a4', 'a5'])).toEqual([1, 2, 3, 4, 5]);
    expect(await r.priorities(b, ['b1', 'b2'])).toEqual([1, 2]);
    // A job ID already queued adds no depth (the queue adds it once).
    expect(await r.priorities(b, ['b2'])).toEqual([2]);
  });

  it("never lower than the receiver's last one while some of its deliveries are queued (their order holds); back to 1 once none is", async () => {
    const r = receivers();
    const a = origin();
    await r.priorities(a, ['a1', 'a2', 'a3']);
    await r.report(a, 'a1', { ok: true, probe: false, done: true });
    await r.report(a, 'a2', { ok: true, probe: false, done: true });
    // Depth is 2 now, but a3 waits at 3: a4 must not overtake it.
    expect(await r.priorities(a, ['a4'])).toEqual([3]);
    await r.report(a, 'a3', { ok: true, probe: false, done: true });
    await r.forget(a, 'a4');
    expect(await r.priorities(a, ['a5'])).toEqual([1]);
  });

  it("past BullMQ's highest priority number, deliveries share it", async () => {
    const r = receivers();
    const a = origin();
    await r.priorities(a, ['x']);
    await redis.hset(`${prefix}:callback-receiver:${receiverDigest(a)}`, 'tag', PRIORITY_LIMIT);
    expect(await r.priorities(a, ['y', 'z'])).toEqual([PRIORITY_LIMIT, PRIORITY_LIMIT]);
  });
});

describe('in flight', () => {
  it('at most maxInFlight calls at once; a call that ends hands its slot to the oldest parked delivery and wakes it', async () => {
    const r = receivers();
    const a = origin();
    woken = [];
    expect(await r.admit(a, 'j1')).toEqual({ verdict: 'call' });
    expect(await r.admit(a, 'j2')).toEqual({ verdict: 'call' });
    const busy = await r.admit(a, 'j3');
    expect(busy.verdict).toBe('busy');
    // Its own delay is only the fallback: one timeout when nobody is parked ahead of it.
    expect((busy as { untilMs: number }).untilMs - clock).toBeGreaterThanOrEqual(options.timeoutMs);
    await r.parked(a, 'j3');
    expect(await r.admit(a, 'j4')).toMatchObject({ verdict: 'busy' });
    await r.parked(a, 'j4');
    expect(woken).toEqual([]);
    await r.report(a, 'j1', { ok: true, probe: false, done: true });
    expect(woken).toEqual(['j3']);
    // The freed slot is j3's: one fetched before j3 comes back does not take it.
    expect((await r.admit(a, 'j5')).verdict).toBe('busy');
    expect(await r.admit(a, 'j3')).toEqual({ verdict: 'call' });
    // A failure frees its slot too (the breaker is still closed).
    await r.report(a, 'j2', { ok: false, probe: false, done: false, failure: 'answered 500' });
    expect(woken).toEqual(['j3', 'j4']);
  });

  it('a delivery parked after the slot came free (the wake-up found nobody) is woken at once', async () => {
    const r = receivers();
    const a = origin();
    woken = [];
    await r.admit(a, 'j1');
    await r.admit(a, 'j2');
    expect((await r.admit(a, 'j3')).verdict).toBe('busy');
    await r.report(a, 'j1', { ok: true, probe: false, done: true }); // before j3 is listed
    expect(woken).toEqual([]);
    await r.parked(a, 'j3');
    expect(woken).toEqual(['j3']);
  });

  it('a crashed call frees its slot when its lease runs out', async () => {
    const r = receivers();
    const a = origin();
    await r.admit(a, 'j1');
    await r.admit(a, 'j2');
    expect((await r.admit(a, 'j3')).verdict).toBe('busy');
    clock += options.timeoutMs + 5001;
    expect(await r.admit(a, 'j3')).toEqual({ verdict: 'call' });
  });
});

describe('breaker', () => {
  const fail = { ok: false, probe: false, done: false, failure: 'no answer (connect ECONNREFUSED)' };

  it('opens after `threshold` deliveries failed with no success between; one delivery failing again and again does not', async () => {
    const r = receivers();
    const a = origin();
    for (let i = 0; i < 5; i++) {
      await r.admit(a, 'poison');
      await r.report(a, 'poison', fail);
    }
    expect(await r.admit(a, 'x')).toEqual({ verdict: 'call' });
    await r.report(a, 'x', fail);
    await r.admit(a, 'y');
    await r.report(a, 'y', { ok: true, probe: false, done: true }); // a success starts the count again
    for (const id of ['p', 'q']) {
      await r.admit(a, id);
      await r.report(a, id, fail);
    }
    expect(await r.admit(a, 'z')).toEqual({ verdict: 'call' });
    const opened = Number((await redis.hget(metricsKey(prefix), 'callback_breaker|opened')) ?? 0);
    await r.report(a, 'z', fail);
    expect(Number(await redis.hget(metricsKey(prefix), 'callback_breaker|opened'))).toBe(opened + 1);
    const parked = await r.admit(a, 'w');
    expect(parked).toMatchObject({ verdict: 'open', lastFailure: 'no answer (connect ECONNREFUSED)' });
    // Back at the end of the cooldown, spread over half of it.
    const untilMs = (parked as { untilMs: number }).untilMs;
    expect(untilMs).toBeGreaterThanOrEqual(clock + options.cooldownMs);
    expect(untilMs).toBeLessThan(clock + options.cooldownMs * 1.5);
    expect(await redis.zscore(openReceiversKey(prefix), receiverDigest(a))).not.toBeNull();
  });

  it('after the cooldown one probe at a time; a failed probe doubles the cooldown up to the cap; a 2xx closes it and wakes maxInFlight parked', async () => {
    const r = receivers();
    const a = origin();
    woken = [];
    for (const id of ['f1', 'f2', 'f3']) {
      await r.admit(a, id);
      await r.report(a, id, fail);
    }
    const openBefore = await redis.zcard(openReceiversKey(prefix));
    for (const id of ['p1', 'p2', 'p3']) {
      expect((await r.admit(a, id)).verdict).toBe('open');
      await r.parked(a, id);
    }
    expect(woken).toEqual([]); // no slot wakes anyone while the breaker is open
    let cooldown = options.cooldownMs;
    for (const next of [2000, 4000, 4000]) {
      clock += cooldown;
      expect(await r.admit(a, 'p1')).toEqual({ verdict: 'probe' });
      expect((await r.admit(a, 'p2')).verdict).toBe('open'); // the probe is out: wait for it
      await r.report(a, 'p1', { ...fail, probe: true });
      const again = (await r.admit(a, 'p2')) as { untilMs: number };
      expect(again.untilMs - clock).toBeGreaterThanOrEqual(next);
      cooldown = next;
    }
    clock += cooldown;
    expect(await r.admit(a, 'p1')).toEqual({ verdict: 'probe' });
    const closed = Number((await redis.hget(metricsKey(prefix), 'callback_breaker|closed')) ?? 0);
    await r.report(a, 'p1', { ok: true, probe: true, done: true });
    expect(Number(await redis.hget(metricsKey(prefix), 'callback_breaker|closed'))).toBe(closed + 1);
    expect(woken).toEqual(['p2', 'p3'].slice(0, options.maxInFlight));
    expect(await redis.zcard(openReceiversKey(prefix))).toBe(openBefore - 1);
    expect(await r.admit(a, 'p2')).toEqual({ verdict: 'call' });
  });

  it('a probe whose process died is replaced once its lease runs out', async () => {
    const r = receivers();
    const a = origin();
    for (const id of ['f1', 'f2', 'f3']) {
      await r.admit(a, id);
      await r.report(a, id, fail);
    }
    clock += options.cooldownMs;
    expect(await r.admit(a, 'p1')).toEqual({ verdict: 'probe' });
    expect((await r.admit(a, 'p2')).verdict).toBe('open');
    clock += options.timeoutMs + 5001;
    expect(await r.admit(a, 'p2')).toEqual({ verdict: 'probe' });
  });
});
