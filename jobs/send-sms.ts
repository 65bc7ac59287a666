/**
 * The send-sms job: the one SMS fallback of one RBM message. Its job ID is
 * derived from the messageId, and the worker claims the message's status
 * before sending, so a message gets at most one SMS.
 */
import { v5 as uuidv5 } from 'uuid';
import { z } from 'zod';
import { agentId, e164, epochMs, uuid, type JobContract, type JobDefaults } from './common.ts';

export const SEND_SMS = 'send-sms';

/** Why a message fell back to SMS. */
export const fallbackReasons = [
  'NOT_RCS',
  'TTL_EXPIRATION_REVOKED',
  'TTL_EXPIRATION_REVOKE_FAILED',
  'DEADLINE',
  'REVOKED_BY_PRODUCER',
] as const;
export type FallbackReason = (typeof fallbackReasons)[number];

const payloadSchema = z.object({
  messageId: uuid,
  agentId,
  to: e164,
  text: z.string().min(1).max(1600),
  from: z.string().min(1).max(64).optional(),
  reason: z.enum(fallbackReasons),
  queuedAt: epochMs,
});

export const sendSmsPayload = z.compile(payloadSchema);
export type SendSmsPayload = z.output<typeof sendSmsPayload>;

/** Message IDs live in their agent's namespace (as in RBM), so the agent is part of the job ID. */
export function sendSmsJobId(messageId: string, agentId: string): string {
  return `sms-${agentId}-${messageId}`;
}

/**
 * The key the SMS provider deduplicates on: the same on every try of one
 * message's SMS, different for the same messageId of another agent.
 */
export function smsIdempotencyKey(ref: { agentId: string; messageId: string }): string {
  return uuidv5(`sms:${ref.agentId}:${ref.messageId}`, SMS_KEY_NAMESPACE);
}
/** Namespace of the SMS idempotency keys; changing it would let an in-flight SMS be sent twice. */
const SMS_KEY_NAMESPACE = 'c2b7a1d4-5e60-4f3a-8b9c-0d1e2f3a4b5c';

export const defaultSendSmsOptions = {
  attempts: 5,
  backoff: { type: 'exponential', delay: 2000, jitter: 0.5 },
} as const satisfies JobDefaults;

export type SendSmsKey = Pick<SendSmsPayload, 'agentId' | 'messageId'>;

export const sendSmsJob = {
  name: SEND_SMS,
  queue: 'sms',
  schema: sendSmsPayload,
  jobId: (key: SendSmsKey) => sendSmsJobId(key.messageId, key.agentId),
  defaultOptions: defaultSendSmsOptions,
} as const satisfies JobContract<typeof SEND_SMS, SendSmsPayload, SendSmsKey>;
