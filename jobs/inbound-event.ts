/**
 * The inbound-event job: one verified, deduplicated RBM webhook payload
 * (spec §6.6) on its way to the inbound worker, plus the shapes of the
 * payload kinds that worker acts on. The platform may add fields, so the
 * payload shapes are loose; what we read from them is checked.
 */
import { z } from 'zod';
import { e164, epochMs, type JobContract, type JobDefaults } from './common.ts';

export const INBOUND_EVENT = 'inbound-event';

/** Spec §6.7: how a decoded payload is classified. */
export const inboundKinds = ['userMessage', 'userEvent', 'serverEvent', 'agentLaunchEvent', 'unknown'] as const;
export type InboundKind = (typeof inboundKinds)[number];

const payloadSchema = z.object({
  kind: z.enum(inboundKinds),
  /** The agent ID without '@rbm.goog'. */
  agentId: z.string().min(1).max(200),
  /** The decoded message.data: the RBM payload object itself. */
  payload: z.record(z.string(), z.unknown()),
  receivedAt: epochMs,
  /** Pub/Sub's ID of the envelope (not the RBM message ID). */
  envelopeMessageId: z.string().max(200).optional(),
});

export const inboundEventPayload = z.compile(payloadSchema);
export type InboundEventPayload = z.output<typeof inboundEventPayload>;

/** A user's device reporting on one of our messages, or on itself (spec §6.6 B). */
export const userEventSchema = z.looseObject({
  senderPhoneNumber: e164,
  eventType: z.enum(['DELIVERED', 'READ', 'IS_TYPING', 'UNSUBSCRIBE', 'SUBSCRIBE', 'EVENT_TYPE_UNSPECIFIED']),
  eventId: z.string().min(1).max(500),
  messageId: z.string().min(1).max(500).optional(),
  sendTime: z.string().optional(),
  agentId: z.string().optional(),
});
export type UserEvent = z.output<typeof userEventSchema>;

/** The platform on TTL expiry (spec §6.6 C): note `phoneNumber`, not `senderPhoneNumber`. */
export const serverEventSchema = z.looseObject({
  phoneNumber: e164,
  eventType: z.enum(['TTL_EXPIRATION_REVOKED', 'TTL_EXPIRATION_REVOKE_FAILED', 'EVENT_TYPE_UNSPECIFIED']),
  eventId: z.string().min(1).max(500),
  messageId: z.string().min(1).max(500),
  sendTime: z.string().optional(),
  agentId: z.string().optional(),
});
export type ServerEvent = z.output<typeof serverEventSchema>;

/** A user writing to the agent (spec §6.6 A). */
export const userMessageSchema = z.looseObject({
  senderPhoneNumber: e164,
  messageId: z.string().min(1).max(500),
  sendTime: z.string().optional(),
  agentId: z.string().optional(),
});
export type UserMessage = z.output<typeof userMessageSchema>;

/**
 * An event that could not be applied for a passing reason (Redis, a revoke call
 * that failed) is retried on this schedule: 0.5 s doubling to 5 min, for as long
 * as its webhook is deduplicated (7 days). A fact RBM told us is not dropped
 * because a short retry budget ran out; an event that only waits on its message
 * never comes here (it is parked on the record).
 */
export const INBOUND_RETRY_BACKOFF = 'inbound-schedule';
export const inboundRetrySchedule = { baseMs: 500, maxDelayMs: 300_000, forMs: 7 * 24 * 3_600_000 } as const;

export const defaultInboundEventOptions = {
  attempts: 2_030,
  backoff: { type: INBOUND_RETRY_BACKOFF, delay: inboundRetrySchedule.baseMs },
} as const satisfies JobDefaults;

/**
 * Numbered by BullMQ: an event comes here only after its webhook was
 * deduplicated at intake, and the handler applies a fact once however often it runs.
 */
export const inboundEventJob = {
  name: INBOUND_EVENT,
  queue: 'inbound',
  schema: inboundEventPayload,
  jobId: (_event: InboundEventPayload): undefined => undefined,
  defaultOptions: defaultInboundEventOptions,
} as const satisfies JobContract<typeof INBOUND_EVENT, InboundEventPayload>;
