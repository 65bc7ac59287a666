/**
 * Whose secret signs a callback. Each API key has a scope of its own and a
 * secret derived from CALLBACK_SECRET for it, so one tenant can never forge
 * another's callbacks; the 'default' scope (the library, or an API without
 * keys) signs with CALLBACK_SECRET itself. Secrets are never stored: they are
 * derived again where needed.
 */
import { createHash, createHmac } from 'node:crypto';

export const DEFAULT_SCOPE = 'default';

/** An API key's scope: a digest, so the key itself is never stored with messages. */
export function scopeOfApiKey(apiKey: string): string {
  return `key-${createHash('sha256').update(apiKey).digest('hex').slice(0, 16)}`;
}

/** The Standard Webhooks secret (whsec_<base64>) callbacks of `scope` are signed with. */
export function callbackSecretFor(masterSecret: string, scope: string): string {
  if (scope === DEFAULT_SCOPE) return masterSecret;
  const master = Buffer.from(masterSecret.slice('whsec_'.length), 'base64');
  return `whsec_${createHmac('sha256', master).update(`rbm-dispatch callback scope ${scope}`).digest('base64')}`;
}
