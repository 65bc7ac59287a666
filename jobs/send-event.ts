/**
 * The send-event job: one AgentEvent (spec §3), a READ receipt for a user
 * message or an IS_TYPING indicator, to one phone under a stable RBM eventId.
 * Also the public producer input for it.
 */
import { z } from 'zod';
import { agentId, e164, epochMs, idempotencyKey, rbmEnum, strictObject, uuid, type JobContract } from './common.ts';
import { defaultSendMessageOptions } from './send-message.ts';

export const SEND_EVENT = 'send-event';

export const agentEventTypes = ['READ', 'IS_TYPING'] as const;
export type AgentEventType = (typeof agentEventTypes)[number];

const eventFields = {
  eventType: rbmEnum(agentEventTypes),
  /** READ only: the *user* message's ID from the webhook, which RBM does not promise to be a UUID. */
  messageId: z.string().min(1).max(255).optional(),
};

type EventFields = { eventType: AgentEventType; messageId?: string | undefined };

/** READ names the user message it marks read; IS_TYPING names none. */
function checkMessageId(payload: z.core.ParsePayload<EventFields>): void {
  const { eventType, messageId } = payload.value;
  if (eventType === 'READ' && messageId === undefined) {
    payload.issues.push({
      code: 'custom',
      input: undefined,
      path: ['messageId'],
      message: 'required: expected the ID of the user message being marked read, for eventType READ',
    });
  } else if (eventType === 'IS_TYPING' && messageId !== undefined) {
    payload.issues.push({
      code: 'custom',
      input: messageId,
      path: ['messageId'],
      message: 'expected no messageId for eventType IS_TYPING, got one (only READ names a message)',
    });
  }
}

/** The job payload; not strict at top level so an older worker ignores a newly added optional field. */
const payloadSchema = z
  .object({
    /** RBM's eventId: fixed at enqueue, reused on every retry; shares one namespace with message IDs. */
    eventId: uuid,
    agentId,
    to: e164,
    ...eventFields,
    enqueuedAt: epochMs,
  })
  .check(checkMessageId);

/** The public producer shape (POST /v1/events): { to, agentId?, eventType, messageId? } and our IDs. */
const inputSchema = strictObject(
  {
    to: e164,
    agentId: agentId.optional(),
    ...eventFields,
    eventId: uuid.optional(),
    idempotencyKey: idempotencyKey.optional(),
  },
  {
    name: 'name is output-only: RBM sets it in its response, do not send it',
    sendTime: 'sendTime is output-only: RBM sets it in its response, do not send it',
  },
).check(checkMessageId);

// Compiled once here: see agent-message.ts.
export const sendEventPayload = z.compile(payloadSchema);
export type SendEventPayload = z.output<typeof sendEventPayload>;
export const sendEventInput = z.compile(inputSchema);
export type SendEventInput = z.input<typeof sendEventInput>;

/** BullMQ job IDs never contain ':' and are never all digits: the prefix sees to the second. */
export function sendEventJobId(eventId: string): string {
  return `evt-${eventId}`;
}

/**
 * Events share their agent's queue with its messages, and its retry policy
 * (DISPATCH_ATTEMPTS, DISPATCH_BACKOFF_MS): a 429 or a token outage costs no
 * attempt, so attempts only count answers that failed.
 */
export const defaultSendEventOptions = defaultSendMessageOptions;

/** 0 = no priority, which BullMQ serves first: a read receipt or typing dot is stale in seconds. */
export const EVENT_PRIORITY = 0;

export type SendEventKey = Pick<SendEventPayload, 'agentId' | 'eventId'>;

export const sendEventJob = {
  name: SEND_EVENT,
  queue: 'outbound',
  schema: sendEventPayload,
  jobId: (key: SendEventKey) => sendEventJobId(key.eventId),
  defaultOptions: defaultSendEventOptions,
} as const satisfies JobContract<typeof SEND_EVENT, SendEventPayload, SendEventKey>;
