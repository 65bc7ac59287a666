/**
 * The webhook receiver's queue side: one BullMQ add per event, deduplicated
 * inside the same Redis script by BullMQ's deduplication key (kept for the
 * dedupe TTL, 7 days by default, the horizon of RBM's retries).
 */
import { randomBytes } from 'node:crypto';
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { INBOUND_EVENT, INBOUND_QUEUE, defaultInboundEventOptions, inboundEventJobId, type InboundEventPayload } from '../../jobs/inbound-event.ts';
import type { InboundIntake } from '../webhook/receiver.ts';

export class QueueInboundIntake implements InboundIntake {
  private readonly queue: Queue;

  constructor(connection: Redis, private readonly opts: { prefix: string; dedupeTtlMs: number }) {
    this.queue = new Queue(INBOUND_QUEUE, { connection, prefix: opts.prefix });
  }

  async enqueue(event: InboundEventPayload, dedupeId: string | undefined): Promise<'queued' | 'duplicate'> {
    // A fresh job ID per request: when BullMQ finds the dedupe key it answers
    // with the first job's ID instead, which is how a duplicate is told apart.
    const jobId = inboundEventJobId(randomBytes(12).toString('hex'));
    const job = await this.queue.add(INBOUND_EVENT, event, {
      jobId,
      ...defaultInboundEventOptions,
      ...(dedupeId ? { deduplication: { id: `${event.agentId}:${dedupeId}`, ttl: this.opts.dedupeTtlMs } } : {}),
    });
    return job.id === jobId ? 'queued' : 'duplicate';
  }

  close(): Promise<void> {
    return this.queue.close();
  }
}
