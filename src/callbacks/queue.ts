/**
 * The callback delivery queue: one BullMQ job per status change (and per
 * replay), retried on the callback schedule (CALLBACK_RETRY_*: see
 * schedule.ts, src/queue/job-options.ts and the worker's backoffStrategy). Each job's
 * priority is its receiver's turn (receivers.ts, "fair order"), so a
 * receiver with a long backlog does not hold up the others.
 */
import { DELIVER_CALLBACK, deliverCallbackJob, type DeliverCallbackPayload } from '../../jobs/deliver-callback.ts';
import type { JobQueues } from '../queue/job-queues.ts';
import type { Receivers } from './receivers.ts';

export class CallbackQueue {
  constructor(
    private readonly queues: JobQueues,
    private readonly receivers: Pick<Receivers, 'priorities'>,
  ) {}

  /** Adds deliveries; one already queued under its job ID is not added twice. */
  async enqueue(deliveries: readonly DeliverCallbackPayload[]): Promise<void> {
    if (deliveries.length === 0) return;
    const jobs = deliveries.map((d) => ({ d, jobId: deliverCallbackJob.jobId(d), priority: 0 }));
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
    await this.queues.addMany(
      DELIVER_CALLBACK,
      jobs.map(({ d, priority }) => ({ payload: d, opts: { priority } })),
    );
  }

  /**
   * Brings parked deliveries back now. One that is no longer delayed (it came
   * back on its own, or is gone) is skipped: waking is a hint, never a second copy.
   */
  wake(jobIds: readonly string[]): Promise<void> {
    return this.queues.promote(DELIVER_CALLBACK, jobIds);
  }
}
