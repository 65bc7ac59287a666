/**
 * RBM's AgentMessage (spec §2) as a producer sends it, holding RBM's limits so
 * a bad message is refused at enqueue, not by RBM minutes later with a 400.
 * The public send-message input and the job payload are both built from these pieces.
 */
import { z } from 'zod';
import { oneOf, rbmEnum, strictObject } from './common.ts';
import { rbmLimits } from './rbm-limits.ts';
import { contentInfo, DEPRECATED_FILE_NAME, richCard, uploadedRbmFile } from './rich-card.ts';
import { suggestion } from './suggestion.ts';
import { ttl, utcTimestamp } from './rbm-time.ts';

export const messageTrafficTypes = ['AUTHENTICATION', 'TRANSACTION', 'PROMOTION', 'SERVICEREQUEST', 'ACKNOWLEDGEMENT'] as const;
export type MessageTrafficType = (typeof messageTrafficTypes)[number];

export const contentMessage = strictObject(
  {
    text: z.string().min(1).max(rbmLimits.textChars).optional(),
    contentInfo: contentInfo.optional(),
    uploadedRbmFile: uploadedRbmFile.optional(),
    richCard: richCard.optional(),
    /** Chips below the message, shown while it is the latest in the thread. */
    suggestions: z.array(suggestion).max(rbmLimits.suggestions).optional(),
  },
  { fileName: DEPRECATED_FILE_NAME },
).check(oneOf(['text', 'contentInfo', 'uploadedRbmFile', 'richCard']));

export type ContentMessage = z.output<typeof contentMessage>;

/** RBM fills these in its answers; sending them is a mistake worth naming. */
const outputOnly = (field: string) => `${field} is output-only: RBM sets it in its response, do not send it`;
export const outputOnlyFields = {
  name: outputOnly('name'),
  sendTime: outputOnly('sendTime'),
  richMessageClassification: outputOnly('richMessageClassification'),
  totalPayloadSizeBytes: outputOnly('totalPayloadSizeBytes'),
  carrier: outputOnly('carrier'),
} as const;

/** AgentMessage's input fields, to spread into any object that carries a message at top level. */
export const agentMessageFields = {
  contentMessage,
  /** Optional today; multi-use agents must set it on every message. */
  messageTrafficType: rbmEnum(messageTrafficTypes).optional(),
  /** Expiration as a protobuf Duration ("600s"), at most 15 days; exclusive with expireTime. */
  ttl: ttl.optional(),
  /** Expiration as an RFC 3339 UTC time; exclusive with ttl. */
  expireTime: utcTimestamp.optional(),
};

type MessageFields = { [K in keyof typeof agentMessageFields]?: unknown };

const oneExpiration = oneOf<MessageFields>(['ttl', 'expireTime'], true);

/** Upper bound of UTF-8 bytes per UTF-16 unit: below limit/3 units no byte count is needed. */
const SURELY_SMALL = Math.floor(rbmLimits.messageBytes / 3);

/**
 * Whole-message rules: at most one expiration, and the 250 KB cap on the JSON
 * RBM receives (only the AgentMessage fields: `to`, `fallback`... are not sent).
 * One JSON.stringify per message; the byte count runs only near the cap.
 */
export function checkAgentMessage(payload: z.core.ParsePayload<MessageFields>): void {
  oneExpiration(payload);
  const { contentMessage: c, messageTrafficType, ttl: t, expireTime } = payload.value;
  const json = JSON.stringify({ contentMessage: c, messageTrafficType, ttl: t, expireTime });
  if (json.length <= SURELY_SMALL) return;
  const bytes = Buffer.byteLength(json, 'utf8');
  if (bytes <= rbmLimits.messageBytes) return;
  payload.issues.push({
    code: 'custom',
    input: undefined,
    path: [],
    message: `expected the message JSON to be at most ${rbmLimits.messageBytes} bytes (250 KB), got ${bytes} bytes`,
  });
}

/**
 * RBM's AgentMessage, request body of phones.agentMessages.create.
 * z.compile, once at load (a few ms): zod generates code for the valid path,
 * ~4x faster than its interpreter here; an invalid value falls back to the
 * interpreter, so problems read exactly the same.
 */
export const agentMessage = z.compile(strictObject(agentMessageFields, outputOnlyFields).check(checkAgentMessage));

export type AgentMessage = z.output<typeof agentMessage>;

export { expirationMs, parseTtlMs, parseTimestampMs, MAX_EXPIRATION_MS } from './rbm-time.ts';
export { rbmLimits } from './rbm-limits.ts';
export type { RichCard } from './rich-card.ts';
export type { Suggestion } from './suggestion.ts';
