/**
 * Reading an RBM webhook: the Pub/Sub push envelope (spec §6.3), its base64
 * data, and what kind of payload that is (spec §6.7). Every way a body can be
 * malformed is named here, with the code the receiver answers it with.
 */
import type { InboundKind } from '../../jobs/inbound-event.ts';
import { DispatchError, type ErrorCodes } from '../errors.ts';

/** The codes of a malformed webhook body: each answered 400 (src/errors.ts). */
export type WebhookBodyCode =
  | typeof ErrorCodes.BODY_INVALID_JSON
  | typeof ErrorCodes.ENVELOPE_INVALID
  | typeof ErrorCodes.DATA_NOT_BASE64
  | typeof ErrorCodes.DATA_NOT_JSON;

export class WebhookBodyError extends DispatchError {
  declare readonly code: WebhookBodyCode;
  constructor(code: WebhookBodyCode, message: string) {
    super(code, message);
    this.name = 'WebhookBodyError';
  }
}

export interface Envelope {
  /** The decoded message.data bytes: what the signature covers. */
  data: Buffer;
  payload: Record<string, unknown>;
  attributes: Record<string, unknown>;
  envelopeMessageId: string | undefined;
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The verification handshake: {clientToken, secret} and no message (spec §6.2). */
export function asHandshake(body: unknown): { clientToken: string; secret: string } | undefined {
  if (!isObject(body) || 'message' in body) return undefined;
  const { clientToken, secret } = body;
  return typeof clientToken === 'string' && typeof secret === 'string' ? { clientToken, secret } : undefined;
}

export function parseEnvelope(body: unknown): Envelope {
  if (!isObject(body))
    throw new WebhookBodyError('ENVELOPE_INVALID', `expected a JSON object, got ${Array.isArray(body) ? 'an array' : typeof body}`);
  const message = body.message;
  if (!isObject(message)) throw new WebhookBodyError('ENVELOPE_INVALID', 'expected a Pub/Sub envelope with a "message" object');
  const raw = message.data;
  if (typeof raw !== 'string' || raw.length === 0)
    throw new WebhookBodyError('ENVELOPE_INVALID', 'expected message.data to be a non-empty base64 string');
  if (raw.length % 4 !== 0 || !BASE64.test(raw))
    throw new WebhookBodyError('DATA_NOT_BASE64', 'expected message.data in standard base64 with padding');
  const data = Buffer.from(raw, 'base64');
  let payload: unknown;
  try {
    payload = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(data));
  } catch {
    throw new WebhookBodyError('DATA_NOT_JSON', 'expected message.data to decode to UTF-8 JSON');
  }
  if (!isObject(payload)) throw new WebhookBodyError('DATA_NOT_JSON', 'expected message.data to decode to a JSON object');
  const attributes = message.attributes;
  if (attributes !== undefined && !isObject(attributes))
    throw new WebhookBodyError('ENVELOPE_INVALID', 'expected message.attributes to be an object');
  const id = message.messageId ?? message.message_id;
  return { data, payload, attributes: attributes ?? {}, envelopeMessageId: typeof id === 'string' ? id : undefined };
}

/** Spec §6.7, in its order: launch events by attribute, then by the payload's own fields. */
export function classify(payload: Record<string, unknown>, attributes: Record<string, unknown>): InboundKind {
  if (attributes.type === 'agent_launch_event') return 'agentLaunchEvent';
  const hasEvent = typeof payload.eventType === 'string';
  if (hasEvent && typeof payload.phoneNumber === 'string' && payload.senderPhoneNumber === undefined) return 'serverEvent';
  if (hasEvent && typeof payload.senderPhoneNumber === 'string') return 'userEvent';
  if (typeof payload.senderPhoneNumber === 'string' && ['text', 'userFile', 'location', 'suggestionResponse'].some((k) => k in payload))
    return 'userMessage';
  return 'unknown';
}

/** The agent a payload belongs to, without '@rbm.goog'. */
export function agentOf(payload: Record<string, unknown>, attributes: Record<string, unknown>): string | undefined {
  const full =
    typeof payload.agentId === 'string' ? payload.agentId : typeof attributes.business_id === 'string' ? attributes.business_id : undefined;
  return full?.replace(/@rbm\.goog$/, '');
}

/** The ID RBM may deliver twice under (spec §6.8): events by eventId, user messages by messageId. */
export function dedupeIdOf(kind: InboundKind, payload: Record<string, unknown>, envelopeMessageId: string | undefined): string | undefined {
  const id = kind === 'userMessage' ? payload.messageId : payload.eventId;
  return typeof id === 'string' && id.length > 0 ? id : envelopeMessageId;
}
