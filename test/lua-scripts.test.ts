/**
 * Each Redis script on its own against a real Redis: the command called
 * directly with the KEYS and ARGV its file's header names, then its answer and
 * the keys it wrote. The modules' own tests cover how they use the answers.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { withReceiverScripts } from '../src/callbacks/receivers.ts';
import { withRateScripts } from '../src/queue/adaptive-rate.ts';
import { createRedis, whenReady } from '../src/queue/connection.ts';
import { withInboundScripts } from '../src/queue/inbound-stream.ts';
import { SETTLED_STATES, statesLeadingTo, WAITING_STATES } from '../src/status/states.ts';
import { HISTOGRAM_BOUNDS_S, NO_CHANGE, withStatusScripts } from '../src/status/store.ts';
import { TOMBSTONE_CODES } from '../src/status/tombstone-keys.ts';
import { redisUrl, uniquePrefix } from './helpers.ts';

const prefix = uniquePrefix('lua');
let redis: Redis;
let n = 0;
/** Fresh key names per test: the tests share nothing but Redis. */
const space = () => `${prefix}:${++n}`;
const NOW = 1_800_000_000_000;

beforeAll(async () => {
  redis = createRedis(redisUrl(), 'producer');
  await whenReady(redis);
});
afterAll(async () => {
  const keys = await redis.keys(`${prefix}:*`);
  if (keys.length > 0) await redis.del(...keys);
  await redis.quit();
});

/** Stream entries' fields, without their IDs. */
async function entries(stream: string): Promise<Record<string, string>[]> {
  const rows = await redis.xrange(stream, '-', '+');
  return rows.map(([, fields]) => Object.fromEntries(fields.flatMap((v, i) => (i % 2 === 0 ? [[v, fields[i + 1]!]] : []))));
}

describe('status/lua/create-many.lua', () => {
  it('creates a QUEUED record for each key that has none (nor a tombstone), writing only the fields that carry information', async () => {
    const s = space();
    const scripts = withStatusScripts(redis);
    await redis.hset(`${s}:b`, 'state', 'SENT');
    // Three tombstone buckets a message, the first of c holding its tombstone (READ, 'R'): it is not created again.
    const field = Buffer.alloc(16, 7);
    await redis.hset(`${s}:tomb-c0`, field, 'R0123456789');
    const tombs = ['a', 'b', 'c'].flatMap((k) => [`${s}:tomb-${k}0`, `${s}:tomb-${k}1`, `${s}:tomb-${k}2`]);
    const out = await scripts.rbmStatusCreateMany(
      12,
      `${s}:a`,
      `${s}:b`,
      `${s}:c`,
      ...tombs,
      60_000,
      NOW,
      3,
      TOMBSTONE_CODES,
      ...['agent-a', '+1222***4444', 'AUTHENTICATION', '', '', 'https://cb.example/x', 'scope-1', ''],
      ...['agent-a', '+1333***5555', '', '', '', '', '', ''],
      ...['agent-a', '+1444***6666', '', '', '', '', '', field],
    );
    expect(out).toEqual(['', 'SENT', 'READ']);
    expect(await redis.exists(`${s}:c`)).toBe(0);
    expect(await redis.hgetall(`${s}:a`)).toEqual({
      state: 'QUEUED',
      agentId: 'agent-a',
      to: '+1222***4444',
      createdAt: String(NOW),
      trafficType: 'AUTHENTICATION',
      cb: 'https://cb.example/x',
      cbs: 'scope-1',
    });
    const ttl = await redis.pttl(`${s}:a`);
    expect(ttl).toBeGreaterThan(50_000);
    expect(ttl).toBeLessThanOrEqual(60_000);
    // An existing record is left as it is.
    expect(await redis.hgetall(`${s}:b`)).toEqual({ state: 'SENT' });
  });
});

