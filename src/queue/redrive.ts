/**
 * Re-driving messages that failed for good (an operator's POST
 * /v1/failures:retry). A FAILED message goes back to QUEUED and its failed
 * job runs again with fresh attempts and the same messageId, so RBM still
 * drops a copy it already accepted. A FALLBACK_FAILED one gets its SMS job
 * again, unless a try may have handed the SMS to the provider
 * (SMS_OUTCOME_UNKNOWN): that one is left for a person to decide.
 */
import type { Job } from 'bullmq';
import { SEND_MESSAGE, SEND_SMS } from '../../jobs/index.ts';
import type { MessageState } from '../status/states.ts';
import type { MessageRef, StatusStore } from '../status/store.ts';
import type { JobQueues } from './job-queues.ts';

export interface RedriveResult {
  retried: string[];
  skipped: Array<{ messageId: string; why: string }>;
}

/** What re-driving a failed state means: its failed job, the state it goes back to, and why. */
const REDRIVES = {
  FAILED: { job: SEND_MESSAGE, to: 'QUEUED', what: 'its job', detail: 're-driven by an operator' },
  FALLBACK_FAILED: { job: SEND_SMS, to: 'FALLBACK_QUEUED', what: 'its SMS job', detail: 'SMS re-driven by an operator' },
} as const satisfies Partial<Record<MessageState, { job: string; to: MessageState; what: string; detail: string }>>;

export async function redrive(
  deps: { status: StatusStore; queues: JobQueues },
  /** The messages, each in its agent's namespace (the caller resolved IDs to the agents it may use). */
  refs: readonly MessageRef[],
): Promise<RedriveResult> {
  const result: RedriveResult = { retried: [], skipped: [] };
  for (const ref of refs) {
    const id = ref.messageId;
    const record = await deps.status.get(ref);
    const skip = (why: string) => result.skipped.push({ messageId: id, why });
    if (!record) {
      skip('no such message');
      continue;
    }
    if (record.state !== 'FAILED' && record.state !== 'FALLBACK_FAILED') {
      skip(`it is ${record.state}, not failed`);
      continue;
    }
    if (record.state === 'FALLBACK_FAILED' && record.lastError?.code === 'SMS_OUTCOME_UNKNOWN') {
      skip('a try may have handed the SMS to the provider; re-sending could send it twice');
      continue;
    }
    const how = REDRIVES[record.state];
    const job: Job | undefined = await deps.queues.find(how.job, ref);
    if (!job || !(await job.isFailed())) {
      skip(`${how.what} is no longer kept (JOB_KEEP_FAILED_MS)`);
      continue;
    }
    const t = await deps.status.transition(ref, how.to, { event: 'REDRIVE', detail: how.detail });
    if (!t.ok) {
      skip(`it moved to ${t.from}`);
      continue;
    }
    await job.retry('failed', { resetAttemptsMade: true });
    result.retried.push(id);
  }
  return result;
}
