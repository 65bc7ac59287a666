/**
 * The archiver's throughput: N messages moved through SENDING, SENT,
 * DELIVERED and READ by the real status store (whose transition script writes
 * the history feed), then one archiver (batches of 1,000) draining the feed
 * into a fresh database on the local PostgreSQL. Changes per second written,
 * counted from the feed's length to empty; and the Redis bytes a settled
 * message holds once its history is archived: in the hot window (its status
 * record), then after it, once the evictor (src/history/evictor.ts) left only
 * its tombstone.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { startArchiver } from '../../src/history/archiver.ts';
import { evictOnce } from '../../src/history/evictor.ts';
import { openHistory } from '../../src/history/index.ts';
import { createRedis, whenReady } from '../../src/queue/connection.ts';
import { historyFeedKey, settledIndexKey, StatusStore } from '../../src/status/store.ts';
import { deleteKeys, freshDatabase, usedMemory } from '../lib.ts';

export interface ArchiverResult {
  messages: number;
  /** Timeline entries written: four moves a message plus the QUEUED each starts in. */
  changes: number;
  seconds: number;
  changesPerSec: number;
  messagesPerSec: number;
  /** Redis used_memory per settled, archived message in the hot window (its status record; the feed is empty by then). */
  redisBytesPerSettledMessage: number;
  /** The same after the hot window: what stays is its tombstone. */
  redisBytesPerEvictedMessage: number;
  /** Records evicted per second by one evictor round after another. */
  evictedPerSec: number;
}

const quiet = { error: () => {}, warn: () => {}, info: () => {}, debug: () => {} };

export async function archiverThroughput(redisUrl: string, opts: { messages: number; adminUrl?: string }): Promise<ArchiverResult> {
  const database = await freshDatabase('rbm_archiver_bench', opts.adminUrl);
  const redis = createRedis(redisUrl, 'worker');
  await whenReady(redis);
  const prefix = `bench-arch-${randomBytes(3).toString('hex')}`;
  const store = await openHistory({ url: database.url, log: quiet });
  try {
    const status = new StatusStore(redis, { prefix, ttlMs: 3_600_000 });
    const before = await usedMemory(redis);
    const createdAt = Date.now();
    let next = 0;
    const lane = async () => {
      while (next < opts.messages) {
        const i = next++;
        const ref = { agentId: `agent-${i % 10}`, messageId: randomUUID() };
        const create = { ...ref, to: `+1415555${String(i % 10_000).padStart(4, '0')}`, createdAt, trafficType: 'TRANSACTION' };
        await status.transition(ref, 'SENDING', { create, fields: { e164: create.to } });
        await status.transition(ref, 'SENT', { event: 'SENT' });
        await status.transition(ref, 'DELIVERED', { event: 'DELIVERED' });
        await status.transition(ref, 'READ', { event: 'READ' });
      }
    };
    await Promise.all(Array.from({ length: 64 }, lane));
    const feed = historyFeedKey(prefix);
    const t0 = performance.now();
    const archiver = startArchiver({
      redis,
      blocking: redis.duplicate(),
      prefix,
      store,
      phoneKey: 'bench',
      batchSize: 1000,
      claimIdleMs: 30_000,
      log: quiet,
    });
    // The feed empties as batches are written and acknowledged; polled, as nothing else tells this process.
    while ((await redis.xlen(feed)) > 0) await new Promise((r) => setTimeout(r, 20));
    const seconds = (performance.now() - t0) / 1000;
    await archiver.close();
    const after = await usedMemory(redis);
    // Past the hot window (1 s here, as if an hour had passed: `now` a minute on): rounds until the index is empty.
    const evictor = {
      redis,
      prefix,
      hotMs: 1000,
      ttlMs: 3_600_000,
      statusKey: (ref: { agentId: string; messageId: string }) => status.key(ref),
      log: quiet,
      now: () => Date.now() + 60_000,
    };
    const e0 = performance.now();
    while ((await redis.zcard(settledIndexKey(prefix))) > 0) await evictOnce(evictor);
    const evictSeconds = (performance.now() - e0) / 1000;
    const evicted = await usedMemory(redis);
    const changes = opts.messages * 5;
    return {
      messages: opts.messages,
      changes,
      seconds,
      changesPerSec: changes / seconds,
      messagesPerSec: opts.messages / seconds,
      redisBytesPerSettledMessage: Math.round((after - before) / opts.messages),
      redisBytesPerEvictedMessage: Math.round((evicted - before) / opts.messages),
      evictedPerSec: opts.messages / evictSeconds,
    };
  } finally {
    await store.close();
    await deleteKeys(redis, `${prefix}:*`);
    await redis.quit();
    await database.drop();
  }
}