describe('status/lua/transition.lua', () => {
  const scripts = () => withStatusScripts(redis);
  const WAITING = WAITING_STATES.join(' ');
  const keysOf = (s: string) => ({
    status: `${s}:status`,
    failures: `${s}:failures`,
    metrics: `${s}:metrics`,
    feed: `${s}:feed`,
    intake: `${s}:intake`,
    history: `${s}:history`,
    settled: `${s}:settled`,
  });

  interface Call {
    to: string;
    now?: number;
    ttlMs?: number;
    options?: Record<string, unknown>;
    from?: readonly string[];
    noChange?: string;
    feedMaxLen?: number;
    bounds?: string;
    historyMaxLen?: number;
  }

  function transition(s: string, c: Call) {
    const k = keysOf(s);
    return scripts().rbmStatusTransition(
      k.status,
      k.failures,
      k.metrics,
      k.feed,
      k.intake,
      k.history,
      k.settled,
      c.to,
      c.now ?? NOW,
      c.ttlMs ?? 60_000,
      JSON.stringify({ id: 'm-1', ref: 'm-1/agent-a', ...c.options }),
      WAITING,
      statesLeadingTo('DELIVERED').join(' '),
      statesLeadingTo('READ').join(' '),
      c.noChange ?? NO_CHANGE,
      c.feedMaxLen ?? 1_000_000,
      c.bounds ?? HISTOGRAM_BOUNDS_S.join(' '),
      c.historyMaxLen ?? 1_000_000,
      SETTLED_STATES.join(' '),
      ...(c.from ?? statesLeadingTo(c.to as never)),
    );
  }

  const create = (over: Record<string, unknown> = {}) => ({
    agentId: 'agent-a',
    to: '+1222***4444',
    createdAt: NOW - 100,
    trafficType: '',
    batchId: '',
    expireAt: '',
    ...over,
  });

  it('answers {0, false} and writes nothing when there is no record and none to create', async () => {
    const s = space();
    expect(await transition(s, { to: 'SENDING' })).toEqual([0, null]);
    expect(await redis.keys(`${s}:*`)).toEqual([]);
  });

  it('creates a missing record as QUEUED since createdAt, then moves it: state, timeline, metrics, ttl', async () => {
    const s = space();
    const k = keysOf(s);
    expect(
      await transition(s, { to: 'SENDING', options: { create: create({ batchId: 'b-1' }), countAttempt: true, event: 'SEND' } }),
    ).toEqual([1, 'QUEUED', 'SENDING']);
    const h = await redis.hgetall(k.status);
    expect(h).toMatchObject({
      state: 'SENDING',
      agentId: 'agent-a',
      to: '+1222***4444',
      createdAt: String(NOW - 100),
      batchId: 'b-1',
      updatedAt: String(NOW),
      attempts: '1',
    });
    // Empty create fields are not written.
    expect(h).not.toHaveProperty('trafficType');
    expect(h).not.toHaveProperty('expireAt');
    expect(JSON.parse(h.timeline!)).toEqual([
      { state: 'QUEUED', at: NOW - 100 },
      { state: 'SENDING', at: NOW, event: 'SEND' },
    ]);
    expect(await redis.hgetall(k.metrics)).toEqual({ 'state|SENDING|agent-a': '1' });
    expect(await redis.pttl(k.status)).toBeGreaterThan(50_000);
    // No callback URL: nothing in the feed.
    expect(await redis.exists(k.feed)).toBe(0);
  });

  it('refuses an edge not allowed from the state now: a new record is not created, an event on an existing one is kept with the given no-change detail', async () => {
    const s = space();
    const k = keysOf(s);
    expect(await transition(s, { to: 'SENT', options: { create: create() } })).toEqual([0, null]);
    expect(await redis.exists(k.status)).toBe(0);

    await redis.hset(k.status, 'state', 'READ', 'createdAt', String(NOW - 100));
    expect(await transition(s, { to: 'DELIVERED', options: { event: 'DELIVERED' }, noChange: 'unchanged, still ' })).toEqual([0, 'READ']);
    expect(JSON.parse((await redis.hget(k.status, 'timeline'))!)).toEqual([
      { state: 'QUEUED', at: NOW - 100 },
      { state: 'READ', at: NOW, event: 'DELIVERED', detail: 'unchanged, still READ' },
    ]);
    expect(await redis.hget(k.status, 'state')).toBe('READ');
    expect(await redis.exists(k.metrics)).toBe(0);
  });

  it('keeps no no-change entry while the message waits (its event is parked instead)', async () => {
    const s = space();
    const k = keysOf(s);
    await redis.hset(k.status, 'state', 'SENDING', 'createdAt', String(NOW));
    expect(await transition(s, { to: 'READ', options: { event: 'READ' } })).toEqual([0, 'SENDING']);
    expect(await redis.hget(k.status, 'timeline')).toBeNull();
  });

  it('stores the last error and extra fields, enters a failure in the index and takes it out when it moves on', async () => {
    const s = space();
    const k = keysOf(s);
    await redis.hset(k.status, 'state', 'SENDING', 'agentId', 'agent-a', 'createdAt', String(NOW - 100));
    const error = { code: 'RBM_API', message: '400 bad request' };
    expect(await transition(s, { to: 'FAILED', options: { error, fields: { httpStatus: '400' }, detail: 'permanent' } })).toEqual([
      1,
      'SENDING',
      'FAILED',
    ]);
    expect(await redis.hmget(k.status, 'lastErrorCode', 'lastError', 'httpStatus')).toEqual(['RBM_API', '400 bad request', '400']);
    expect(JSON.parse((await redis.hget(k.status, 'timeline'))!).at(-1)).toEqual({ state: 'FAILED', at: NOW, detail: 'permanent', error });
    expect(await redis.zrange(k.failures, 0, -1, 'WITHSCORES')).toEqual(['m-1/agent-a', String(NOW)]);

    expect(await transition(s, { to: 'QUEUED', now: NOW + 1 })).toEqual([1, 'FAILED', 'QUEUED']);
    expect(await redis.zcard(k.failures)).toBe(0);
  });

  it('appends a move of a message with a callback URL to the feed, as the change its callback reports, trimmed to about the given length', async () => {
    const s = space();
    const k = keysOf(s);
    expect(
      await transition(s, { to: 'SENDING', options: { create: create({ cb: 'https://cb.example/x', cbs: 'scope-1', batchId: 'b-1' }) } }),
    ).toEqual([1, 'QUEUED', 'SENDING']);
    expect(await transition(s, { to: 'SENT', now: NOW + 5, options: { event: 'SENT' } })).toEqual([1, 'SENDING', 'SENT']);
    const feed = (await entries(k.feed)).map((e) => JSON.parse(e.c!));
    expect(feed).toEqual([
      {
        url: 'https://cb.example/x',
        scope: 'scope-1',
        data: { state: 'SENDING', at: NOW, messageId: 'm-1', agentId: 'agent-a', previousState: 'QUEUED', batchId: 'b-1' },
      },
      {
        url: 'https://cb.example/x',
        scope: 'scope-1',
        data: { state: 'SENT', at: NOW + 5, event: 'SENT', messageId: 'm-1', agentId: 'agent-a', previousState: 'SENDING', batchId: 'b-1' },
      },
    ]);
    // The timeline entry does not carry the feed's extra fields.
    expect(JSON.parse((await redis.hget(k.status, 'timeline'))!).at(-1)).toEqual({ state: 'SENT', at: NOW + 5, event: 'SENT' });

    // ARGV[9] is the feed's MAXLEN (approximate: Redis trims whole nodes, so only a long run shows it).
    for (let i = 0; i < 250; i++) await transition(s, { to: 'SENDING', from: ['SENT', 'SENDING'], feedMaxLen: 10 });
    const len = await redis.xlen(k.feed);
    expect(len).toBeGreaterThanOrEqual(10);
    expect(len).toBeLessThan(252);
  });

  it('appends every timeline entry to the history feed with the facts the archive keeps; a refused move adds nothing', async () => {
    const s = space();
    const k = keysOf(s);
    await transition(s, {
      to: 'SENDING',
      options: { create: create({ trafficType: 'TRANSACTION', batchId: 'b-1' }), fields: { e164: '+12223334444' } },
    });
    await transition(s, { to: 'SENT', now: NOW + 5, options: { event: 'SENT' } });
    const error = { code: 'RBM_API', message: 'answered 500' };
    await transition(s, { to: 'DELIVERED', now: NOW + 9, options: { event: 'DELIVERED' } });
    // Moved nothing: kept in the timeline, so in the feed too.
    await transition(s, { to: 'DELIVERED', now: NOW + 12, options: { event: 'DELIVERED' }, from: ['SENT'] });
    // Refused without an event: neither timeline nor feed.
    await transition(s, { to: 'FAILED', now: NOW + 14, options: { error }, from: ['SENDING'] });
    const feed = (await entries(k.history)).map((e) => JSON.parse(e.h!));
    const facts = { a: 'agent-a', m: 'm-1', c: NOW - 100, to: '+1222***4444', ph: '+12223334444', tt: 'TRANSACTION', b: 'b-1' };
    expect(feed).toEqual([
      { ...facts, s: 'SENDING', p: 'QUEUED', t: NOW },
      { ...facts, s: 'SENT', p: 'SENDING', t: NOW + 5, e: 'SENT' },
      { ...facts, s: 'DELIVERED', p: 'SENT', t: NOW + 9, e: 'DELIVERED' },
      { ...facts, s: 'DELIVERED', p: 'DELIVERED', t: NOW + 12, e: 'DELIVERED', d: `${NO_CHANGE}DELIVERED` },
    ]);
    // One feed entry per timeline entry after the first (QUEUED at createdAt, which the archive derives).
    const timeline = JSON.parse((await redis.hget(k.status, 'timeline'))!) as Array<{ state: string; at: number }>;
    expect(timeline.slice(1).map((e) => [e.state, e.at])).toEqual(feed.map((f) => [f.s, f.t]));
    // A failed move carries its error's code.
    const f = space();
    await transition(f, { to: 'SENDING', options: { create: create() } });
    await transition(f, { to: 'FAILED', options: { error } });
    expect((await entries(keysOf(f).history)).map((e) => JSON.parse(e.h!)).at(-1)).toMatchObject({ s: 'FAILED', ec: 'RBM_API' });
    expect((await entries(keysOf(f).history)).map((e) => JSON.parse(e.h!)).at(-1)).not.toHaveProperty('ph');
  });

  it('stamps every entry after the last one: a process whose clock is behind moves 1 ms after the last entry', async () => {
    const s = space();
    const k = keysOf(s);
    await transition(s, { to: 'SENDING', now: NOW, options: { create: create() } });
    await transition(s, { to: 'SENT', now: NOW + 20, options: { event: 'SENT' } });
    // The inbound process read its clock 14 ms before the dispatcher's SENT landed.
    expect(await transition(s, { to: 'DELIVERED', now: NOW + 6, options: { event: 'DELIVERED' } })).toEqual([1, 'SENT', 'DELIVERED']);
    const timeline = JSON.parse((await redis.hget(k.status, 'timeline'))!) as Array<{ state: string; at: number }>;
    expect(timeline.map((e) => [e.state, e.at])).toEqual([
      ['QUEUED', NOW - 100],
      ['SENDING', NOW],
      ['SENT', NOW + 20],
      ['DELIVERED', NOW + 21],
    ]);
    expect(await redis.hget(k.status, 'updatedAt')).toBe(String(NOW + 21));
    expect((await entries(k.history)).map((e) => JSON.parse(e.h!).t)).toEqual([NOW, NOW + 20, NOW + 21]);
    // A later clock is taken as it is.
    await transition(s, { to: 'READ', now: NOW + 30, options: { event: 'READ' } });
    expect(await redis.hget(k.status, 'updatedAt')).toBe(String(NOW + 30));
    // A DELIVERED behind it, read on a clock at READ's millisecond, moves nothing: its entry is after READ's, never at
    // it (the archive keeps one entry per state and time: READ@t twice would be one), and updatedAt stays.
    expect(await transition(s, { to: 'DELIVERED', now: NOW + 30, options: { event: 'DELIVERED' } })).toEqual([0, 'READ']);
    const after = JSON.parse((await redis.hget(k.status, 'timeline'))!) as Array<{ state: string; at: number; event?: string }>;
    expect(after.slice(-2).map((e) => [e.state, e.at, e.event])).toEqual([
      ['READ', NOW + 30, 'READ'],
      ['READ', NOW + 31, 'DELIVERED'],
    ]);
    expect(await redis.hget(k.status, 'updatedAt')).toBe(String(NOW + 30));
  });

  it('counts each move by state and agent, plus the counter asked for, and puts times in the buckets given', async () => {
    const s = space();
    const k = keysOf(s);
    const bounds = '0.5 1 2';
    // Enqueued 500 ms ago: exactly on the first bound.
    await redis.hset(k.status, 'state', 'SENT', 'agentId', 'agent-a', 'createdAt', String(NOW - 500));
    expect(await transition(s, { to: 'DELIVERED', bounds, options: { count: 'custom|x' } })).toEqual([1, 'SENT', 'DELIVERED']);
    // Only the first news of delivery is observed: READ after DELIVERED is not.
    expect(await transition(s, { to: 'READ', bounds, now: NOW + 10_000 })).toEqual([1, 'DELIVERED', 'READ']);

    const s2 = space();
    await redis.hset(keysOf(s2).status, 'state', 'SENT', 'agentId', 'agent-a', 'createdAt', String(NOW - 501));
    await transition(s2, { to: 'READ', bounds });
    const s3 = space();
    await redis.hset(keysOf(s3).status, 'state', 'FALLBACK_SENDING', 'agentId', 'agent-b', 'createdAt', String(NOW - 2001));
    await transition(s3, { to: 'FALLBACK_SENT', bounds });

    expect(await redis.hgetall(k.metrics)).toEqual({
      'state|DELIVERED|agent-a': '1',
      'state|READ|agent-a': '1',
      'custom|x': '1',
      'h|delivered|0.5': '1',
      'h|delivered|sum_ms': '500',
    });
    expect(await redis.hgetall(keysOf(s2).metrics)).toEqual({
      'state|READ|agent-a': '1',
      'h|delivered|1': '1',
      'h|delivered|sum_ms': '501',
    });
    expect(await redis.hgetall(keysOf(s3).metrics)).toEqual({
      'state|FALLBACK_SENT|agent-b': '1',
      'h|fallback|+Inf': '1',
      'h|fallback|sum_ms': '2001',
    });
  });

  it('names each bucket by its bound as given (the bounds /metrics serves)', async () => {
    const s = space();
    await redis.hset(keysOf(s).status, 'state', 'SENT', 'agentId', 'agent-a', 'createdAt', String(NOW - 1_500_000));
    await transition(s, { to: 'DELIVERED' });
    expect(await redis.hget(keysOf(s).metrics, 'h|delivered|1800')).toBe('1');
    expect(HISTOGRAM_BOUNDS_S.join(' ')).toBe('0.5 1 2 5 10 30 60 120 300 600 1800 3600');
  });

  it('applies the parked events on leaving a waiting state: DELIVERED then READ here, any other back to the intake', async () => {
    const s = space();
    const k = keysOf(s);
    const ttl = JSON.stringify({ eventType: 'TTL_EXPIRATION_REVOKED' });
    const pend = [
      { t: 'READ', e: '{"eventType":"READ"}' },
      { t: 'TTL_EXPIRATION_REVOKED', e: ttl },
      { t: 'DELIVERED', e: '{"eventType":"DELIVERED"}' },
    ];
    await redis.hset(k.status, 'state', 'SENDING', 'agentId', 'agent-a', 'createdAt', String(NOW - 100), 'pend', JSON.stringify(pend));
    expect(await transition(s, { to: 'SENT' })).toEqual([1, 'SENDING', 'READ']);
    const h = await redis.hgetall(k.status);
    expect(h.state).toBe('READ');
    expect(h).not.toHaveProperty('pend');
    expect(JSON.parse(h.timeline!).slice(1)).toEqual([
      { state: 'SENT', at: NOW },
      { state: 'DELIVERED', at: NOW, event: 'DELIVERED' },
      { state: 'READ', at: NOW, event: 'READ' },
    ]);
    expect(await entries(k.intake)).toEqual([{ e: ttl }]);
    expect(await redis.hgetall(k.metrics)).toMatchObject({
      'state|SENT|agent-a': '1',
      'state|DELIVERED|agent-a': '1',
      'state|READ|agent-a': '1',
      'inbound|parkedApplied': '3',
      'h|delivered|0.5': '1',
    });
  });

  it('leaves parked events alone on a move between waiting states', async () => {
    const s = space();
    const k = keysOf(s);
    const pend = JSON.stringify([{ t: 'DELIVERED', e: '{}' }]);
    await redis.hset(k.status, 'state', 'QUEUED', 'agentId', 'agent-a', 'createdAt', String(NOW), 'pend', pend);
    expect(await transition(s, { to: 'SENDING' })).toEqual([1, 'QUEUED', 'SENDING']);
    expect(await redis.hget(k.status, 'pend')).toBe(pend);
  });
});

