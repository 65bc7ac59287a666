/**
 * The callback delivery queue: one BullMQ job per status change (and per
 * replay), retried on the callback schedule, whose type the callback worker
 * knows (see schedule.ts and the worker's backoffStrategy).
 */
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { CALLBACK_QUEUE, callbackWebhookId, DELIVER_CALLBACK, deliverCallbackJobId, type DeliverCallbackPayload } from '../../jobs/deliver-callback.ts';
import { sharedQueue } from '../queue/shared-queue.ts';
import { retryDelays, type RetrySchedule } from './schedule.ts';

/** The job backoff type the callback worker's backoffStrategy serves. */
export const CALLBACK_BACKOFF = 'callback-schedule';

export class CallbackQueue {
  readonly queue: Queue;
  private readonly attempts: number;

  constructor(connection: Redis, prefix: string, schedule: RetrySchedule) {
    this.queue = sharedQueue(CALLBACK_QUEUE, connection, prefix);
    this.attempts = retryDelays(schedule).length + 1;
  }

  /** Adds deliveries; one already queued under its job ID is not added twice. */
  async enqueue(deliveries: readonly DeliverCallbackPayload[]): Promise<void> {
    if (deliveries.length === 0) return;
    await this.queue.addBulk(deliveries.map((d) => ({
      name: DELIVER_CALLBACK,
      data: d,
      opts: { jobId: deliverCallbackJobId(callbackWebhookId(d.data), d.replay), attempts: this.attempts, backoff: { type: CALLBACK_BACKOFF } },
    })));
  }

  close(): Promise<void> {
    return this.queue.close();
  }
}
