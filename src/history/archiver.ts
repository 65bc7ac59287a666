/**
 * The archiver: the history feed (every timeline entry the transition script
 * writes, src/status/lua/transition.lua) to PostgreSQL, in batches. Each batch
 * is one HistoryStore.write, idempotent on (agent, message, state, at), so a
 * batch handed again after a crash or a failed write adds nothing twice. The
 * feed entries are deleted once written (batch-stream.ts).
 *
 * Each message's first timeline entry (QUEUED at its createdAt) is derived
 * here, as the status record derives it, so the archived timeline equals the
 * one Redis held.
 */
import type { Redis } from 'ioredis';
import { PayloadError } from '../errors.ts';
import type { Logger } from '../handlers/types.ts';
import { startBatchConsumer, type BatchConsumer, type StreamEntry } from '../queue/batch-stream.ts';
import type { MessageState } from '../status/states.ts';
import { historyFeedKey } from '../status/store.ts';
import { phoneHash } from './phone-hash.ts';
import type { HistoryChange } from './types.ts';

export const ARCHIVER_GROUP = 'archiver';

/** A feed entry as transition.lua writes it (field `h`, JSON with short keys to keep the stream small). */
interface FeedEntry {
  a: string;
  m: string;
  s: MessageState;
  p: MessageState;
  t: number;
  c: number;
  e?: string;
  d?: string;
  ec?: string;
  em?: string;
  to?: string;
  ph?: string;
  tt?: string;
  b?: string;
  /** expireAt, ms */
  x?: number;
  /** the callback URL */
  u?: string;
}

export interface ArchiverStore {
  write(changes: readonly HistoryChange[]): Promise<unknown>;
}

/** A feed entry's changes: its own, and for a message's first move out of QUEUED the QUEUED it started in. */
export function changesOf(entry: FeedEntry, phoneKey: string): HistoryChange[] {
  const facts = {
    agentId: entry.a,
    messageId: entry.m,
    createdAt: entry.c,
    ...(entry.to !== undefined ? { toMasked: entry.to } : {}),
    ...(entry.ph !== undefined ? { toHash: phoneHash(phoneKey, entry.ph) } : {}),
    ...(entry.tt !== undefined ? { trafficType: entry.tt } : {}),
    ...(entry.b !== undefined ? { batchId: entry.b } : {}),
    ...(entry.x !== undefined ? { expireAt: entry.x } : {}),
    ...(entry.u !== undefined ? { callbackUrl: entry.u } : {}),
  };
  const change: HistoryChange = {
    ...facts,
    state: entry.s,
    previousState: entry.p,
    at: entry.t,
    ...(entry.e !== undefined ? { event: entry.e } : {}),
    ...(entry.d !== undefined ? { detail: entry.d } : {}),
    ...(entry.ec !== undefined ? { errorCode: entry.ec } : {}),
    ...(entry.em !== undefined ? { errorMessage: entry.em } : {}),
  };
  // Written again on every move out of QUEUED (a re-drive too): the same (state, at), so stored once.
  return entry.p === 'QUEUED' ? [{ ...facts, state: 'QUEUED', at: entry.c }, change] : [change];
}

/** Parses one stream entry; null for one that is not a feed entry (logged, then dropped: it can never be written). */
function parseEntry(entry: StreamEntry): FeedEntry | null {
  const json = entry.fields[0] === 'h' ? entry.fields[1] : undefined;
  if (json === undefined) return null;
  try {
    const parsed = JSON.parse(json) as FeedEntry;
    return typeof parsed.a === 'string' && typeof parsed.m === 'string' && typeof parsed.s === 'string' ? parsed : null;
  } catch {
    return null;
  }
}

/**
 * Writes one batch. A change the store refuses as invalid (PayloadError names
 * its index) can never be written: it is dropped, logged, and the rest written;
 * anything else (the database away) fails the batch, which is handed again.
 */
export async function archiveBatch(store: ArchiverStore, entries: readonly StreamEntry[], phoneKey: string, log: Logger): Promise<number> {
  let changes: HistoryChange[] = [];
  for (const entry of entries) {
    const parsed = parseEntry(entry);
    if (parsed) changes.push(...changesOf(parsed, phoneKey));
    else log.error({ entry: entry.id }, 'history feed entry dropped: not a feed entry');
  }
  for (let tries = 0; changes.length > 0; tries++) {
    try {
      await store.write(changes);
      return changes.length;
    } catch (err) {
      const index = err instanceof PayloadError ? err.index : undefined;
      if (index === undefined || tries >= entries.length) throw err;
      const bad = changes[index]!;
      log.error(
        { agentId: bad.agentId, messageId: bad.messageId, state: bad.state, err: (err as Error).message },
        'history change dropped: invalid',
      );
      changes = changes.filter((_, i) => i !== index);
    }
  }
  return 0;
}

export interface ArchiverOptions {
  redis: Redis;
  /** Blocking reads (the archiver disconnects it on close). */
  blocking: Redis;
  prefix: string;
  store: ArchiverStore;
  phoneKey: string;
  batchSize?: number;
  claimIdleMs: number;
  log: Logger;
}

export function startArchiver(opts: ArchiverOptions): BatchConsumer {
  return startBatchConsumer({
    stream: historyFeedKey(opts.prefix),
    group: ARCHIVER_GROUP,
    blocking: opts.blocking,
    redis: opts.redis,
    batchSize: opts.batchSize ?? 1000,
    claimIdleMs: opts.claimIdleMs,
    log: opts.log,
    handleBatch: async (entries) => {
      await archiveBatch(opts.store, entries, opts.phoneKey, opts.log);
    },
  });
}