describe('status/lua/park.lua', () => {
  const WAITING = WAITING_STATES.join(' ');
  const park = (s: string, type: string, event: string, max = 8) =>
    withStatusScripts(redis).rbmStatusPark(`${s}:status`, `${s}:metrics`, WAITING, type, event, max);

  it('answers null with no record, and the state of a message that no longer waits, writing nothing', async () => {
    const s = space();
    expect(await park(s, 'DELIVERED', '{}')).toBeNull();
    await redis.hset(`${s}:status`, 'state', 'SENT');
    expect(await park(s, 'DELIVERED', '{}')).toBe('SENT');
    expect(await redis.hgetall(`${s}:status`)).toEqual({ state: 'SENT' });
    expect(await redis.exists(`${s}:metrics`)).toBe(0);
  });

  it('parks one event of each type on a waiting message, up to the most given', async () => {
    const s = space();
    await redis.hset(`${s}:status`, 'state', 'SENDING');
    expect(await park(s, 'DELIVERED', '{"n":1}', 2)).toBe('PARKED');
    expect(await park(s, 'DELIVERED', '{"n":2}', 2)).toBe('PARKED');
    expect(await park(s, 'READ', '{"n":3}', 2)).toBe('PARKED');
    expect(await park(s, 'TTL_EXPIRATION_REVOKED', '{"n":4}', 2)).toBe('PARKED');
    expect(JSON.parse((await redis.hget(`${s}:status`, 'pend'))!)).toEqual([
      { t: 'DELIVERED', e: '{"n":1}' },
      { t: 'READ', e: '{"n":3}' },
    ]);
    expect(await redis.hgetall(`${s}:metrics`)).toEqual({ 'inbound|parked': '2' });
  });
});

