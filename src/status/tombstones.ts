/**
 * Tombstones: what stays in Redis of a settled message after its record left
 * (history/evictor.ts moves it out once the archive holds its history). One
 * field of a small hash per message, ~40–90 bytes where the record held ~2 KB:
 * the state, a check of the phone number and createdAt (lua/evict.lua). A late
 * DELIVERED or READ meets it, moves it and reaches the archive through the
 * history feed, once; anything else about the message changes nothing.
 *
 * Buckets: one hash per agent, generation and last two hex digits of the
 * message ID (so a bucket of a busy agent holds a few hundred fields, kept in
 * Redis's compact encoding). A generation spans half of STATUS_TTL_MS and its
 * buckets expire STATUS_TTL_MS after it ends, so a tombstone lasts between
 * STATUS_TTL_MS and 1.5 × that, and a lookup reads the three generations that
 * may still exist. No per-field expiry, no sweep.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { ChainableCommander, Redis } from 'ioredis';
import { maskPhone } from '../mask.ts';
import { type Keyspace, type KeyspaceLike, keyspaceOf, pipelinedByLane } from '../queue/keyspace.ts';
import { statesLeadingTo, type MessageState } from './states.ts';
import { HISTORY_FEED_MAXLEN, historyFeedKey, metricsKey, type MessageRef } from './store.ts';
import { generationMs, STATE_OF_CODE, TOMBSTONE_CODES, tombstoneBucket, tombstoneBuckets, tombstoneField } from './tombstone-keys.ts';

const EVICT = readFileSync(new URL('./lua/evict.lua', import.meta.url), 'utf8');
const TOMB_MOVE = readFileSync(new URL('./lua/tomb-move.lua', import.meta.url), 'utf8');

type TombRedis = Redis & {
  rbmEvict(status: string, settled: string, failures: string, tomb: string, ...args: (string | number | Buffer)[]): Promise<EvictOutcome>;
  rbmTombMove(
    b0: string,
    b1: string,
    b2: string,
    metrics: string,
    feed: string,
    ...args: (string | number | Buffer)[]
  ): Promise<[number, string | null]>;
};

export type EvictOutcome = 'evicted' | 'hot' | 'behind' | 'live' | 'gone';

/** What a webhook event met: no tombstone, another number's message, or the state it is in (and whether it moved). */
export type TombstoneResult =
  | { found: false }
  | { found: true; phoneMatches: false; state: MessageState }
  | { found: true; phoneMatches: true; state: MessageState; moved: boolean; from: MessageState };

/** 4 bytes of the SHA-1 of a number: what a tombstone keeps to check an event's number against. */
function phoneCheck(phone: string): Buffer {
  return createHash('sha1').update(phone).digest().subarray(0, 4);
}

export class Tombstones {
  private readonly redis: TombRedis;
  private readonly generationMs: number;
  private readonly keyspace: Keyspace;

  constructor(
    redis: Redis,
    private readonly opts: { prefix: KeyspaceLike; ttlMs: number },
  ) {
    this.keyspace = keyspaceOf(opts.prefix);
    if (!('rbmTombMove' in redis)) {
      redis.defineCommand('rbmEvict', { numberOfKeys: 4, lua: EVICT });
      redis.defineCommand('rbmTombMove', { numberOfKeys: 5, lua: TOMB_MOVE });
    }
    this.redis = redis as TombRedis;
    this.generationMs = generationMs(opts.ttlMs);
  }

  private field(messageId: string): Buffer | null {
    return tombstoneField(messageId);
  }

  private bucket(ref: MessageRef, generation: number): string {
    return tombstoneBucket(this.keyspace.of(ref.agentId), ref, generation);
  }

  private buckets(ref: MessageRef, now: number): [string, string, string] {
    return tombstoneBuckets(this.keyspace.of(ref.agentId), this.opts.ttlMs, ref, now);
  }

