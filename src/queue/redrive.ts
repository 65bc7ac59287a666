/**
 * Re-driving messages that failed for good (an operator's POST
 * /v1/failures:retry). A FAILED message goes back to QUEUED and its failed
 * job runs again with fresh attempts and the same messageId, so RBM still
 * drops a copy it already accepted. A FALLBACK_FAILED one gets its SMS job
 * again, unless a try may have handed the SMS to the provider
 * (SMS_OUTCOME_UNKNOWN): that one is left for a person to decide.
 */
import type { Queue } from 'bullmq';
import { sendMessageJobId } from '../../jobs/send-message.ts';
import { sendSmsJobId } from '../../jobs/send-sms.ts';
import type { MessageRef, StatusStore } from '../status/store.ts';

export interface RedriveResult {
  retried: string[];
  skipped: Array<{ messageId: string; why: string }>;
}

export async function redrive(
  deps: { status: StatusStore; outbound: (agentId: string) => Queue; sms: Queue },
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
    if (record.state === 'FAILED') {
      const job = await deps.outbound(record.agentId).getJob(sendMessageJobId(id));
      if (!job || !(await job.isFailed())) {
        skip('its job is no longer kept (JOB_KEEP_FAILED_MS)');
        continue;
      }
      const t = await deps.status.transition(ref, 'QUEUED', { event: 'REDRIVE', detail: 're-driven by an operator' });
      if (!t.ok) {
        skip(`it moved to ${t.from}`);
        continue;
      }
      await job.retry('failed', { resetAttemptsMade: true });
      result.retried.push(id);
    } else if (record.state === 'FALLBACK_FAILED') {
      if (record.lastError?.code === 'SMS_OUTCOME_UNKNOWN') {
        skip('a try may have handed the SMS to the provider; re-sending could send it twice');
        continue;
      }
      const job = await deps.sms.getJob(sendSmsJobId(id, ref.agentId));
      if (!job || !(await job.isFailed())) {
        skip('its SMS job is no longer kept (JOB_KEEP_FAILED_MS)');
        continue;
      }
      const t = await deps.status.transition(ref, 'FALLBACK_QUEUED', { event: 'REDRIVE', detail: 'SMS re-driven by an operator' });
      if (!t.ok) {
        skip(`it moved to ${t.from}`);
        continue;
      }
      await job.retry('failed', { resetAttemptsMade: true });
      result.retried.push(id);
    } else {
      skip(`it is ${record.state}, not failed`);
    }
  }
  return result;
}
