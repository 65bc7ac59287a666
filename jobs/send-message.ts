/**
 * The send-message job: one AgentMessage to one phone under a stable RBM
 * messageId, with an optional SMS fallback and deadline. Also the public
 * producer input it is made from, built from the same AgentMessage pieces.
 */
import { z } from 'zod';
import { agentMessage, agentMessageFields, checkAgentMessage, outputOnlyFields, type MessageTrafficType } from './agent-message.ts';
import {
  agentId,
  callbackUrl,
  e164,
  epochMs,
  idempotencyKey,
  strictObject,
  uuid,
  type JobContract,
  type JobDefaults,
  type Problem,
} from './common.ts';
import { MAX_EXPIRATION_MS, parseTimestampMs } from './rbm-time.ts';

export const SEND_MESSAGE = 'send-message';

/** What to send by SMS when RCS cannot deliver (not RCS, expired, revoked). */
export const smsFallback = strictObject({
  sms: strictObject({
    /** Up to 10 concatenated GSM-7 segments. */
    text: z.string().min(1).max(1600),
    /** Sender (number, short code, alphanumeric ID or provider sender ID); the provider's default when absent. */
    from: z.string().min(1).max(64).optional(),
  }),
});

/**
 * The job payload. Not strict at top level, unlike the public input: payloads
 * change only by adding optional fields, and a worker one deploy behind must
 * ignore a field it does not know rather than fail every job.
 */
const payloadSchema = z.object({
  /** RBM's messageId: fixed at enqueue, reused on every retry (RBM ignores a reused ID). */
  messageId: uuid,
  agentId,
  to: e164,
  message: agentMessage,
  fallback: smsFallback.optional(),
  enqueuedAt: epochMs,
  /** Deadline (ms epoch) from ttl or expireTime, computed at enqueue so queue time counts against a ttl. */
  expireAt: epochMs.optional(),
  batchId: z.string().min(1).max(255).optional(),
  /** Where status changes are POSTed, and whose secret signs them (see jobs/deliver-callback.ts). */
  callback: z.object({ url: callbackUrl, scope: z.string().min(1).max(64) }).optional(),
});

/**
 * The public producer shape (POST /v1/messages, the library's enqueue): RBM's
 * own AgentMessage fields at top level, plus ours. Strict, so typos surface.
 */
const inputSchema = strictObject(
  {
    ...agentMessageFields,
    to: e164,
    /** Optional when one agent is configured. */
    agentId: agentId.optional(),
    fallback: smsFallback.optional(),
    /** The messageId becomes a UUIDv5 of (agentId, key): the same key never sends twice. */
    idempotencyKey: idempotencyKey.optional(),
    /** A caller-chosen RBM messageId. */
    messageId: uuid.optional(),
    /** POST every state change of this message here (Standard Webhooks), instead of the API key's registered URL. */
    callbackUrl: callbackUrl.optional(),
  },
  outputOnlyFields,
).check(checkAgentMessage);

// Compiled once here: see agent-message.ts.
export const sendMessagePayload = z.compile(payloadSchema);
export type SendMessagePayload = z.output<typeof sendMessagePayload>;
export const sendMessageInput = z.compile(inputSchema);
export type SendMessageInput = z.input<typeof sendMessageInput>;

/**
 * Rules that depend on the clock, checked on input only: a worker
 * re-validating an old job must not fail it because time passed.
 */
export function checkInputTiming(input: { expireTime?: string | undefined }, nowMs: number): Problem[] {
  if (input.expireTime === undefined) return [];
  const at = parseTimestampMs(input.expireTime);
  if (Number.isNaN(at)) return []; // the schema reports the format
  if (at <= nowMs) {
    const ago = Math.ceil((nowMs - at) / 1000);
    return [{ path: 'expireTime', problem: `expected a time in the future, got ${input.expireTime} (${ago} s ago)` }];
  }
  if (at - nowMs > MAX_EXPIRATION_MS) {
    const latest = new Date(nowMs + MAX_EXPIRATION_MS).toISOString();
    return [{ path: 'expireTime', problem: `expected at most 15 days from now (${latest}), got ${input.expireTime}` }];
  }
  return [];
}

/** BullMQ job IDs never contain ':' and are never all digits: the prefix sees to the second. */
export function sendMessageJobId(messageId: string): string {
  return `msg-${messageId}`;
}

export const defaultSendMessageOptions = {
  attempts: 8,
  backoff: { type: 'exponential', delay: 1000, jitter: 0.5 },
} as const satisfies JobDefaults;

/**
 * BullMQ priorities: lower runs first, and 0 means "no priority", which BullMQ
 * serves before every prioritized job: the fastest lane, for OTPs (and events).
 */
const PRIORITIES = {
  AUTHENTICATION: 0,
  ACKNOWLEDGEMENT: 1,
  TRANSACTION: 2,
  SERVICEREQUEST: 2,
  PROMOTION: 4,
} as const satisfies Record<MessageTrafficType, number>;

/** Between the explicit service types and PROMOTION. */
const UNSET_PRIORITY = 3;

export function priorityFor(trafficType: MessageTrafficType | undefined): number {
  return trafficType === undefined ? UNSET_PRIORITY : PRIORITIES[trafficType];
}

/** A message's job is found by its ref: the agent (whose queue holds it) and the messageId. */
export type SendMessageKey = Pick<SendMessagePayload, 'agentId' | 'messageId'>;

export const sendMessageJob = {
  name: SEND_MESSAGE,
  queue: 'outbound',
  schema: sendMessagePayload,
  jobId: (key: SendMessageKey) => sendMessageJobId(key.messageId),
  defaultOptions: defaultSendMessageOptions,
} as const satisfies JobContract<typeof SEND_MESSAGE, SendMessagePayload, SendMessageKey>;