describe('queue/lua/inbound-append.lua', () => {
  it('appends an event once per dedupe ID within the TTL; without one, every time', async () => {
    const s = space();
    const scripts = withInboundScripts(redis);
    const append = (dedupeKey: string, ttl: string, event: string) => scripts.rbmInboundAppend(dedupeKey, `${s}:stream`, ttl, event);
    expect(await append(`${s}:seen:1`, '60000', '{"n":1}')).toBe(1);
    expect(await append(`${s}:seen:1`, '60000', '{"n":2}')).toBe(0);
    const ttl = await redis.pttl(`${s}:seen:1`);
    expect(ttl).toBeGreaterThan(50_000);
    expect(ttl).toBeLessThanOrEqual(60_000);
    expect(await append(`${s}:seen:2`, '', '{"n":3}')).toBe(1);
    expect(await append(`${s}:seen:2`, '', '{"n":4}')).toBe(1);
    expect(await redis.exists(`${s}:seen:2`)).toBe(0);
    expect(await entries(`${s}:stream`)).toEqual([{ e: '{"n":1}' }, { e: '{"n":3}' }, { e: '{"n":4}' }]);
  });
});

describe('queue/lua/adaptive-rate-read.lua', () => {
  const read = (s: string, now: number, id: string, accepted: number, limited: number) =>
    withRateScripts(redis).rbmRateRead(`${s}:state`, now, id, accepted, limited, 100, 1000);

  it("stores this process's report and answers the state (none yet) with the sums of the fresh reports", async () => {
    const s = space();
    expect(await read(s, NOW, 'p1', 5, 1)).toEqual(['0', '', '', '0', '0', 5, 1]);
    expect(await read(s, NOW + 100, 'p2', 7, 0)).toEqual(['0', '', '', '0', '0', 12, 1]);
    expect(await redis.hgetall(`${s}:state`)).toEqual({ 'p:p1': `5:1:${NOW}`, 'p:p2': `7:0:${NOW + 100}` });
  });

  it('leaves out a report older than the fresh window, deletes one older than the forget window or unreadable', async () => {
    const s = space();
    await redis.hset(
      `${s}:state`,
      'v',
      '3',
      'ceiling',
      '50',
      'rate',
      '25',
      'decreasedAt',
      '10',
      'increasedAt',
      '20',
      'p:stale',
      `9:9:${NOW - 101}`,
      'p:old',
      `9:9:${NOW - 1001}`,
      'p:edge',
      `4:2:${NOW - 100}`,
      'p:bad',
      'x',
    );
    expect(await read(s, NOW, 'p1', 1, 0)).toEqual(['3', '50', '25', '10', '20', 5, 2]);
    expect(Object.keys(await redis.hgetall(`${s}:state`)).sort()).toEqual([
      'ceiling',
      'decreasedAt',
      'increasedAt',
      'p:edge',
      'p:p1',
      'p:stale',
      'rate',
      'v',
    ]);
  });
});

