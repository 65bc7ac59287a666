/**
 * A consumer group read in batches: each batch is handed whole to one call
 * (the archiver's multi-row write), then acknowledged and deleted in one step.
 * Delivery is at least once: a batch whose handler threw, or whose consumer
 * died, stays pending and is handed again (to this consumer first, from its
 * own pending list; to another after `claimIdleMs`), so the handler must be
 * idempotent. Batches run one at a time per consumer: order within a
 * consumer's stream position is kept, and a slow database slows the reads
 * instead of piling up work in memory.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Redis } from 'ioredis';
import type { Logger } from '../handlers/types.ts';
import { throttled } from '../log-throttle.ts';
import { settlesWithin } from './settles-within.ts';
import { Backoff, ensureGroup, lostGroup } from './stream-group.ts';

const STOP_MARGIN_MS = 3000;

export interface StreamEntry {
  id: string;
  /** The entry's field-value pairs, as XREADGROUP returns them. */
  fields: string[];
}

export interface BatchConsumerOptions {
  stream: string;
  group: string;
  /** Blocking reads only (this consumer disconnects it on close). */
  blocking: Redis;
  /** Claims, acks and deletes. */
  redis: Redis;
  /** Entries per batch, at most. */
  batchSize: number;
  handleBatch: (entries: readonly StreamEntry[]) => Promise<void>;
  /** A batch pending this long (its consumer died) is taken over. */
  claimIdleMs: number;
  log: Logger;
}

export interface BatchConsumer {
  close(): Promise<void>;
}

/** As Redis answers: an entry deleted since it was read comes back from a pending list with no fields. */
type Entries = Array<[string, string[] | null]>;

export function startBatchConsumer(opts: BatchConsumerOptions): BatchConsumer {
  const { stream, group } = opts;
  const consumer = `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
  let running = true;
  const backoff = new Backoff();
  opts.blocking.on('error', (err: Error) => throttled(opts.log).error('stream connection error', err, stream));

  /** Handles one batch, then acks and deletes it; a throw leaves it pending. */
  async function run(raw: Entries): Promise<void> {
    const entries = raw.flatMap(([id, fields]) => (fields ? [{ id, fields }] : []));
    // An id with no fields was deleted (trimmed) meanwhile: nothing to hand, only to ack.
    const ids = raw.map(([id]) => id);
    if (entries.length > 0) {
      // The batch's lock renewal: claiming our own entries again resets their idle time,
      // so a slow write is not taken over while it still runs.
      const heartbeat = setInterval(() => {
        opts.redis.xclaim(stream, group, consumer, 0, ...ids, 'JUSTID').catch(() => undefined);
      }, opts.claimIdleMs / 3);
      try {
        await opts.handleBatch(entries);
      } finally {
        clearInterval(heartbeat);
      }
    }
    if (ids.length > 0)
      await opts.redis
        .multi()
        .xack(stream, group, ...ids)
        .xdel(stream, ...ids)
        .exec();
  }

  /** This consumer's own pending entries first (a batch that failed here), then stale ones of others. */
  async function pendingBatch(): Promise<Entries> {
    const own = (await opts.redis.xreadgroup('GROUP', group, consumer, 'COUNT', opts.batchSize, 'STREAMS', stream, '0')) as Array<
      [string, Entries]
    > | null;
    const mine = own?.[0]?.[1] ?? [];
    if (mine.length > 0) return mine;
    const [, claimed] = (await opts.redis.xautoclaim(stream, group, consumer, opts.claimIdleMs, '0-0', 'COUNT', opts.batchSize)) as [
      string,
      Entries,
    ];
    return claimed;
  }

  async function loop(): Promise<void> {
    let groupReady = false;
    let failures = 0;
    let lastClaim = 0;
    while (running) {
      try {
        if (!groupReady) {
          await ensureGroup(opts.redis, stream, group);
          groupReady = true;
        }
        if (failures > 0 || Date.now() - lastClaim >= opts.claimIdleMs / 2) {
          lastClaim = Date.now();
          const pending = await pendingBatch();
          if (pending.length > 0) {
            await run(pending);
            failures = 0;
            continue;
          }
        }
        const read = (await opts.blocking.xreadgroup(
          'GROUP',
          group,
          consumer,
          'COUNT',
          opts.batchSize,
          'BLOCK',
          Math.min(1000, opts.claimIdleMs),
          'STREAMS',
          stream,
          '>',
        )) as Array<[string, Entries]> | null;
        const entries = read?.[0]?.[1] ?? [];
        if (entries.length > 0) await run(entries);
        failures = 0;
      } catch (err) {
        if (!running) return;
        if (lostGroup(err)) groupReady = false;
        throttled(opts.log).error('batch consumer error; the batch stays pending and is tried again', err, stream);
        await backoff.wait(++failures);
      }
    }
  }

  const done = loop().catch((err: Error) => {
    if (running) opts.log.error({ stream, err: err.message }, 'batch consumer stopped');
  });

  return {
    async close() {
      running = false;
      backoff.wake();
      opts.blocking.disconnect();
      // A batch in hand gets the claim time to finish; past that it stays pending and is claimed again.
      await settlesWithin(done, opts.claimIdleMs + STOP_MARGIN_MS);
    },
  };
}
