/**
 * The batch consumer (src/queue/batch-stream.ts) against a real Redis: every
 * entry handed in batches of at most the size asked, acknowledged and deleted
 * once handled; a batch whose handler throws is handed again, whole; a batch
 * a dead consumer held is taken over by another. Counted, not sampled.
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createRedis, whenReady } from '../src/queue/connection.ts';
import { startBatchConsumer, type BatchConsumer, type StreamEntry } from '../src/queue/batch-stream.ts';
import { redisUrl, uniquePrefix } from './helpers.ts';

const admin = createRedis(redisUrl(), 'worker');
const consumers: BatchConsumer[] = [];
const quiet = { error: () => {}, warn: () => {}, info: () => {}, debug: () => {} };

afterEach(async () => {
  await Promise.all(consumers.splice(0).map((c) => c.close()));
});
afterAll(async () => {
  await admin.quit();
});

function start(stream: string, handleBatch: (entries: readonly StreamEntry[]) => Promise<void>, claimIdleMs = 500): BatchConsumer {
  const consumer = startBatchConsumer({
    stream,
    group: 'archiver',
    blocking: createRedis(redisUrl(), 'worker'),
    redis: admin,
    batchSize: 50,
    handleBatch,
    claimIdleMs,
    log: quiet,
  });
  consumers.push(consumer);
  return consumer;
}

async function add(stream: string, n: number): Promise<void> {
  const pipeline = admin.pipeline();
  for (let i = 0; i < n; i++) pipeline.xadd(stream, '*', 'n', String(i));
  await pipeline.exec();
}

/** Resolves once `count()` reaches n (each batch reports its progress). */
function reached(n: number): { seen: Map<string, number>; done: Promise<void>; note: (entries: readonly StreamEntry[]) => void } {
  const seen = new Map<string, number>();
  let resolve!: () => void;
  const done = new Promise<void>((r) => (resolve = r));
  return {
    seen,
    done,
    note(entries) {
      for (const e of entries) seen.set(e.fields[1]!, (seen.get(e.fields[1]!) ?? 0) + 1);
      if (seen.size >= n) resolve();
    },
  };
}

describe('the batch consumer', () => {
  it('hands every entry once, in batches of at most the size asked, and deletes what it handled', async () => {
    await whenReady(admin);
    const stream = `${uniquePrefix('batch')}:feed`;
    await add(stream, 230);
    const sizes: number[] = [];
    const progress = reached(230);
    start(stream, async (entries) => {
      sizes.push(entries.length);
      progress.note(entries);
    });
    await progress.done;
    expect(Math.max(...sizes)).toBeLessThanOrEqual(50);
    expect([...progress.seen.values()].every((n) => n === 1)).toBe(true);
    await consumers.pop()!.close();
    expect(await admin.xlen(stream)).toBe(0);
    expect(await admin.xpending(stream, 'archiver')).toEqual([0, null, null, null]);
  });

  it('hands a batch whose handler threw again, whole, and loses nothing', async () => {
    const stream = `${uniquePrefix('batch')}:feed`;
    await add(stream, 120);
    let failed: string[] | undefined;
    const progress = reached(120);
    start(stream, async (entries) => {
      if (!failed) {
        failed = entries.map((e) => e.id);
        throw new Error('the database went away');
      }
      progress.note(entries);
    });
    await progress.done;
    // The failed batch came back: every entry of it was handled after the failure.
    for (const id of failed!) expect(await admin.xrange(stream, id, id)).toEqual([]);
    expect(progress.seen.size).toBe(120);
    expect([...progress.seen.values()].every((n) => n === 1)).toBe(true);
  });

  it("takes over a dead consumer's batch after claimIdleMs", async () => {
    const stream = `${uniquePrefix('batch')}:feed`;
    await add(stream, 40);
    // A consumer that read a batch and died before acknowledging it.
    await admin.xgroup('CREATE', stream, 'archiver', '0', 'MKSTREAM');
    await admin.xreadgroup('GROUP', 'archiver', 'dead-one', 'COUNT', 40, 'STREAMS', stream, '>');
    const progress = reached(40);
    start(stream, async (entries) => progress.note(entries), 300);
    await progress.done;
    expect(progress.seen.size).toBe(40);
  });

  it('a batch that takes longer than claimIdleMs is not taken over while it runs', async () => {
    const stream = `${uniquePrefix('batch')}:feed`;
    await add(stream, 100);
    const progress = reached(100);
    let first = true;
    let slowDone!: () => void;
    const finished = new Promise<void>((r) => (slowDone = r));
    const slow = async (entries: readonly StreamEntry[]) => {
      if (first) {
        first = false;
        // Three claim times: another consumer would take it over, were it not renewed.
        await new Promise((r) => setTimeout(r, 900));
        progress.note(entries);
        slowDone();
        return;
      }
      progress.note(entries);
    };
    start(stream, slow, 300);
    start(stream, slow, 300);
    await Promise.all([progress.done, finished]);
    // A take-over would have handed the slow batch twice: once to each consumer.
    await consumers.pop()!.close();
    await consumers.pop()!.close();
    expect([...progress.seen.values()].every((n) => n === 1)).toBe(true);
  });
});