describe('queue/lua/adaptive-rate-apply.lua', () => {
  it("writes the state and the queue's limiter only when the version is the one read", async () => {
    const s = space();
    const apply = (version: number) =>
      withRateScripts(redis).rbmRateApply(`${s}:state`, `${s}:meta`, version, 50, 40, NOW, NOW - 1, 4, 100);
    expect(await apply(1)).toBe(0);
    expect(await redis.exists(`${s}:state`, `${s}:meta`)).toBe(0);
    expect(await apply(0)).toBe(1);
    expect(await redis.hgetall(`${s}:state`)).toEqual({
      v: '1',
      ceiling: '50',
      rate: '40',
      decreasedAt: String(NOW),
      increasedAt: String(NOW - 1),
    });
    expect(await redis.hgetall(`${s}:meta`)).toEqual({ max: '4', duration: '100' });
    expect(await apply(0)).toBe(0);
    expect(await apply(1)).toBe(1);
    expect(await redis.hget(`${s}:state`, 'v')).toBe('2');
  });
});

describe('callbacks/lua/receiver-*.lua', () => {
  const scripts = () => withReceiverScripts(redis);
  const keysOf = (s: string) => ({
    hash: `${s}:r`,
    jobs: `${s}:r:jobs`,
    leases: `${s}:r:leases`,
    parked: `${s}:r:parked`,
    failing: `${s}:r:failing`,
    open: `${s}:open`,
    metrics: `${s}:metrics`,
  });
  const CAP = 2;
  // Long enough that no key the scripts give this TTL expires while a test runs on a busy machine.
  const LEASE = 60_000;
  const admit = (s: string, jobId: string, now = NOW) => {
    const k = keysOf(s);
    return scripts().rbmCallbackAdmit(k.hash, k.leases, k.parked, k.metrics, now, jobId, CAP, LEASE);
  };
  const parked = (s: string, jobId: string, now = NOW) => {
    const k = keysOf(s);
    return scripts().rbmCallbackParked(k.hash, k.leases, k.parked, now, jobId, CAP, 60_000, LEASE);
  };
  interface Report {
    jobId: string;
    now?: number;
    called?: boolean;
    ok: boolean;
    probe?: boolean;
    done?: boolean;
    openStaleMs?: number;
  }
  const report = (s: string, r: Report) => {
    const k = keysOf(s);
    const bit = (b: boolean | undefined) => (b ? 1 : 0);
    return scripts().rbmCallbackReport(
      k.hash,
      k.leases,
      k.parked,
      k.jobs,
      k.open,
      k.metrics,
      k.failing,
      r.now ?? NOW,
      r.jobId,
      bit(r.called ?? true),
      bit(r.ok),
      bit(r.probe),
      bit(r.done),
      2,
      1000,
      4000,
      CAP,
      60_000,
      'HTTP 500',
      'digest-1',
      LEASE,
      r.openStaleMs ?? 7 * 86_400_000,
    );
  };

  it("priorities: by the receiver's depth, never lower than its last while it has some queued, capped at the limit", async () => {
    const s = space();
    const k = keysOf(s);
    const priorities = (...ids: string[]) => scripts().rbmCallbackPriorities(k.hash, k.jobs, 60_000, 3, 'https://r.example', ...ids);
    expect(await priorities('a', 'b')).toEqual([1, 2]);
    await redis.srem(k.jobs, 'a', 'b');
    expect(await priorities('c')).toEqual([2]);
    expect(await priorities('d', 'e', 'f')).toEqual([2, 3, 3]);
    expect(await redis.hgetall(k.hash)).toEqual({ tag: '3', origin: 'https://r.example' });
    expect(await redis.smembers(k.jobs).then((m) => m.sort())).toEqual(['c', 'd', 'e', 'f']);
    expect(await redis.pttl(k.jobs)).toBeGreaterThan(50_000);
    expect(await redis.pttl(k.hash)).toBeGreaterThan(50_000);
  });

  it('admit: a call with a lease while slots are free, busy (with the parked count) once they are taken; an expired lease frees its slot', async () => {
    const s = space();
    const k = keysOf(s);
    await redis.zadd(k.parked, NOW - 5, 'p1');
    expect(await admit(s, 'a')).toEqual(['call']);
    expect(await admit(s, 'b')).toEqual(['call']);
    expect(await admit(s, 'c')).toEqual(['busy', 1]);
    // One that holds a slot already (woken) is let through.
    expect(await admit(s, 'a')).toEqual(['call']);
    expect(await redis.zrange(k.leases, 0, -1, 'WITHSCORES')).toEqual(['a', String(NOW + LEASE), 'b', String(NOW + LEASE)]);
    expect(await redis.hgetall(k.metrics)).toEqual({ 'callback_parked|busy': '1' });
    expect(await admit(s, 'c', NOW + LEASE + 1)).toEqual(['call']);
    expect(await redis.zrange(k.leases, 0, -1)).toEqual(['c']);
  });

  it('admit: parked while the breaker is open, one probe after its cooldown, parked while the probe is out', async () => {
    const s = space();
    const k = keysOf(s);
    await redis.hset(k.hash, 'open', String(NOW + 500), 'cool', '1000', 'last', 'HTTP 500');
    await redis.zadd(k.leases, NOW + LEASE, 'x');
    expect(await admit(s, 'x')).toEqual(['open', NOW + 500, '1000', 'HTTP 500']);
    expect(await redis.zcard(k.leases)).toBe(0);
    expect(await admit(s, 'y', NOW + 500)).toEqual(['probe']);
    expect(await redis.hget(k.hash, 'probe')).toBe(String(NOW + 500 + LEASE));
    expect(await redis.zrange(k.leases, 0, -1)).toEqual(['y']);
    expect(await admit(s, 'z', NOW + 600)).toEqual(['probing', NOW + 500 + LEASE, '1000', 'HTTP 500']);
    expect(await redis.hgetall(k.metrics)).toEqual({ 'callback_parked|open': '2' });
  });

  it('parked: listed while no slot is free or the breaker is open; given a free slot at once otherwise', async () => {
    const s = space();
    const k = keysOf(s);
    expect(await parked(s, 'a')).toBe(1);
    expect(await redis.zrange(k.leases, 0, -1, 'WITHSCORES')).toEqual(['a', String(NOW + LEASE)]);
    expect(await redis.zcard(k.parked)).toBe(0);
    await redis.zadd(k.leases, NOW + LEASE, 'b');
    expect(await parked(s, 'c')).toBe(0);
    expect(await redis.zrange(k.parked, 0, -1, 'WITHSCORES')).toEqual(['c', String(NOW)]);
    expect(await redis.pttl(k.parked)).toBeGreaterThan(50_000);
    await redis.zrem(k.leases, 'a', 'b');
    await redis.hset(k.hash, 'open', String(NOW + 1000));
    expect(await parked(s, 'd')).toBe(0);
    expect(await redis.zrange(k.parked, 0, -1)).toEqual(['c', 'd']);
  });

  it('report: a success frees the slot and hands it to the oldest parked delivery, with a lease', async () => {
    const s = space();
    const k = keysOf(s);
    await redis.zadd(k.leases, NOW + LEASE, 'a');
    await redis.zadd(k.parked, NOW - 2, 'p1', NOW - 1, 'p2');
    await redis.sadd(k.jobs, 'a', 'p1', 'p2');
    await redis.sadd(k.failing, 'old');
    expect(await report(s, { jobId: 'a', ok: true, done: true })).toEqual(['', 0, 'p1']);
    expect(await redis.zrange(k.leases, 0, -1, 'WITHSCORES')).toEqual(['p1', String(NOW + LEASE)]);
    expect(await redis.zrange(k.parked, 0, -1)).toEqual(['p2']);
    expect(await redis.smembers(k.jobs).then((m) => m.sort())).toEqual(['p1', 'p2']);
    expect(await redis.exists(k.failing)).toBe(0);
  });

  it('report: distinct failures up to the threshold open the breaker; old open entries past the given age leave the open set', async () => {
    const s = space();
    const k = keysOf(s);
    await redis.zadd(k.open, NOW - 2000, 'stale-receiver', NOW - 10, 'recent-receiver');
    expect(await report(s, { jobId: 'a', ok: false })).toEqual(['', 0]);
    expect(await report(s, { jobId: 'a', ok: false })).toEqual(['', 0]);
    expect(await redis.hget(k.hash, 'open')).toBeNull();
    expect(await report(s, { jobId: 'b', ok: false, openStaleMs: 1000 })).toEqual(['opened', 1000]);
    expect(await redis.hgetall(k.hash)).toEqual({ open: String(NOW + 1000), cool: '1000', probe: '0', last: 'HTTP 500' });
    expect(await redis.zrange(k.open, 0, -1)).toEqual(['recent-receiver', 'digest-1']);
    expect(await redis.hgetall(k.metrics)).toEqual({ 'callback_breaker|opened': '1' });
    expect(await redis.smembers(k.failing).then((m) => m.sort())).toEqual(['a', 'b']);
  });

  it('report: a failed probe doubles the cooldown up to the max; a successful one closes the breaker and wakes up to the cap', async () => {
    const s = space();
    const k = keysOf(s);
    await redis.hset(k.hash, 'open', String(NOW), 'cool', '3000', 'probe', String(NOW + LEASE));
    expect(await report(s, { jobId: 'probe-1', ok: false, probe: true })).toEqual(['reopened', 4000]);
    expect(await redis.hmget(k.hash, 'open', 'cool', 'probe')).toEqual([String(NOW + 4000), '4000', '0']);
    expect(await redis.zscore(k.open, 'digest-1')).toBe(String(NOW + 4000));

    await redis.zadd(k.parked, NOW - 3, 'p1', NOW - 2, 'p2', NOW - 1, 'p3');
    expect(await report(s, { jobId: 'probe-2', now: NOW + 4000, ok: true, probe: true })).toEqual(['closed', 4000, 'p1', 'p2']);
    expect(await redis.hmget(k.hash, 'open', 'cool', 'probe')).toEqual([null, null, null]);
    expect(await redis.zscore(k.open, 'digest-1')).toBeNull();
    expect(await redis.zrange(k.leases, 0, -1)).toEqual(['p1', 'p2']);
    expect(await redis.zrange(k.parked, 0, -1)).toEqual(['p3']);
    expect(await redis.hget(k.metrics, 'callback_breaker|closed')).toBe('1');
  });

  it("report: a delivery given up without a call leaves the queue, the receiver's order starts again when none is left, and no one is woken", async () => {
    const s = space();
    const k = keysOf(s);
    await redis.hset(k.hash, 'tag', '5');
    await redis.sadd(k.jobs, 'a');
    await redis.zadd(k.parked, NOW - 1, 'a', NOW, 'b');
    expect(await report(s, { jobId: 'a', called: false, ok: false, done: true })).toEqual(['', 0]);
    expect(await redis.exists(k.jobs)).toBe(0);
    expect(await redis.hget(k.hash, 'tag')).toBeNull();
    expect(await redis.zrange(k.parked, 0, -1)).toEqual(['b']);
  });
});
