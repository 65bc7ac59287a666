/**
 * Batches: the message IDs of one POST /v1/messages:batch, kept as long as
 * their status records, and their progress as counts per state. A message
 * with no record yet is still QUEUED (its job is its state). Reading a
 * 10,000-message batch costs one pipelined round of HGETs.
 */
import type { Redis } from 'ioredis';
import type { MessageState } from './states.ts';

export interface BatchProgress {
  batchId: string;
  total: number;
  counts: Partial<Record<MessageState, number>>;
}

export class BatchStore {
  constructor(
    private readonly redis: Redis,
    private readonly opts: { prefix: string; ttlMs: number; statusKey: (messageId: string) => string },
  ) {}

  private key(batchId: string): string {
    return `${this.opts.prefix}:batch:${batchId}`;
  }

  /** Appends the batch's newly queued message IDs (a replayed batch adds none). */
  async record(batchId: string, messageIds: readonly string[]): Promise<void> {
    if (messageIds.length === 0) return;
    const pipeline = this.redis.pipeline();
    for (let i = 0; i < messageIds.length; i += 1000) pipeline.rpush(this.key(batchId), ...messageIds.slice(i, i + 1000));
    pipeline.pexpire(this.key(batchId), this.opts.ttlMs);
    await pipeline.exec();
  }

  async progress(batchId: string): Promise<BatchProgress | null> {
    const ids = await this.redis.lrange(this.key(batchId), 0, -1);
    if (ids.length === 0) return null;
    const pipeline = this.redis.pipeline();
    for (const id of ids) pipeline.hget(this.opts.statusKey(id), 'state');
    const states = (await pipeline.exec()) ?? [];
    const counts: Partial<Record<MessageState, number>> = {};
    for (const [, state] of states) {
      const s = ((state as string | null) ?? 'QUEUED') as MessageState;
      counts[s] = (counts[s] ?? 0) + 1;
    }
    return { batchId, total: ids.length, counts };
  }
}
