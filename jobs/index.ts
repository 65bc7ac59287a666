/**
 * The job registry: every job name mapped to its contract (queue, payload
 * schema, job-ID builder, default options). Producers and workers import
 * jobs/ from here; a type test pins this map.
 */
import type { z } from 'zod';
import { validate, type JobContract, type Validation } from './common.ts';
import { CHECK_EXPIRY, checkExpiryJob } from './check-expiry.ts';
import { INBOUND_EVENT, inboundEventJob } from './inbound-event.ts';
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

/** The registry seen through one contract type, so a name indexes a schema of that name's payload. */
const contracts: { readonly [N in JobName]: JobContract<N, JobPayloads[N]> } = jobs;

/** A worker's first step (payloads are `unknown` until validated): a failure here is permanent. */
export function validatePayload<N extends JobName>(name: N, data: unknown): Validation<JobPayloads[N]> {
  return validate(contracts[name].schema, data);
}

export * from './common.ts';
export * from './agent-message.ts';
export * from './send-message.ts';
export * from './send-event.ts';
export * from './inbound-event.ts';
export * from './check-expiry.ts';
export * from './send-sms.ts';
export * from './deliver-callback.ts';
