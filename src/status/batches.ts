/**
 * Batches: the message IDs of one POST /v1/messages:batch, kept as long as
 * their status records, and their progress as counts per state. A message
 * with no record yet is still QUEUED (its job is its state). Reading a
 * 10,000-message batch costs one pipelined round of HGETs.
 */
import type { Redis } from 'ioredis';
import type { MessageState } from './states.ts';
import { parseRefString, refString, type MessageRef } from './store.ts';

export interface BatchProgress {
  batchId: string;
  total: number;
  counts: Partial<Record<MessageState, number>>;
}

export class BatchStore {
  constructor(
    private readonly redis: Redis,
    private readonly opts: { prefix: string; ttlMs: number; statusKey: (ref: MessageRef) => string },
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
    const pipeline = this.redis.pipeline();
    for (const ref of refs) pipeline.hget(this.opts.statusKey(ref), 'state');
    const states = (await pipeline.exec()) ?? [];
    const counts: Partial<Record<MessageState, number>> = {};
    for (const [, state] of states) {
      const s = ((state as string | null) ?? 'QUEUED') as MessageState;
      counts[s] = (counts[s] ?? 0) + 1;
    }
    return { batchId, total: ids.length, counts };
  }
}
