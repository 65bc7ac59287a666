/**
 * The evictor (src/history/evictor.ts) and tombstones (src/status/tombstones.ts)
 * on a real Redis: a settled record leaves only after the hot window and only
 * once the archiver's group has acknowledged every entry it fed; what stays is
 * a tombstone of well under 120 bytes; a late DELIVERED moves the tombstone and
 * reaches the history feed once; a record that moved meanwhile stays. The
 * archiver's acknowledgements are made here by hand (XREADGROUP + XACK), so
 * each step of the watermark is exact.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createInboundEventHandler } from '../src/handlers/inbound-event.ts';
import { ARCHIVER_GROUP } from '../src/history/archiver.ts';
import { archivedBefore, evictOnce, type EvictorOptions } from '../src/history/evictor.ts';
import { createRedis, whenReady } from '../src/queue/connection.ts';
import { BatchStore } from '../src/status/batches.ts';
import { historyFeedKey, refString, settledIndexKey, StatusStore, type MessageRef } from '../src/status/store.ts';
import { Tombstones } from '../src/status/tombstones.ts';
import { fakeDeadlines, fakeFallback, recordingLog } from './fakes.ts';
import { dropKeys, memoryOfKeys, redisUrl, uniquePrefix } from './helpers.ts';

const redis = createRedis(redisUrl(), 'worker');
const quiet = { error: () => {}, warn: () => {}, info: () => {}, debug: () => {} };
const HOT = 60_000;
const TTL = 3_600_000;
const PHONE = '+14155550123';
// Evictions here happen at T0 + HOT and a little after; with T0 that far in the past they are in the past too,
// so a tombstone looked up at the wall clock (a batch's progress, the inbound handler) is in a bucket it reads:
// an eviction dated ahead of the clock across a generation boundary (every 30 min here) would not be.
const T0 = Date.now() - HOT - 5000;

beforeAll(() => whenReady(redis));
afterAll(() => redis.quit());

function setup(name: string) {
  const prefix = uniquePrefix(name);
  const status = new StatusStore(redis, { prefix, ttlMs: TTL });
  const tombstones = new Tombstones(redis, { prefix, ttlMs: TTL });
  const opts: EvictorOptions = {
    redis,
    prefix,
    hotMs: HOT,
    ttlMs: TTL,
    statusKey: (ref) => status.key(ref),
    log: quiet,
  };
  const feed = historyFeedKey(prefix);
  return {
    prefix,
    status,
    tombstones,
    /** One round at `now`. */
    evict: (now: number) => evictOnce({ ...opts, now: () => now }, tombstones),
    /** The archiver's group reads and acknowledges everything the feed holds now. */
    async archiveAll() {
      await redis.xgroup('CREATE', feed, ARCHIVER_GROUP, '0', 'MKSTREAM').catch(() => {});
      const read = (await redis.xreadgroup('GROUP', ARCHIVER_GROUP, 'c', 'COUNT', 100_000, 'STREAMS', feed, '>')) as Array<
        [string, Array<[string, string[]]>]
      > | null;
      const ids = read?.[0]?.[1].map(([id]) => id) ?? [];
      if (ids.length > 0) await redis.xack(feed, ARCHIVER_GROUP, ...ids);
      return ids.length;
    },
    /** The feed entries after `id`, parsed. */
    async feedAfter(id: string) {
      const entries = await redis.xrange(feed, `(${id}`, '+');
      return entries.map(([, f]) => JSON.parse(f[1]!) as Record<string, unknown>);
    },
    drop: () => dropKeys(prefix),
  };
}

async function settle(status: StatusStore, ref: MessageRef, to: 'READ' | 'FALLBACK_SENT' | 'FAILED', at: number): Promise<void> {
  const create = { ...ref, to: PHONE, createdAt: at, trafficType: 'TRANSACTION' };
  await status.transition(ref, 'SENDING', { create, now: at + 1, fields: { e164: PHONE } });
  if (to === 'FAILED') {
    await status.transition(ref, 'FAILED', { now: at + 2, error: { code: 'RBM_API', message: '400' } });
    return;
  }
  await status.transition(ref, 'SENT', { now: at + 2 });
  if (to === 'READ') {
    await status.transition(ref, 'DELIVERED', { now: at + 3, event: 'DELIVERED' });
    await status.transition(ref, 'READ', { now: at + 4, event: 'READ' });
    return;
  }
  await status.transition(ref, 'FALLBACK_QUEUED', { now: at + 3, event: 'DEADLINE' });
  await status.transition(ref, 'FALLBACK_SENDING', { now: at + 4 });
  await status.transition(ref, 'FALLBACK_SENT', { now: at + 5 });
}

