/**
 * Batches: the message IDs of one POST /v1/messages:batch, kept as long as
 * their status records, and their progress as counts per state. A message
 * with no record yet is still QUEUED (its job is its state); one whose record
 * left Redis after the hot window is in its tombstone's state. Reading a
 * 10,000-message batch costs one pipelined round of HGETs (two when some left).
 */
import type { Redis } from 'ioredis';
import { pipelinedByLane } from '../queue/keyspace.ts';
import type { MessageState } from './states.ts';
import { parseRefString, refString, type MessageRef } from './store.ts';
import type { Tombstones } from './tombstones.ts';

export interface BatchProgress {
  batchId: string;
  total: number;
  counts: Partial<Record<MessageState, number>>;
}

export class BatchStore {
  constructor(
    private readonly redis: Redis,
    private readonly opts: {
      prefix: string;
      ttlMs: number;
      statusKey: (ref: MessageRef) => string;
      /** The lane (keyspace.ts) of a message's record: reads are pipelined per lane. Default: one lane. */
      laneOf?: (ref: MessageRef) => string;
      tombstones?: Pick<Tombstones, 'states'>;
    },
  ) {}

  private key(batchId: string): string {
    return `${this.opts.prefix}:batch:${batchId}`;
  }

  /** Appends the batch's newly queued messages (a replayed batch adds none). */
  async record(batchId: string, refs: readonly MessageRef[]): Promise<void> {
    if (refs.length === 0) return;
    const members = refs.map(refString);
    const pipeline = this.redis.pipeline();
    for (let i = 0; i < members.length; i += 1000) pipeline.rpush(this.key(batchId), ...members.slice(i, i + 1000));
    pipeline.pexpire(this.key(batchId), this.opts.ttlMs);
    await pipeline.exec();
  }

  /** With `agents`, a batch holding any message of another agent is not shown: null, as for an unknown batch. */
  async progress(batchId: string, agents: ReadonlySet<string> | null = null): Promise<BatchProgress | null> {
    const ids = await this.redis.lrange(this.key(batchId), 0, -1);
    if (ids.length === 0) return null;
    const refs = ids.map(parseRefString);
    if (agents && refs.some((r) => !agents.has(r.agentId))) return null;
    const replies = await pipelinedByLane(this.redis, refs, this.opts.laneOf ?? (() => ''), (p, ref) =>
      p.hget(this.opts.statusKey(ref), 'state'),
    );
    const states = replies.map((r) => (r[0]?.[1] as MessageState | null | undefined) ?? null);
    const missing = refs.filter((_, i) => states[i] === null);
    const left = missing.length > 0 && this.opts.tombstones ? await this.opts.tombstones.states(missing) : [];
    const counts: Partial<Record<MessageState, number>> = {};
    let m = 0;
    for (const state of states) {
      const s = state ?? left[m++] ?? 'QUEUED';
      counts[s] = (counts[s] ?? 0) + 1;
    }
    return { batchId, total: ids.length, counts };
  }
}
