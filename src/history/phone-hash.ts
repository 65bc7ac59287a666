/**
 * The keyed hash history finds a number's messages by, without storing the
 * number: HMAC-SHA256 of the E.164 string under HISTORY_PHONE_KEY, as 64 hex
 * characters. The key never leaves the service, so the hash cannot be
 * reversed by hashing every number; changing the key orphans older rows from
 * lookups by number and erase (they still age out by retention).
 */
import { createHmac } from 'node:crypto';

export function phoneHash(key: string, e164: string): string {
  return createHmac('sha256', key).update(e164).digest('hex');
}
