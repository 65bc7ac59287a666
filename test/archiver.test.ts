/**
 * The archiver (src/history/archiver.ts) between a real Redis and the embedded
 * PostgreSQL: messages moved by the real status store (its transition script
 * writes the history feed) reach the archive with the timeline Redis holds,
 * every fact once; a failed write is written again, whole; an entry the store
 * can never take is dropped alone. Waits on the store's writes, not on time.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PayloadError } from '../src/errors.ts';
import { archiveBatch, type ArchiverStore, startArchiver } from '../src/history/archiver.ts';
import { openHistory, phoneHash, type HistoryChange, type HistoryStore } from '../src/history/index.ts';
import { createRedis, whenReady } from '../src/queue/connection.ts';
import type { BatchConsumer } from '../src/queue/batch-stream.ts';
import { historyFeedKey, StatusStore, type MessageRef } from '../src/status/store.ts';
import { redisUrl, uniquePrefix } from './helpers.ts';

const KEY = 'archiver-test-key';
const redis = createRedis(redisUrl(), 'worker');
const quiet = { error: () => {}, warn: () => {}, info: () => {}, debug: () => {} };
let history: HistoryStore;

beforeAll(async () => {
  await whenReady(redis);
  history = await openHistory({ dataDir: 'memory://', log: quiet });
});
afterAll(async () => {
  await history.close();
  await redis.quit();
});

/** The history store, telling each write to whoever waits for a number of changes. */
function watched(store: HistoryStore, failFirst = false) {
  let written = 0;
  let failed = false;
  const waiters: Array<{ n: number; resolve: () => void }> = [];
  return {
    get written() {
      return written;
    },
    async write(changes: readonly HistoryChange[]) {
      if (failFirst && !failed) {
        failed = true;
        throw new Error('connection reset');
      }
      const result = await store.write(changes);
      written += changes.length;
      for (const w of waiters.splice(0))
        if (written >= w.n) w.resolve();
        else waiters.push(w);
      return result;
    },
    until(n: number): Promise<void> {
      return written >= n ? Promise.resolve() : new Promise((resolve) => waiters.push({ n, resolve }));
    },
  };
}

/** An archiver over `prefix`'s history feed into `store`. */
function archive(prefix: string, store: ArchiverStore, batchSize?: number): BatchConsumer {
  const blocking = createRedis(redisUrl(), 'worker');
  return startArchiver({
    redis,
    blocking,
    prefix,
    store,
    phoneKey: KEY,
    claimIdleMs: 2000,
    log: quiet,
    ...(batchSize ? { batchSize } : {}),
  });
}

async function lifecycleOf(status: StatusStore, ref: MessageRef, createdAt: number): Promise<void> {
  const create = {
    ...ref,
    to: '+14155550123',
    createdAt,
    trafficType: 'TRANSACTION',
    batchId: 'b-1',
    expireAt: createdAt + 3_600_000,
    callback: { url: 'https://hooks.example.com/rbm', scope: 'key-1' },
  };
  await status.transition(ref, 'SENDING', { create, now: createdAt + 10, countAttempt: true, fields: { e164: '+14155550123' } });
  await status.transition(ref, 'SENT', { now: createdAt + 20, event: 'SENT' });
  await status.transition(ref, 'DELIVERED', { now: createdAt + 30, event: 'DELIVERED' });
  // A duplicate DELIVERED moves nothing: kept in the timeline, so in the archive too.
  await status.transition(ref, 'DELIVERED', { now: createdAt + 35, event: 'DELIVERED' });
  await status.transition(ref, 'READ', { now: createdAt + 40, event: 'READ' });
  // A late repeat after the last move: in the timeline, but the record's updatedAt stays at the READ.
  await status.transition(ref, 'DELIVERED', { now: createdAt + 45, event: 'DELIVERED' });
}

