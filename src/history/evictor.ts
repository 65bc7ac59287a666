/**
 * The evictor: settled status records leave Redis once they have been settled
 * for STATUS_HOT_MS and the archiver has written every entry they fed to the
 * history feed, leaving a tombstone (status/tombstones.ts) for RBM's late
 * news. It reads the settled index from the oldest, a page at a time, and
 * evicts each record in its own check-and-delete step (status/lua/evict.lua),
 * so a record that moves meanwhile stays. It runs beside the archiver: no
 * archiver, no watermark, nothing leaves.
 */
import type { Redis } from 'ioredis';
import type { Logger } from '../handlers/types.ts';
import { throttled } from '../log-throttle.ts';
import { Tombstones, type EvictOutcome } from '../status/tombstones.ts';
import { failuresKey, historyFeedKey, metricsKey, parseRefString, settledIndexKey, type MessageRef } from '../status/store.ts';
import { ARCHIVER_GROUP } from './archiver.ts';

const PAGE = 500;
/** Pages per round at most: a backlog drains over several rounds, each bounded. */
const MAX_PAGES = 40;

export interface EvictorOptions {
  redis: Redis;
  /** The lane it evicts from (queue/keyspace.ts): its settled index, failures index, tombstones and history feed. */
  prefix: string;
  /** STATUS_HOT_MS: how long a settled record stays after its last move. */
  hotMs: number;
  /** STATUS_TTL_MS: how long its tombstone lasts, at least. */
  ttlMs: number;
  statusKey: (ref: MessageRef) => string;
  log: Logger;
  now?: () => number;
}

export type EvictCounts = Record<EvictOutcome, number>;

/** The next stream ID after `id` ('ms-seq'). */
function nextId(id: string): string {
  const [ms, seq] = id.split('-');
  return `${ms}-${Number(seq ?? 0) + 1}`;
}

/**
 * The history feed's archived prefix: every entry before the returned ID was
 * delivered to the archiver's group and acknowledged (written). '' when the
 * group does not exist yet. Read in this order (delivered, then pending), an
 * entry before the watermark was delivered before the first read and not
 * pending at the second: written.
 */
export async function archivedBefore(redis: Redis, prefix: string): Promise<string> {
  const stream = historyFeedKey(prefix);
  let groups: unknown[];
  try {
    groups = (await redis.xinfo('GROUPS', stream)) as unknown[];
  } catch (err) {
    if (/no such key/i.test((err as Error).message)) return '';
    throw err;
  }
  const group = (groups as string[][]).map((g) => Object.fromEntries(pairs(g))).find((g) => g.name === ARCHIVER_GROUP);
  if (!group) return '';
  const delivered = nextId(String(group['last-delivered-id']));
  const pending = (await redis.xpending(stream, ARCHIVER_GROUP)) as [number, string | null, string | null, unknown];
  return pending[0] > 0 && pending[1] ? pending[1] : delivered;
}

function pairs(flat: readonly unknown[]): Array<[string, unknown]> {
  const out: Array<[string, unknown]> = [];
  for (let i = 0; i + 1 < flat.length; i += 2) out.push([String(flat[i]), flat[i + 1]]);
  return out;
}

/** One round: evicts what may leave now; returns what it met. */
export async function evictOnce(opts: EvictorOptions, tombstones = new Tombstones(opts.redis, opts)): Promise<EvictCounts> {
  const counts: EvictCounts = { evicted: 0, hot: 0, behind: 0, live: 0, gone: 0 };
  const watermark = await archivedBefore(opts.redis, opts.prefix);
  if (watermark === '') return counts;
  const now = (opts.now ?? Date.now)();
  const cutoff = now - opts.hotMs;
  const settled = settledIndexKey(opts.prefix);
  for (let page = 0; page < MAX_PAGES; page++) {
    const members = await opts.redis.zrangebyscore(settled, '-inf', cutoff, 'LIMIT', 0, PAGE);
    if (members.length === 0) break;
    const records = members.map((member) => {
      const ref = parseRefString(member);
      return { ref, member, statusKey: opts.statusKey(ref) };
    });
    const outcomes = await tombstones.evict(records, { settled, failures: failuresKey(opts.prefix) }, cutoff, watermark, now);
    for (const o of outcomes) counts[o]++;
    // Records the archiver has not caught up with stay at the front: the next page would read them again.
    if (counts.behind > 0 || members.length < PAGE) break;
  }
  if (counts.evicted > 0) await opts.redis.hincrby(metricsKey(opts.prefix), 'history|evicted', counts.evicted);
  return counts;
}

export interface Evictor {
  close(): Promise<void>;
}

/** Rounds every quarter of the hot window (between 100 ms and a minute), until closed. */
export function startEvictor(opts: EvictorOptions): Evictor {
  const tombstones = new Tombstones(opts.redis, opts);
  const everyMs = Math.min(60_000, Math.max(100, Math.floor(opts.hotMs / 4)));
  let running = true;
  let round: Promise<unknown> = Promise.resolve();
  let timer: NodeJS.Timeout | undefined;
  const tick = () => {
    round = evictOnce(opts, tombstones)
      .catch((err: Error) => throttled(opts.log).warn('eviction round failed; tried again next round', err, 'evictor'))
      .finally(() => {
        if (running) timer = setTimeout(tick, everyMs);
      });
  };
  timer = setTimeout(tick, everyMs);
  return {
    async close() {
      running = false;
      clearTimeout(timer);
      await round;
    },
  };
}
