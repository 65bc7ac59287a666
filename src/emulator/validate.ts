/**
 * Input checks of the RBM paths: phone, IDs and the AgentMessage / AgentEvent
 * bodies (spec §1-3). Each check returns a problem text for a 400
 * INVALID_ARGUMENT, or undefined when the input is acceptable.
 */

const E164 = /^\+[1-9]\d{6,14}$/;
// RFC 4122 / 9562 layout with a version and the RFC variant; the nil UUID is not an ID.
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[1-8][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/i;
const DURATION = /^\d{1,12}(\.\d{1,9})?s$/;
const TRAFFIC_TYPES = new Set([
  'MESSAGE_TRAFFIC_TYPE_UNSPECIFIED',
  'AUTHENTICATION',
  'TRANSACTION',
  'PROMOTION',
  'SERVICEREQUEST',
  'ACKNOWLEDGEMENT',
]);
const CONTENT_FIELDS = ['text', 'fileName', 'uploadedRbmFile', 'richCard', 'contentInfo'] as const;
const MAX_TEXT = 3072;
const MAX_SUGGESTIONS = 11;

export const isE164 = (s: string): boolean => E164.test(s);
export const isUuid = (s: string | undefined): s is string => s !== undefined && UUID.test(s);

/** A query value as one string; repeated parameters arrive as arrays and count as absent. */
export function queryString(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function checkPhone(e164: string): string | undefined {
  return isE164(e164) ? undefined : `Invalid phone number "${e164}": expected E.164 such as +12223334444.`;
}

export function checkId(name: string, id: string | undefined): string | undefined {
  if (id === undefined) return `Missing required parameter ${name}.`;
  return isUuid(id) ? undefined : `Invalid ${name} "${id}": must be a UUID (RFC 4122).`;
}

/** The expireTime a created message reports: computed from ttl, or the given one normalized. */
export function expireTimeOf(body: Record<string, unknown>, sendMs: number): string | undefined {
  if (typeof body.ttl === 'string') return new Date(sendMs + Number(body.ttl.slice(0, -1)) * 1000).toISOString();
  if (typeof body.expireTime === 'string') return new Date(body.expireTime).toISOString();
  return undefined;
}

export function checkAgentMessage(body: unknown): string | undefined {
  if (!isPlainObject(body)) return 'Invalid JSON payload: the request body must be an AgentMessage object.';
  const cm = body.contentMessage;
  if (!isPlainObject(cm)) return 'Invalid AgentMessage: contentMessage is required and must be an object.';
  const present = CONTENT_FIELDS.filter((f) => cm[f] !== undefined);
  if (present.length !== 1) {
    return (
      `Invalid contentMessage: exactly one of ${CONTENT_FIELDS.join(', ')} must be set, ` +
      `got ${present.length === 0 ? 'none' : present.join(', ')}.`
    );
  }
  if (cm.text !== undefined && (typeof cm.text !== 'string' || cm.text.length > MAX_TEXT)) {
    return `Invalid contentMessage.text: must be a string of at most ${MAX_TEXT} characters.`;
  }
  if (cm.suggestions !== undefined && (!Array.isArray(cm.suggestions) || cm.suggestions.length > MAX_SUGGESTIONS)) {
    return `Invalid contentMessage.suggestions: must be an array of at most ${MAX_SUGGESTIONS}.`;
  }
  if (body.ttl !== undefined && body.expireTime !== undefined) {
    return 'Invalid AgentMessage: ttl and expireTime are mutually exclusive; set at most one.';
  }
  if (body.ttl !== undefined && (typeof body.ttl !== 'string' || !DURATION.test(body.ttl))) {
    return `Invalid ttl ${JSON.stringify(body.ttl)}: expected a duration such as "600s".`;
  }
  if (body.expireTime !== undefined && (typeof body.expireTime !== 'string' || Number.isNaN(Date.parse(body.expireTime)))) {
    return `Invalid expireTime ${JSON.stringify(body.expireTime)}: expected an RFC 3339 timestamp.`;
  }
  const tt = body.messageTrafficType;
  if (tt !== undefined && (typeof tt !== 'string' || !TRAFFIC_TYPES.has(tt))) {
    return `Invalid messageTrafficType ${JSON.stringify(tt)}: expected one of ${[...TRAFFIC_TYPES].join(', ')}.`;
  }
  return undefined;
}

export function checkAgentEvent(body: unknown): string | undefined {
  if (!isPlainObject(body)) return 'Invalid JSON payload: the request body must be an AgentEvent object.';
  if (body.eventType !== 'READ' && body.eventType !== 'IS_TYPING') {
    return `Invalid eventType ${JSON.stringify(body.eventType)}: expected READ or IS_TYPING.`;
  }
  if (body.eventType === 'READ' && (typeof body.messageId !== 'string' || body.messageId === '')) {
    return 'Invalid AgentEvent: a READ event needs the messageId of the user message it marks read.';
  }
  if (body.messageId !== undefined && typeof body.messageId !== 'string') return 'Invalid AgentEvent: messageId must be a string.';
  return undefined;
}