describe('eviction', () => {
  it('waits for the hot window and for the archiver, then leaves a tombstone and nothing else', async () => {
    const t = setup('evict-order');
    const ref = { agentId: 'agent-a', messageId: randomUUID() };
    await settle(t.status, ref, 'READ', T0);
    expect(await redis.zscore(settledIndexKey(t.prefix), refString(ref))).toBe(String(T0 + 4));

    // No archiver group yet: no watermark, nothing leaves, however old.
    expect(await archivedBefore(redis, t.prefix)).toBe('');
    expect((await t.evict(T0 + 10 * HOT)).evicted).toBe(0);

    // Archived, but inside the hot window: stays.
    expect(await t.archiveAll()).toBe(4);
    expect(await t.evict(T0 + HOT - 1)).toMatchObject({ evicted: 0, behind: 0 });
    expect((await t.status.get(ref))?.state).toBe('READ');

    // A duplicate READ appends a no-change entry the archiver has not read: the record waits for it.
    await t.status.transition(ref, 'READ', { now: T0 + 10, event: 'READ' });
    expect(await t.evict(T0 + HOT + 100)).toMatchObject({ evicted: 0, behind: 1 });
    expect(await t.archiveAll()).toBe(1);

    expect(await t.evict(T0 + HOT + 100)).toMatchObject({ evicted: 1, behind: 0 });
    expect(await t.status.get(ref)).toBeNull();
    expect(await redis.zcard(settledIndexKey(t.prefix))).toBe(0);
    expect(await t.tombstones.states([ref], T0 + HOT + 100)).toEqual(['READ']);
    const keys = await redis.keys(`${t.prefix}:tomb:*`);
    expect(keys).toHaveLength(1);
    expect(await redis.ttl(keys[0]!)).toBeGreaterThan(0);
    await t.drop();
  });

  it('leaves a record that moved after the cutoff, and one still in flight', async () => {
    const t = setup('evict-hot');
    const settled = { agentId: 'agent-a', messageId: randomUUID() };
    const inFlight = { agentId: 'agent-a', messageId: randomUUID() };
    await settle(t.status, settled, 'FALLBACK_SENT', T0);
    await t.status.transition(inFlight, 'SENDING', { create: { ...inFlight, to: PHONE, createdAt: T0 }, now: T0 });
    await t.status.transition(inFlight, 'SENT', { now: T0 + 1 });
    // Late news moves the settled one at T0 + HOT: its hot window starts again.
    await t.status.transition(settled, 'DELIVERED', { now: T0 + HOT, event: 'DELIVERED' });
    await t.archiveAll();
    expect(await t.evict(T0 + HOT + 10)).toMatchObject({ evicted: 0 });
    expect((await t.status.get(settled))?.state).toBe('DELIVERED');
    expect((await t.status.get(inFlight))?.state).toBe('SENT');
    expect(await t.evict(T0 + 2 * HOT + 10)).toMatchObject({ evicted: 1 });
    expect((await t.status.get(inFlight))?.state).toBe('SENT');
    await t.drop();
  });

  it('takes a failed message off the failures list as it leaves', async () => {
    const t = setup('evict-failed');
    const ref = { agentId: 'agent-a', messageId: randomUUID() };
    await settle(t.status, ref, 'FAILED', T0);
    expect(await redis.zcard(t.status.failuresKeyOf('agent-a'))).toBe(1);
    await t.archiveAll();
    expect(await t.evict(T0 + HOT + 10)).toMatchObject({ evicted: 1 });
    expect(await redis.zcard(t.status.failuresKeyOf('agent-a'))).toBe(0);
    expect(await t.tombstones.states([ref], T0 + HOT + 10)).toEqual(['FAILED']);
    await t.drop();
  });

  it('indexes a record only while settled: a re-driven failure leaves the index, and one in flight never enters it', async () => {
    const t = setup('evict-index');
    const ref = { agentId: 'agent-a', messageId: randomUUID() };
    const member = refString(ref);
    await t.status.transition(ref, 'SENDING', { create: { ...ref, to: PHONE, createdAt: T0 }, now: T0 });
    expect(await redis.zscore(settledIndexKey(t.prefix), member)).toBeNull();
    await t.status.transition(ref, 'FAILED', { now: T0 + 1, error: { code: 'RBM_API', message: '400' } });
    expect(await redis.zscore(settledIndexKey(t.prefix), member)).toBe(String(T0 + 1));
    // An operator's re-drive: back in line, no longer settled, so not the evictor's.
    await t.status.transition(ref, 'QUEUED', { now: T0 + 2 });
    expect(await redis.zscore(settledIndexKey(t.prefix), member)).toBeNull();
    await t.archiveAll();
    expect(await t.evict(T0 + HOT + 10)).toMatchObject({ evicted: 0 });
    expect((await t.status.get(ref))?.state).toBe('QUEUED');
    await t.drop();
  });

  it('keeps under 120 bytes of Redis per evicted message (1,000 messages, one agent)', async () => {
    const t = setup('evict-bytes');
    const refs = Array.from({ length: 1000 }, () => ({ agentId: 'agent-a', messageId: randomUUID() }));
    for (const ref of refs) await settle(t.status, ref, 'READ', T0);
    await t.archiveAll();
    // The feed is the archiver's to empty; here it is trimmed by hand, as the archiver deletes what it wrote.
    await redis.xtrim(historyFeedKey(t.prefix), 'MAXLEN', 0);
    const bytes = async () => (await memoryOfKeys(redis, `${t.prefix}:*`)).reduce((n, [, b]) => n + b, 0);
    const held = await bytes();
    expect(await t.evict(T0 + HOT + 10)).toMatchObject({ evicted: 1000 });
    const left = await bytes();
    console.log(`Redis bytes per message: settled ${Math.round(held / refs.length)}, evicted ${Math.round(left / refs.length)}`);
    expect(left / refs.length).toBeLessThan(120);
    expect(new Set(await t.tombstones.states(refs, T0 + HOT + 10))).toEqual(new Set(['READ']));
    await t.drop();
  });
});

