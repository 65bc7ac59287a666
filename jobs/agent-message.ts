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

/**
 * An upper bound of a value's JSON size in bytes, without building the JSON:
 * one UTF-16 unit never takes more than 6 bytes (a \u00XX escape), so a
 * string of n units is at most 6n + 2. Stops counting once over `budget`.
 */
function jsonBytesAtMost(value: unknown, budget: number): number {
  if (typeof value === 'string') return 6 * value.length + 2;
  if (typeof value !== 'object' || value === null) return 24; // numbers, booleans, null
  let size = 2;
  if (Array.isArray(value)) {
    for (const item of value) {
      size += jsonBytesAtMost(item, budget) + 1;
      if (size > budget) return size;
    }
    return size;
  }
  for (const key in value) {
    const v = (value as Record<string, unknown>)[key];
    if (v === undefined) continue;
    size += 6 * key.length + 4 + jsonBytesAtMost(v, budget);
    if (size > budget) return size;
  }
  return size;
}

/**
 * Whole-message rules: at most one expiration, and the 250 KB cap on the JSON
 * RBM receives (only the AgentMessage fields: `to`, `fallback`... are not sent).
 * A cheap upper bound clears nearly every message; only one that could be near
 * the cap is serialised and counted exactly.
 */
export function checkAgentMessage(payload: z.core.ParsePayload<MessageFields>): void {
  oneExpiration(payload);
  const { contentMessage: c, messageTrafficType, ttl: t, expireTime } = payload.value;
  const message = { contentMessage: c, messageTrafficType, ttl: t, expireTime };
  if (jsonBytesAtMost(message, rbmLimits.messageBytes) <= rbmLimits.messageBytes) return;
  const bytes = Buffer.byteLength(JSON.stringify(message), 'utf8');
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
