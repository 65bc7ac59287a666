/**
 * What the platform POSTs to a webhook: the decoded payloads (UserMessage,
 * UserEvent, ServerEvent; spec §6.6), the Pub/Sub push envelope around them
 * (§6.3) and its X-Goog-Signature (§6.4).
 */
import { createHmac, randomBytes, randomInt } from 'node:crypto';

export const SUBSCRIPTION = 'projects/rbm-emulator/subscriptions/rbm-push';
/** A fixed, plausible GCP project number; the attribute is informational (spec §6.3). */
export const PROJECT_NUMBER = '3338881441851';

export const UserEventTypes = ['DELIVERED', 'READ', 'IS_TYPING', 'SUBSCRIBE', 'UNSUBSCRIBE'] as const;
export type UserEventType = (typeof UserEventTypes)[number];
export type ServerEventType = 'TTL_EXPIRATION_REVOKED' | 'TTL_EXPIRATION_REVOKE_FAILED';
export const UserMessageContents = ['text', 'suggestionResponse', 'location', 'userFile'] as const;
export type UserMessageContent = (typeof UserMessageContents)[number];

export interface PushEnvelope {
  message: {
    attributes: Record<string, string>;
    data: string;
    messageId: string;
    message_id: string;
    publishTime: string;
    publish_time: string;
  };
  subscription: string;
}

/** The RBM form of an agent ID in payloads and attributes; the API's agentId may come with or without the suffix. */
export function fullAgentId(agentId: string): string {
  return agentId.endsWith('@rbm.goog') ? agentId : `${agentId}@rbm.goog`;
}

/** IDs the user's client and the platform assign look like `MxIgT-4pWCQu2tH9hMkSTljQ`, never a UUID (spec §6.6 A). */
export function platformId(): string {
  return `Mx${randomBytes(16).toString('base64url')}`;
}

// Pub/Sub message IDs are decimal strings; a random 14-digit start keeps two emulator runs apart.
let pubsubSeq = 10_000_000_000_000 + randomInt(0, 2 ** 40);
export function pubsubMessageId(): string {
  pubsubSeq += 1;
  return String(pubsubSeq);
}

export function userEvent(
  phone: string,
  agentId: string,
  eventType: UserEventType,
  at: number,
  messageId?: string,
): Record<string, unknown> {
  const p: Record<string, unknown> = { senderPhoneNumber: phone, eventType, eventId: platformId() };
  if (messageId !== undefined) p.messageId = messageId;
  p.sendTime = new Date(at).toISOString();
  p.agentId = fullAgentId(agentId);
  return p;
}

/** Note `phoneNumber`, not `senderPhoneNumber`: that is how receivers tell a ServerEvent apart (spec §6.7). */
export function serverEvent(
  phone: string,
  agentId: string,
  eventType: ServerEventType,
  messageId: string,
  at: number,
): Record<string, unknown> {
  return {
    phoneNumber: phone,
    messageId,
    agentId: fullAgentId(agentId),
    eventType,
    eventId: platformId(),
    sendTime: new Date(at).toISOString(),
  };
}

export function userMessage(
  phone: string,
  agentId: string,
  content: Partial<Record<UserMessageContent, unknown>>,
  at: number,
): Record<string, unknown> {
  return {
    senderPhoneNumber: phone,
    messageId: platformId(),
    sendTime: new Date(at).toISOString(),
    agentId: fullAgentId(agentId),
    ...content,
  };
}

/** `message` for a UserMessage, `event` for user and server events (classification per spec §6.7). */
export function typeAttribute(payload: Record<string, unknown>): 'message' | 'event' {
  return payload.eventType === undefined && payload.senderPhoneNumber !== undefined ? 'message' : 'event';
}

/** `extra` attributes (tests crafting odd envelopes) override the standard ones. */
export function envelopeOf(agentId: string, data: string, at: number, type: string, extra?: Record<string, string>): PushEnvelope {
  const id = pubsubMessageId();
  const time = new Date(at).toISOString();
  const attributes: Record<string, string> = { business_id: fullAgentId(agentId), product: 'RBM', project_number: PROJECT_NUMBER, type };
  if (extra !== undefined) Object.assign(attributes, extra);
  return {
    message: { attributes, data, messageId: id, message_id: id, publishTime: time, publish_time: time },
    subscription: SUBSCRIPTION,
  };
}

/** base64(HMAC-SHA512(key = client token as UTF-8, message = the decoded data bytes)), spec §6.4. */
export function signature(clientToken: string, dataBytes: Buffer): string {
  return createHmac('sha512', clientToken).update(dataBytes).digest('base64');
}