describe('tombstones', () => {
  async function evicted(name: string, to: 'READ' | 'FALLBACK_SENT') {
    const t = setup(name);
    const ref = { agentId: 'agent-a', messageId: randomUUID() };
    await settle(t.status, ref, to, T0);
    await t.archiveAll();
    expect(await t.evict(T0 + HOT + 10)).toMatchObject({ evicted: 1 });
    const [last] = await redis.xrevrange(historyFeedKey(t.prefix), '+', '-', 'COUNT', 1);
    return { t, ref, lastId: last![0] };
  }
  const NOW = T0 + HOT + 1000;

  it('a late DELIVERED moves an SMS-fallen-back message once, into the history feed', async () => {
    const { t, ref, lastId } = await evicted('tomb-late', 'FALLBACK_SENT');
    const first = await t.tombstones.apply(ref, PHONE, 'DELIVERED', 'DELIVERED', NOW);
    expect(first).toEqual({ found: true, phoneMatches: true, state: 'DELIVERED', moved: true, from: 'FALLBACK_SENT' });
    const again = await t.tombstones.apply(ref, PHONE, 'DELIVERED', 'DELIVERED', NOW + 5);
    expect(again).toMatchObject({ found: true, moved: false, state: 'DELIVERED' });
    const feed = await t.feedAfter(lastId);
    expect(feed).toHaveLength(1);
    expect(feed[0]).toMatchObject({ a: 'agent-a', m: ref.messageId, s: 'DELIVERED', p: 'FALLBACK_SENT', t: NOW, c: T0, e: 'DELIVERED' });
    // READ still may follow.
    expect(await t.tombstones.apply(ref, PHONE, 'READ', 'READ', NOW + 10)).toMatchObject({ moved: true, from: 'DELIVERED' });
    expect(await t.tombstones.states([ref], NOW)).toEqual(['READ']);
    await t.drop();
  });

  it('refuses another number, another agent, and anything but DELIVERED or READ', async () => {
    const { t, ref, lastId } = await evicted('tomb-refuse', 'READ');
    expect(await t.tombstones.apply(ref, '+14155550999', 'DELIVERED', 'DELIVERED', NOW)).toEqual({
      found: true,
      phoneMatches: false,
      state: 'READ',
    });
    expect(await t.tombstones.apply({ ...ref, agentId: 'agent-b' }, PHONE, 'DELIVERED', 'DELIVERED', NOW)).toEqual({ found: false });
    expect(await t.tombstones.apply(ref, PHONE, 'TTL_EXPIRATION_REVOKED', null, NOW)).toMatchObject({ moved: false, state: 'READ' });
    expect(await t.tombstones.apply(ref, PHONE, 'DELIVERED', 'DELIVERED', NOW)).toMatchObject({ moved: false, state: 'READ' });
    expect(await t.tombstones.apply({ ...ref, messageId: 'not-a-uuid' }, PHONE, 'READ', 'READ', NOW)).toEqual({ found: false });
    expect(await t.feedAfter(lastId)).toHaveLength(0);
    await t.drop();
  });

  it('keeps its ID used: a send under it again (an idempotency key replayed) creates nothing', async () => {
    const { t, ref } = await evicted('tomb-reuse', 'FALLBACK_SENT');
    const fresh = { agentId: 'agent-a', messageId: randomUUID() };
    const again = await t.status.createMany(
      [
        { ...ref, to: PHONE },
        { ...fresh, to: PHONE },
      ],
      NOW,
    );
    expect(again).toEqual(['FALLBACK_SENT', null]);
    expect(await t.status.get(ref)).toBeNull();
    expect((await t.status.get(fresh))?.state).toBe('QUEUED');
    await t.drop();
  });

  it('lasts STATUS_TTL_MS at least, then is gone', async () => {
    const { t, ref } = await evicted('tomb-ttl', 'READ');
    expect(await t.tombstones.states([ref], T0 + HOT + TTL - 1)).toEqual(['READ']);
    expect(await t.tombstones.states([ref], T0 + HOT + 2 * TTL)).toEqual([null]);
    expect(await t.tombstones.erase([ref], NOW)).toBe(1);
    expect(await t.tombstones.states([ref], NOW)).toEqual([null]);
    await t.drop();
  });

  it("keeps a batch's progress after its messages left Redis", async () => {
    const { t, ref } = await evicted('tomb-batch', 'FALLBACK_SENT');
    const queued = { agentId: 'agent-a', messageId: randomUUID() };
    const batches = new BatchStore(redis, { prefix: t.prefix, ttlMs: TTL, statusKey: (r) => t.status.key(r), tombstones: t.tombstones });
    await batches.record('b-1', [ref, queued]);
    expect(await batches.progress('b-1')).toEqual({ batchId: 'b-1', total: 2, counts: { FALLBACK_SENT: 1, QUEUED: 1 } });
    await t.drop();
  });
});

