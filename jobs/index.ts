/**
 * The job registry: every job name mapped to its contract (queue kind, payload
 * schema, job-ID builder, default options). The service builds its queues,
 * job options and worker handler tables from it (src/queue/job-queues.ts,
 * job-options.ts, workers.ts); test/jobs.test-d.ts pins its types.
 */
import type { z } from 'zod';
import { validate, type JobContract, type Validation } from './common.ts';
import { CHECK_EXPIRY, checkExpiryJob } from './check-expiry.ts';
import { INBOUND_EVENT, inboundEventJob } from './inbound-event.ts';
import type { QueueKind } from './queues.ts';
import { SEND_EVENT, sendEventJob } from './send-event.ts';
import { SEND_MESSAGE, sendMessageJob } from './send-message.ts';
import { SEND_SMS, sendSmsJob } from './send-sms.ts';
import { DELIVER_CALLBACK, deliverCallbackJob } from './deliver-callback.ts';

export const jobs = {
  [SEND_MESSAGE]: sendMessageJob,
  [SEND_EVENT]: sendEventJob,
  [INBOUND_EVENT]: inboundEventJob,
  [CHECK_EXPIRY]: checkExpiryJob,
  [SEND_SMS]: sendSmsJob,
  [DELIVER_CALLBACK]: deliverCallbackJob,
} as const;

export type JobName = keyof typeof jobs;

/** Job name → payload type, as the worker gets it after validation. */
export type JobPayloads = { [N in JobName]: z.output<(typeof jobs)[N]['schema']> };

/** Job name → what its job ID is made of (the payload has it; a lookup may give just that). */
export type JobKeys = { [N in JobName]: Parameters<(typeof jobs)[N]['jobId']>[0] };

/** The job names a queue kind carries: a worker of that queue needs a handler for each. */
export type JobsOf<Q extends QueueKind> = { [N in JobName]: (typeof jobs)[N]['queue'] extends Q ? N : never }[JobName];

/** The registry seen through one contract type, so a name indexes a contract of that name's payload. */
export const contracts: { readonly [N in JobName]: JobContract<N, JobPayloads[N], JobKeys[N]> } = jobs;

/** The job names of one queue kind, at run time (JobsOf at compile time). */
export function jobNamesOf(queue: QueueKind): JobName[] {
  return (Object.keys(jobs) as JobName[]).filter((name) => jobs[name].queue === queue);
}

/** A worker's first step (payloads are `unknown` until validated): a failure here is permanent. */
export function validatePayload<N extends JobName>(name: N, data: unknown): Validation<JobPayloads[N]> {
  return validate(contracts[name].schema, data);
}

export * from './common.ts';
export * from './queues.ts';
export * from './agent-message.ts';
export * from './send-message.ts';
export * from './send-event.ts';
export * from './inbound-event.ts';
export * from './check-expiry.ts';
export * from './send-sms.ts';
export * from './deliver-callback.ts';
