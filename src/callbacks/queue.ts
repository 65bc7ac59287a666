/**
 * The callback delivery queue: one BullMQ job per status change (and per
 * replay), retried on the callback schedule, whose type the callback worker
 * knows (see schedule.ts and the worker's backoffStrategy). Each job's
 * priority is its receiver's turn (receivers.ts, "fair order"), so a
 * receiver with a long backlog does not hold up the others.
 */
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import {
  CALLBACK_QUEUE,
  callbackWebhookId,
  DELIVER_CALLBACK,
  deliverCallbackJobId,
  type DeliverCallbackPayload,
} from '../../jobs/deliver-callback.ts';
import { sharedQueue } from '../queue/shared-queue.ts';
import type { Receivers } from './receivers.ts';
import { retryDelays, type RetrySchedule } from './schedule.ts';

/** The job backoff type the callback worker's backoffStrategy serves. */
export const CALLBACK_BACKOFF = 'callback-schedule';

export class CallbackQueue {
  readonly queue: Queue;
  private readonly attempts: number;

  constructor(
    connection: Redis,
    prefix: string,
    schedule: RetrySchedule,
    private readonly receivers: Pick<Receivers, 'priorities'>,
  ) {
    this.queue = sharedQueue(CALLBACK_QUEUE, connection, prefix);
    this.attempts = retryDelays(schedule).length + 1;
  }

  /** Adds deliveries; one already queued under its job ID is not added twice. */
  async enqueue(deliveries: readonly DeliverCallbackPayload[]): Promise<void> {
    if (deliveries.length === 0) return;
    const jobs = deliveries.map((d) => ({ d, jobId: deliverCallbackJobId(callbackWebhookId(d.data), d.replay), priority: 0 }));
    const byOrigin = new Map<string, typeof jobs>();
    for (const job of jobs) {
      const origin = new URL(job.d.url).origin;
      const list = byOrigin.get(origin);
      if (list) list.push(job);
      else byOrigin.set(origin, [job]);
    }
    await Promise.all(
      [...byOrigin].map(async ([origin, list]) => {
        const priorities = await this.receivers.priorities(
          origin,
          list.map((j) => j.jobId),
        );
        list.forEach((j, i) => {
          j.priority = priorities[i]!;
        });
      }),
    );
    await this.queue.addBulk(
      jobs.map(({ d, jobId, priority }) => ({
        name: DELIVER_CALLBACK,
        data: d,
        opts: { jobId, priority, attempts: this.attempts, backoff: { type: CALLBACK_BACKOFF } },
      })),
    );
  }

  /**
   * Brings parked deliveries back now. One that is no longer delayed (it came
   * back on its own, or is gone) is skipped: waking is a hint, never a second copy.
   */
  async wake(jobIds: readonly string[]): Promise<void> {
    const backend = this.queue.getBackend();
    await Promise.all(jobIds.map((id) => backend.promote(id).catch(() => undefined)));
  }

  close(): Promise<void> {
    return this.queue.close();
  }
}
