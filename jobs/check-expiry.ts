/**
 * The check-expiry job: the local deadline of a message sent with a TTL.
 * Delayed until expireTime + grace; if by then no delivery and no server
 * event arrived, the worker revokes the message and falls back on a 200
 * (DESIGN.md "The fallback has a local deadline").
 */
import { z } from 'zod';
import { agentId, e164, epochMs, uuid, type JobContract, type JobDefaults } from './common.ts';

export const CHECK_EXPIRY = 'check-expiry';

const payloadSchema = z.object({
  messageId: uuid,
  agentId,
  to: e164,
  expireAt: epochMs,
});

export const checkExpiryPayload = z.compile(payloadSchema);
export type CheckExpiryPayload = z.output<typeof checkExpiryPayload>;

export function checkExpiryJobId(messageId: string, agentId: string): string {
  return `exp-${agentId}-${messageId}`;
}

export const defaultCheckExpiryOptions = {
  attempts: 8,
  backoff: { type: 'exponential', delay: 1000, jitter: 0.5 },
} as const satisfies JobDefaults;

export type CheckExpiryKey = Pick<CheckExpiryPayload, 'agentId' | 'messageId'>;

export const checkExpiryJob = {
  name: CHECK_EXPIRY,
  queue: 'inbound',
  schema: checkExpiryPayload,
  jobId: (key: CheckExpiryKey) => checkExpiryJobId(key.messageId, key.agentId),
  defaultOptions: defaultCheckExpiryOptions,
} as const satisfies JobContract<typeof CHECK_EXPIRY, CheckExpiryPayload, CheckExpiryKey>;