  /**
   * Evicts these records (lua/evict.lua), each on its own terms, in one
   * pipelined round: an outcome per ref, in order.
   */
  async evict(
    records: ReadonlyArray<{ ref: MessageRef; member: string; statusKey: string }>,
    indexes: { settled: string; failures: string },
    cutoff: number,
    watermark: string,
    now: number,
  ): Promise<EvictOutcome[]> {
    const g = Math.floor(now / this.generationMs);
    const expireAt = (g + 1) * this.generationMs + this.opts.ttlMs;
    const pipeline = this.redis.pipeline() as unknown as Pick<TombRedis, 'rbmEvict' | 'zrem'> & {
      exec(): Promise<[Error | null, unknown][] | null>;
    };
    for (const r of records) {
      const field = this.field(r.ref.messageId);
      // Not a UUID: no outbound message has such an ID; it leaves the index and its record keeps its TTL.
      if (!field) void pipeline.zrem(indexes.settled, r.member);
      else {
        const bucket = this.bucket(r.ref, g);
        void pipeline.rbmEvict(
          r.statusKey,
          indexes.settled,
          indexes.failures,
          bucket,
          r.member,
          cutoff,
          watermark,
          TOMBSTONE_CODES,
          field,
          expireAt,
        );
      }
    }
    const replies = records.length === 0 ? [] : ((await pipeline.exec()) ?? []);
    return replies.map(([err, outcome]) => {
      if (err) throw err;
      return typeof outcome === 'string' ? (outcome as EvictOutcome) : 'live';
    });
  }

  /**
   * A webhook event about a message with no record: its tombstone, checked
   * against the event's number; a DELIVERED or READ (`to`) moves it when the
   * state machine allows, and reaches the archive through the history feed.
   */
  async apply(ref: MessageRef, phone: string, event: string, to: 'DELIVERED' | 'READ' | null, now = Date.now()): Promise<TombstoneResult> {
    const field = this.field(ref.messageId);
    if (!field) return { found: false };
    const [b0, b1, b2] = this.buckets(ref, now);
    const [moved, state] = await this.redis.rbmTombMove(
      b0,
      b1,
      b2,
      metricsKey(this.keyspace.of(ref.agentId)),
      historyFeedKey(this.keyspace.of(ref.agentId)),
      field,
      to ?? '',
      now,
      TOMBSTONE_CODES,
      phoneCheck(phone),
      phoneCheck(maskPhone(phone)),
      ref.agentId,
      ref.messageId,
      event,
      HISTORY_FEED_MAXLEN,
      ...(to ? statesLeadingTo(to) : []),
    );
    if (state === null) return { found: false };
    if (moved === -1) return { found: true, phoneMatches: false, state: state as MessageState };
    return moved === 1
      ? { found: true, phoneMatches: true, state: to!, moved: true, from: state as MessageState }
      : { found: true, phoneMatches: true, state: state as MessageState, moved: false, from: state as MessageState };
  }

  /** The states of these messages' tombstones (null: none), in one pipelined round. */
  async states(refs: readonly MessageRef[], now = Date.now()): Promise<(MessageState | null)[]> {
    const replies = await this.onEachBucket(refs, now, (p, bucket, field) => p.hget(bucket, field));
    return replies.map((r) => {
      const value = r.map(([, v]) => v).find((v) => typeof v === 'string') as string | undefined;
      return value ? (STATE_OF_CODE.get(value[0]!.toUpperCase()) ?? null) : null;
    });
  }

  /** Deletes these messages' tombstones (a data-protection erase); returns how many went. */
  async erase(refs: readonly MessageRef[], now = Date.now()): Promise<number> {
    const replies = await this.onEachBucket(refs, now, (p, bucket, field) => p.hdel(bucket, field));
    return replies.flat().reduce((n, [, deleted]) => n + Number(deleted ?? 0), 0);
  }

  /** One command per bucket that may hold each message's tombstone, pipelined per lane; replies per message. */
  private onEachBucket(
    refs: readonly MessageRef[],
    now: number,
    command: (pipeline: ChainableCommander, bucket: string, field: Buffer) => void,
  ): Promise<Array<Array<[Error | null, unknown]>>> {
    return pipelinedByLane(
      this.redis,
      refs,
      (ref) => this.keyspace.of(ref.agentId),
      (p, ref) => {
        const field = this.field(ref.messageId);
        if (field) for (const bucket of this.buckets(ref, now)) command(p, bucket, field);
      },
    );
  }
}