describe('the archiver', () => {
  let archiver: BatchConsumer | undefined;

  it('archives each message with the timeline and facts Redis holds; the feed is emptied', async () => {
    const prefix = uniquePrefix('arch');
    const status = new StatusStore(redis, { prefix, ttlMs: 60_000 });
    const createdAt = Date.now() - 1000;
    const refs = Array.from({ length: 20 }, () => ({ agentId: 'agent-a', messageId: randomUUID() }));
    for (const ref of refs) await lifecycleOf(status, ref, createdAt);
    const failed = { agentId: 'agent-b', messageId: randomUUID() };
    await status.transition(failed, 'SENDING', { create: { ...failed, to: '+14155550199', createdAt }, now: createdAt + 5 });
    await status.transition(failed, 'FAILED', { now: createdAt + 6, error: { code: 'RBM_API', message: 'RBM answered 400' } });

    const store = watched(history);
    // 6 feed entries a message, plus the QUEUED each starts in; 2 + 1 for the failed one.
    const expected = refs.length * 7 + 3;
    archiver = archive(prefix, store, 7);
    await store.until(expected);
    expect(store.written).toBe(expected);
    for (const ref of [...refs, failed]) {
      const inRedis = (await status.get(ref))!;
      const archived = (await history.message(ref))!;
      expect(archived.timeline).toEqual(inRedis.timeline);
      expect(archived).toMatchObject({
        state: inRedis.state,
        agentId: ref.agentId,
        to: inRedis.to,
        createdAt: inRedis.createdAt,
        updatedAt: inRedis.updatedAt,
      });
    }
    expect(await history.message(refs[0]!)).toMatchObject({
      trafficType: 'TRANSACTION',
      batchId: 'b-1',
      expireAt: createdAt + 3_600_000,
      callbackUrl: 'https://hooks.example.com/rbm',
    });
    expect(await history.message(failed)).toMatchObject({ state: 'FAILED', lastError: { code: 'RBM_API', message: 'RBM answered 400' } });
    const byPhone = await history.byPhone(phoneHash(KEY, '+14155550123'), ['agent-a']);
    expect(byPhone.messages).toHaveLength(refs.length);
    await archiver.close();
    archiver = undefined;
    expect(await redis.xlen(historyFeedKey(prefix))).toBe(0);
  });

  it('writes a batch again after a failed write, and the archive holds each change once', async () => {
    const prefix = uniquePrefix('arch');
    const status = new StatusStore(redis, { prefix, ttlMs: 60_000 });
    const ref = { agentId: 'agent-c', messageId: randomUUID() };
    await lifecycleOf(status, ref, Date.now() - 1000);
    const store = watched(history, true);
    archiver = archive(prefix, store);
    await store.until(7);
    await archiver.close();
    archiver = undefined;
    expect((await history.message(ref))!.timeline).toEqual((await status.get(ref))!.timeline);
    // The failed batch was handed again whole; equal timelines mean each change is there once.
    expect(store.written).toBe(7);
  });

  it('drops an entry the store can never take, logs it, and writes the rest of its batch', async () => {
    const errors: object[] = [];
    const log = { ...quiet, error: (o: object) => void errors.push(o) };
    const good = { a: 'agent-d', m: randomUUID(), s: 'SENDING', p: 'QUEUED', t: Date.now(), c: Date.now() - 5 };
    const bad = { ...good, m: 'not-a-uuid' };
    const entries = [
      { id: '1-0', fields: ['h', JSON.stringify(bad)] },
      { id: '2-0', fields: ['h', JSON.stringify(good)] },
      { id: '3-0', fields: ['x', 'not a feed entry'] },
    ];
    expect(await archiveBatch(history, entries, KEY, log)).toBe(2);
    expect((await history.message({ agentId: 'agent-d', messageId: good.m }))!.state).toBe('SENDING');
    expect(errors).toHaveLength(3);
    // Anything but an invalid change fails the batch, to be handed again.
    const down = { write: async () => Promise.reject(new Error('connection refused')) };
    await expect(archiveBatch(down, entries.slice(1, 2), KEY, log)).rejects.toThrow('connection refused');
    const invalid = { write: async () => Promise.reject(new PayloadError('history change', [{ path: 'x', problem: 'bad' }])) };
    await expect(archiveBatch(invalid, entries.slice(1, 2), KEY, log)).rejects.toThrow(PayloadError);
  });
});
