import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { createRedis, whenReady } from '../src/queue/connection.ts';
import { canMove, isFinal, MessageStates, statesLeadingTo } from '../src/status/states.ts';
import { StatusStore } from '../src/status/store.ts';
import { redisUrl, uniquePrefix } from './helpers.ts';

const prefix = uniquePrefix('status');
let redis: Redis;
let store: StatusStore;
const id = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`;
/** Message IDs live per agent: the records here are agent-a's. */
const ref = (messageId: string) => ({ agentId: 'agent-a', messageId });

beforeAll(async () => {
  redis = createRedis(redisUrl(), 'producer');
  await whenReady(redis);
  store = new StatusStore(redis, { prefix, ttlMs: 30 * 86_400_000 });
});
afterAll(async () => {
  const keys = await redis.keys(`${prefix}:*`);
  if (keys.length) await redis.del(...keys);
  await redis.quit();
});

describe('state machine', () => {
  it('has exactly the edges of DESIGN.md plus the fallback claim, late deliveries, re-drives and a late SMS answer', () => {
    const edges = Object.values(MessageStates).flatMap((from) =>
      Object.values(MessageStates)
        .filter((to) => canMove(from, to))
        .map((to) => `${from}>${to}`),
    );
    expect(edges.sort()).toEqual(
      [
        'EXPIRED>DELIVERED',
        'EXPIRED>FALLBACK_QUEUED',
        'EXPIRED>READ',
        'FALLBACK_FAILED>DELIVERED',
        'FALLBACK_FAILED>FALLBACK_QUEUED',
        'FALLBACK_FAILED>FALLBACK_SENT',
        'FALLBACK_FAILED>READ',
        'FALLBACK_QUEUED>DELIVERED',
        'FALLBACK_QUEUED>FALLBACK_SENDING',
        'FALLBACK_QUEUED>READ',
        'FALLBACK_SENDING>FALLBACK_FAILED',
        'FALLBACK_SENDING>FALLBACK_SENDING',
        'FALLBACK_SENDING>FALLBACK_SENT',
        'FALLBACK_SENT>DELIVERED',
        'FALLBACK_SENT>READ',
        'NOT_RCS>FALLBACK_QUEUED',
        'QUEUED>EXPIRED',
        'QUEUED>FAILED',
        'QUEUED>REVOKED',
        'QUEUED>SENDING',
        'DELIVERED>READ',
        'FAILED>DELIVERED',
        'FAILED>QUEUED',
        'FAILED>READ',
        'REVOKED>DELIVERED',
        'REVOKED>FALLBACK_QUEUED',
        'REVOKED>READ',
        'SENDING>EXPIRED',
        'SENDING>FAILED',
        'SENDING>NOT_RCS',
        'SENDING>SENDING',
        'SENDING>SENT',
        'SENT>DELIVERED',
        'SENT>EXPIRED',
        'SENT>FALLBACK_QUEUED',
        'SENT>READ',
        'SENT>REVOKED',
      ].sort(),
    );
    expect(statesLeadingTo('SENT')).toEqual(['SENDING']);
    expect(Object.values(MessageStates).filter(isFinal).sort()).toEqual(['READ']);
  });

  it('never lets a delivered message fall back, nor an SMS be claimed twice', () => {
    for (const from of ['DELIVERED', 'READ'] as const) {
      expect(canMove(from, 'FALLBACK_QUEUED')).toBe(false);
      expect(canMove(from, 'FALLBACK_SENDING')).toBe(false);
    }
    expect(statesLeadingTo('FALLBACK_SENDING')).toEqual(['FALLBACK_QUEUED', 'FALLBACK_SENDING']);
    expect(canMove('FALLBACK_SENT', 'FALLBACK_SENDING')).toBe(false);
  });
});

describe('StatusStore', () => {
  it('creates a QUEUED record once, with the number masked and a 30-day TTL', async () => {
    const created = await store.createMany(
      [{ messageId: id(1), agentId: 'agent-a', to: '+12223334444', trafficType: 'AUTHENTICATION' }],
      1000,
    );
    expect(created).toEqual([null]);
    const again = await store.createMany([{ messageId: id(1), agentId: 'agent-a', to: '+12223334444' }], 2000);
    expect(again).toEqual(['QUEUED']);
    const status = await store.get(ref(id(1)));
    expect(status).toMatchObject({
      state: 'QUEUED',
      agentId: 'agent-a',
      to: '+1222***4444',
      trafficType: 'AUTHENTICATION',
      createdAt: 1000,
      attempts: 0,
    });
    expect(status!.timeline).toEqual([{ state: 'QUEUED', at: 1000 }]);
    const ttl = await redis.pttl(store.key(ref(id(1))));
    expect(ttl).toBeGreaterThan(29 * 86_400_000);
    expect(JSON.stringify(await redis.hgetall(store.key(ref(id(1)))))).not.toContain('3334444');
  });

  it('moves along allowed edges, counts attempts, keeps the error and the timeline', async () => {
    await store.createMany([{ messageId: id(2), agentId: 'agent-a', to: '+12223334444' }], 1);
    expect(await store.transition(ref(id(2)), 'SENDING', { now: 2 })).toEqual({ ok: true, from: 'QUEUED', state: 'SENDING' });
    expect(
      await store.transition(ref(id(2)), 'SENDING', { now: 3, countAttempt: true, error: { code: 'RBM_API', message: '503' } }),
    ).toEqual({ ok: true, from: 'SENDING', state: 'SENDING' });
    expect(await store.transition(ref(id(2)), 'SENT', { now: 4, countAttempt: true })).toEqual({
      ok: true,
      from: 'SENDING',
      state: 'SENT',
    });
    const status = await store.get(ref(id(2)));
    expect(status).toMatchObject({ state: 'SENT', attempts: 2, updatedAt: 4, lastError: { code: 'RBM_API', message: '503' } });
    expect(status!.timeline.map((t) => t.state)).toEqual(['QUEUED', 'SENDING', 'SENDING', 'SENT']);
  });

  it('refuses an edge the machine does not have, and changes nothing', async () => {
    await store.createMany([{ messageId: id(3), agentId: 'agent-a', to: '+12223334444' }], 1);
    expect(await store.transition(ref(id(3)), 'SENT')).toEqual({ ok: false, from: 'QUEUED' });
    expect((await store.get(ref(id(3))))!.timeline).toHaveLength(1);
    expect(await store.transition(ref(id(999)), 'SENDING')).toEqual({ ok: false, from: null });
    expect(await store.get(ref(id(999)))).toBeNull();
  });

  it('creates the record on the first move of a message that had none (its job was its QUEUED state)', async () => {
    const create = { messageId: id(4), agentId: 'agent-a', to: '+12223334444', createdAt: 10, trafficType: 'PROMOTION', batchId: 'b9' };
    expect(await store.transition(ref(id(4)), 'SENDING', { now: 20 })).toEqual({ ok: false, from: null });
    expect(await store.transition(ref(id(4)), 'SENDING', { now: 20, create })).toEqual({ ok: true, from: 'QUEUED', state: 'SENDING' });
    const status = await store.get(ref(id(4)));
    expect(status).toMatchObject({
      state: 'SENDING',
      agentId: 'agent-a',
      to: '+1222***4444',
      createdAt: 10,
      updatedAt: 20,
      trafficType: 'PROMOTION',
      batchId: 'b9',
    });
    expect(status!.timeline).toEqual([
      { state: 'QUEUED', at: 10 },
      { state: 'SENDING', at: 20 },
    ]);
    // An existing record wins over the create data.
    expect(await store.transition(ref(id(4)), 'SENT', { now: 30, create: { ...create, agentId: 'other' } })).toEqual({
      ok: true,
      from: 'SENDING',
      state: 'SENT',
    });
    expect((await store.get(ref(id(4))))!.agentId).toBe('agent-a');
    // A create can only enter states reachable from QUEUED.
    expect(await store.transition(ref(id(5)), 'SENT', { create: { ...create, messageId: id(5) } })).toEqual({ ok: false, from: null });
    expect(await store.get(ref(id(5)))).toBeNull();
  });

  it('resolves racing transitions one way', async () => {
    for (let n = 0; n < 20; n++) {
      const mid = id(100 + n);
      await store.createMany([{ messageId: mid, agentId: 'agent-a', to: '+12223334444' }]);
      await store.transition(ref(mid), 'SENDING');
      const results = await Promise.all([
        ...Array.from({ length: 5 }, () => store.transition(ref(mid), 'SENT')),
        ...Array.from({ length: 5 }, () => store.transition(ref(mid), 'NOT_RCS')),
        ...Array.from({ length: 5 }, () => store.transition(ref(mid), 'FAILED')),
      ]);
      expect(results.filter((r) => r.ok)).toHaveLength(1);
      const final = (await store.get(ref(mid)))!;
      expect(final.timeline).toHaveLength(3);
    }
  });
});

describe('the failures index', () => {
  it('pages through failures that share milliseconds without losing or repeating one, and filters by agent', async () => {
    const own = new StatusStore(redis, { prefix: `${prefix}-failures`, ttlMs: 86_400_000 });
    // 1,200 failures in two milliseconds: ties at every page edge, and
    // more than one internal read of 500 at a single score.
    const ids = Array.from({ length: 1200 }, (_, n) => id(900_000 + n));
    const agentOf = (n: number) => (n % 3 === 0 ? 'agent-b' : 'agent-a');
    await own.createMany(ids.map((messageId, n) => ({ messageId, agentId: agentOf(n), to: '+12223334444' })));
    for (const [n, messageId] of ids.entries()) {
      await own.transition({ agentId: agentOf(n), messageId }, 'SENDING', { now: 1000 });
      await own.transition({ agentId: agentOf(n), messageId }, 'FAILED', {
        now: 2000 + (n % 7 === 0 ? 0 : n % 2),
        error: { code: n % 5 === 0 ? 'RBM_API' : 'RBM_NETWORK', message: 'x' },
      });
    }
    const pageAll = async (query: { code?: string; agents?: ReadonlySet<string> }, limit: number) => {
      const seen: string[] = [];
      let before: number | undefined;
      for (let pages = 0; pages < 100; pages++) {
        const page = await own.failures({ ...query, limit, ...(before !== undefined ? { before } : {}) });
        seen.push(...page.failures.map((f) => f.messageId));
        for (let i = 1; i < page.failures.length; i++)
          expect(page.failures[i]!.failedAt).toBeLessThanOrEqual(page.failures[i - 1]!.failedAt);
        if (page.next === undefined) return seen;
        before = page.next;
      }
      throw new Error('paging did not end');
    };
    for (const limit of [1, 7, 100, 1000]) {
      const seen = await pageAll({}, limit);
      expect(seen).toHaveLength(1200);
      expect(new Set(seen).size).toBe(1200);
    }
    const agentB = await pageAll({ agents: new Set(['agent-b']) }, 50);
    expect(agentB.sort()).toEqual(ids.filter((_, n) => agentOf(n) === 'agent-b').sort());
    const apiB = await pageAll({ code: 'RBM_API', agents: new Set(['agent-b']) }, 10);
    expect(apiB.sort()).toEqual(ids.filter((_, n) => agentOf(n) === 'agent-b' && n % 5 === 0).sort());
  });
});

describe('events parked on a waiting message', () => {
  const event = (type: string, messageId: string) => ({
    kind: 'userEvent',
    agentId: 'agent-a',
    payload: { eventType: type, messageId },
    receivedAt: 1,
  });
  const intake = () => redis.xrange(`${prefix}:webhook-events`, '-', '+');

  it('keeps DELIVERED and READ on a SENDING record and applies them in the step that moves it to SENT', async () => {
    const mid = id(300);
    await store.createMany([{ messageId: mid, agentId: 'agent-a', to: '+12223334444' }], 1);
    await store.transition(ref(mid), 'SENDING', { now: 2 });
    // The refused move leaves no "no change" entry while the message waits.
    expect(await store.transition(ref(mid), 'READ', { now: 3, event: 'READ' })).toEqual({ ok: false, from: 'SENDING' });
    expect(await store.park(ref(mid), 'READ', event('READ', mid))).toBe('PARKED');
    expect(await store.park(ref(mid), 'DELIVERED', event('DELIVERED', mid))).toBe('PARKED');
    // A repeat of the same fact is kept once.
    expect(await store.park(ref(mid), 'DELIVERED', event('DELIVERED', mid))).toBe('PARKED');
    expect((await store.get(ref(mid)))!.timeline.map((t) => t.state)).toEqual(['QUEUED', 'SENDING']);
    // A retry that stays SENDING applies nothing.
    expect(await store.transition(ref(mid), 'SENDING', { now: 4 })).toEqual({ ok: true, from: 'SENDING', state: 'SENDING' });
    expect(await store.transition(ref(mid), 'SENT', { now: 5, countAttempt: true })).toEqual({ ok: true, from: 'SENDING', state: 'READ' });
    const status = await store.get(ref(mid));
    // DELIVERED before READ whatever order they came in, one entry each, none left parked.
    expect(status!.timeline.map((t) => [t.state, t.event ?? ''])).toEqual([
      ['QUEUED', ''],
      ['SENDING', ''],
      ['SENDING', ''],
      ['SENT', ''],
      ['DELIVERED', 'DELIVERED'],
      ['READ', 'READ'],
    ]);
    expect(await redis.hexists(store.key(ref(mid)), 'pend')).toBe(0);
    expect((await intake()).filter(([, f]) => f[1]!.includes(mid))).toHaveLength(0);
  });

  it('hands other events back to the intake stream when the message settles, in the same step', async () => {
    const mid = id(301);
    await store.createMany([{ messageId: mid, agentId: 'agent-a', to: '+12223334444' }], 1);
    await store.transition(ref(mid), 'SENDING');
    const ttl = {
      kind: 'serverEvent',
      agentId: 'agent-a',
      payload: { eventType: 'TTL_EXPIRATION_REVOKED', messageId: mid, phoneNumber: '+12223334444' },
      receivedAt: 1,
    };
    expect(await store.park(ref(mid), 'TTL_EXPIRATION_REVOKED', ttl)).toBe('PARKED');
    expect(await store.transition(ref(mid), 'SENT')).toMatchObject({ ok: true, state: 'SENT' });
    const back = (await intake()).filter(([, f]) => f[1]!.includes(mid));
    expect(back.map(([, f]) => JSON.parse(f[1]!))).toEqual([ttl]);
  });

  it('a send given up on still learns of its delivery (FAILED → DELIVERED), and leaves the failures index', async () => {
    const mid = id(302);
    await store.createMany([{ messageId: mid, agentId: 'agent-a', to: '+12223334444' }], 1);
    await store.transition(ref(mid), 'SENDING');
    expect(await store.park(ref(mid), 'DELIVERED', event('DELIVERED', mid))).toBe('PARKED');
    expect(await store.transition(ref(mid), 'FAILED', { error: { code: 'RBM_NETWORK', message: 'reset' } })).toMatchObject({
      ok: true,
      state: 'DELIVERED',
    });
    expect(await redis.zscore(store.failuresKeyOf('agent-a'), mid)).toBeNull();
  });

  it('answers the state of a message that no longer waits, and nothing for an unknown one', async () => {
    const mid = id(303);
    await store.createMany([{ messageId: mid, agentId: 'agent-a', to: '+12223334444' }], 1);
    await store.transition(ref(mid), 'SENDING');
    await store.transition(ref(mid), 'SENT');
    expect(await store.park(ref(mid), 'DELIVERED', event('DELIVERED', mid))).toBe('SENT');
    expect(await redis.hexists(store.key(ref(mid)), 'pend')).toBe(0);
    expect(await store.park(ref(id(304)), 'DELIVERED', event('DELIVERED', id(304)))).toBeNull();
  });
});
