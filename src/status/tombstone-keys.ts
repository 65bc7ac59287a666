/**
 * Where a message's tombstone lives (tombstones.ts): its field (the message ID
 * as 16 bytes) and the buckets that may hold it now, newest generation first.
 * One module for every script that looks (tomb-move.lua, create-many.lua) or
 * writes (evict.lua), so they agree.
 */
import { SETTLED_STATES } from './states.ts';

const CODES: Readonly<Record<string, string>> = {
  DELIVERED: 'D',
  READ: 'R',
  FAILED: 'F',
  EXPIRED: 'E',
  REVOKED: 'V',
  FALLBACK_SENT: 'S',
  FALLBACK_FAILED: 'X',
};
/** One character per settled state, the tombstone's first ('CODE:STATE' pairs, as the scripts read them). */
export const TOMBSTONE_CODES = SETTLED_STATES.map((s) => `${CODES[s]}:${s}`).join(' ');
export const STATE_OF_CODE = new Map(SETTLED_STATES.map((s) => [CODES[s]!, s]));

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** A generation spans half of STATUS_TTL_MS; a tombstone lasts STATUS_TTL_MS to 1.5 × that. */
export function generationMs(ttlMs: number): number {
  return Math.max(1, Math.floor(ttlMs / 2));
}

/** The message ID as the tombstone's field (16 bytes); null for an ID that is not a UUID (no outbound message has one). */
export function tombstoneField(messageId: string): Buffer | null {
  return UUID.test(messageId) ? Buffer.from(messageId.replaceAll('-', ''), 'hex') : null;
}

export function tombstoneBucket(prefix: string, ref: { agentId: string; messageId: string }, generation: number): string {
  return `${prefix}:tomb:${ref.agentId}:${generation}:${ref.messageId.slice(-2)}`;
}

/** The buckets that may hold a message's tombstone at `now`, newest first. */
export function tombstoneBuckets(
  prefix: string,
  ttlMs: number,
  ref: { agentId: string; messageId: string },
  now: number,
): [string, string, string] {
  const g = Math.floor(now / generationMs(ttlMs));
  return [tombstoneBucket(prefix, ref, g), tombstoneBucket(prefix, ref, g - 1), tombstoneBucket(prefix, ref, g - 2)];
}
