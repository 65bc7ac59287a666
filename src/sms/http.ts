/**
 * What the HTTP adapters (Twilio, webhook) share: a keep-alive pool per
 * adapter (through the egress guard when its URL is a user's), the recipient
 * check that runs before any request, one exchange that turns "no answer"
 * into a retry and a refused address into a permanent failure, and the
 * scrubbing that keeps phone numbers and secrets out of error messages.
 */
import { type Dispatcher, Pool } from 'undici';
import { e164 } from '../../jobs/common.ts';
import { guardedConnector } from '../egress/connector.ts';
import type { EgressGuard } from '../egress/guard.ts';
import { UrlForbiddenError } from '../errors.ts';
import { maskPhone, maskPhonesIn } from '../mask.ts';
import { SmsProviderError, kindForStatus } from './errors.ts';
import type { SmsProviderName } from './types.ts';

/** SMS is the fallback share of traffic: a few sockets cover it. */
const CONNECTIONS = 16;

export interface HttpAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

export interface HttpPool {
  pool: Pool;
  close(): Promise<void>;
}

/** `egress`: every connect asks it (a URL a user gave); none for a provider's own API. */
export function openPool(origin: string, timeoutMs: number, egress?: EgressGuard): HttpPool {
  const connectTimeout = Math.min(timeoutMs, 5000);
  const pool = new Pool(origin, {
    connections: CONNECTIONS,
    keepAliveTimeout: 30_000,
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
    ...(egress ? { connect: guardedConnector(egress, { timeoutMs: connectTimeout }) } : { connectTimeout }),
  });
  let closing: Promise<void> | undefined;
  // Shutdown paths may close twice; undici rejects a second close.
  return {
    pool,
    close: async () => {
      // biome-ignore lint/suspicious/noAssignInExpressions: deliberate: the first close() is shared by every caller
      await (closing ??= pool.close());
    },
  };
}

/** The pathname of a base URL without its trailing slash, so paths can be appended. */
export function basePath(url: URL): string {
  return url.pathname.replace(/\/+$/, '');
}

/** Refuses a missing or non-E.164 recipient before any request: no provider can help. */
export function requireE164(provider: SmsProviderName, to: unknown): string {
  if (typeof to === 'string' && e164.safeParse(to).success) return to;
  const got = typeof to === 'string' ? `'${maskPhone(to)}'` : to === undefined ? 'nothing' : typeof to;
  throw new SmsProviderError({
    provider,
    kind: 'permanent',
    message: `${provider}: expected an E.164 recipient like +12223334444, got ${got}; nothing was sent`,
  });
}

/**
 * Replaces the recipient (with or without '+'), every other E.164-looking
 * number and each secret: a provider's error text may echo any of them.
 */
export function scrubber(to: string, secrets: readonly string[]): (text: string) => string {
  return (text) => {
    let out = text;
    for (const secret of secrets) if (secret) out = out.split(secret).join('***');
    out = out.split(to).join(maskPhone(to)).split(to.slice(1)).join(maskPhone(to).slice(1));
    return maskPhonesIn(out);
  };
}

/** One request; no answer at all (refused, reset, timed out) becomes a retry. */
export async function exchange(
  provider: SmsProviderName,
  pool: Pool,
  request: { path: string; headers: Record<string, string>; body: string },
  to: string,
): Promise<HttpAnswer> {
  let res: Dispatcher.ResponseData;
  try {
    res = await pool.request({ method: 'POST', path: request.path, headers: request.headers, body: request.body });
  } catch (cause) {
    if (cause instanceof UrlForbiddenError) {
      // Nothing was sent, and every retry would lead to the same address.
      throw new SmsProviderError(
        {
          provider,
          kind: 'permanent',
          message: `${provider}: the SMS to ${maskPhone(to)} was not sent: ${cause.message} (CALLBACK_ALLOW_HOSTS opens private hosts)`,
        },
        { cause },
      );
    }
    throw noAnswer(provider, to, 'no answer', cause);
  }
  try {
    return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
  } catch (cause) {
    // The provider may have accepted it; the idempotency key makes the retry safe where honoured.
    throw noAnswer(provider, to, `answered ${res.statusCode}, then the connection was lost`, cause);
  }
}

function noAnswer(provider: SmsProviderName, to: string, what: string, cause: unknown): SmsProviderError {
  const reason = (cause as { code?: string }).code ?? (cause as Error).message;
  return new SmsProviderError(
    { provider, kind: 'retry', message: `${provider}: expected an answer for the SMS to ${maskPhone(to)}, got ${what} (${reason})` },
    { cause },
  );
}

/** An answer that is not a success, with the kind its status implies. */
export function refusal(provider: SmsProviderName, answer: HttpAnswer, message: string, providerCode?: string | number): SmsProviderError {
  return new SmsProviderError({
    provider,
    kind: kindForStatus(answer.status),
    message,
    status: answer.status,
    providerCode,
    retryAfterMs: parseRetryAfter(answer.headers['retry-after']),
  });
}

/** Retry-After is seconds or an HTTP date. */
export function parseRetryAfter(value: string | string[] | undefined): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (!v) return undefined;
  if (/^\d+(\.\d+)?$/.test(v.trim())) return Math.round(Number(v) * 1000);
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    // not JSON: a proxy or load balancer answered
    return undefined;
  }
}

/** A body excerpt for an error message, already scrubbed. */
export function excerpt(text: string, scrub: (text: string) => string): string {
  // Scrub before cutting: a cut could split a number or a secret past recognition.
  const flat = scrub(text).replace(/\s+/g, ' ').trim();
  return (flat.length > 200 ? `${flat.slice(0, 200)}…` : flat) || '(empty body)';
}
