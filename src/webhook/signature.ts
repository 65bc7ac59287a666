/**
 * RBM webhook authenticity (spec §6.4): X-Goog-Signature is the standard
 * base64 of HMAC-SHA512 keyed with the agent's client token over the decoded
 * message.data bytes. Compared in constant time.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export function signWebhookData(clientToken: string, data: Buffer): string {
  return createHmac('sha512', clientToken).update(data).digest('base64');
}

export function verifyWebhookData(clientToken: string, data: Buffer, header: string): boolean {
  const expected = Buffer.from(signWebhookData(clientToken, data));
  const given = Buffer.from(header);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/** The verification handshake's token check, also constant time (spec §6.2). */
export function tokenMatches(candidate: string, tokens: Iterable<string>): boolean {
  const given = Buffer.from(candidate);
  let match = false;
  for (const token of tokens) {
    const t = Buffer.from(token);
    if (t.length === given.length && timingSafeEqual(t, given)) match = true;
  }
  return match;
}