describe('the inbound handler and the evictor', () => {
  it('a DELIVERED whose record leaves Redis between its read and its move reaches the tombstone, not the floor', async () => {
    const t = setup('evict-race');
    const ref = { agentId: 'agent-a', messageId: randomUUID() };
    await settle(t.status, ref, 'FALLBACK_SENT', T0);
    await t.archiveAll();
    const counted: string[] = [];
    const handler = createInboundEventHandler({
      // The real store, whose move runs an eviction round first: the record is read whole, then is gone.
      status: {
        transition: async (...args: Parameters<StatusStore['transition']>) => {
          expect(await t.evict(T0 + HOT + 10)).toMatchObject({ evicted: 1 });
          return t.status.transition(...args);
        },
        park: (...args) => t.status.park(...args),
        field: (...args) => t.status.field(...args),
        fields: (...args) => t.status.fields(...args),
        setField: (...args) => t.status.setField(...args),
        get: (...args) => t.status.get(...args),
      },
      tombstones: t.tombstones,
      requestFallback: fakeFallback().requestFallback,
      deadlines: fakeDeadlines().port,
      rbm: { revokeMessage: async () => true },
      consumers: { publish: async () => {} },
      immediateOnRevokeFailed: [],
      count: async (name) => void counted.push(name),
      log: recordingLog(),
    });
    const event = {
      kind: 'userEvent',
      agentId: 'agent-a',
      receivedAt: Date.now(),
      payload: { senderPhoneNumber: PHONE, eventType: 'DELIVERED', eventId: 'e-1', messageId: ref.messageId },
    };
    await expect(handler(event, { jobId: 'j', attempt: 1, maxAttempts: 1 })).resolves.toEqual({ outcome: 'DELIVERED', late: true });
    expect(counted).toEqual(['inboundEvents']);
    expect(await t.tombstones.states([ref])).toEqual(['DELIVERED']);
    await t.drop();
  });
});
