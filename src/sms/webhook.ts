/**
 * A generic JSON webhook for SMS gateways we do not ship an adapter for: one
 * signed POST per SMS. The signature covers a timestamp and the raw body, so a
 * receiver can refuse both forgeries and replays; verifyWebhookSignature is
 * the receiver's half, shared with the tests.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { EgressGuard } from '../egress/guard.ts';
import { maskPhone } from '../mask.ts';
import { basePath, exchange, excerpt, openPool, parseJson, refusal, requireE164, scrubber } from './http.ts';
import type { SmsProvider, SmsRequest, SmsResult, WebhookSettings } from './types.ts';

export const WebhookHeaders = {
  timestamp: 'X-Rbm-Dispatch-Timestamp',
  signature: 'X-Rbm-Dispatch-Signature',
} as const;

function hmac(secret: string, timestamp: string, rawBody: string | Uint8Array): Buffer {
  return createHmac('sha256', secret).update(`${timestamp}.`).update(rawBody).digest();
}

/** The X-Rbm-Dispatch-Signature value: `sha256=<hex HMAC-SHA256(secret, "<timestamp>.<rawBody>")>`. */
export function signWebhookBody(secret: string, timestamp: string | number, rawBody: string | Uint8Array): string {
  return `sha256=${hmac(secret, String(timestamp), rawBody).toString('hex')}`;
}

/**
 * True when `header` signs `timestamp` and `rawBody` (the bytes as received,
 * before any JSON parsing) with `secret`, and the timestamp (unix seconds) is
 * within `toleranceSec` of now. Compared in constant time.
 */
export function verifyWebhookSignature(
  secret: string,
  timestamp: string | number | undefined,
  rawBody: string | Uint8Array,
  header: string | undefined,
  toleranceSec = 300,
): boolean {
  const stamp = typeof timestamp === 'number' ? String(timestamp) : timestamp;
  if (!stamp || !/^\d{1,12}$/.test(stamp)) return false;
  if (Math.abs(Math.floor(Date.now() / 1000) - Number(stamp)) > toleranceSec) return false;
  const given = /^sha256=([0-9a-f]{64})$/i.exec(header ?? '')?.[1];
  if (!given) return false;
  return timingSafeEqual(Buffer.from(given, 'hex'), hmac(secret, stamp, rawBody));
}

/**
 * `egress`: where the webhook may connect (the service's CALLBACK_ALLOW_HOSTS
 * policy); without one, only public addresses.
 */
export function createWebhookProvider(
  settings: WebhookSettings,
  egress: EgressGuard = new EgressGuard({ allow: [], allowLoopback: false }),
): SmsProvider {
  const url = new URL(settings.url);
  const http = openPool(url.origin, settings.timeoutMs, egress);
  const path = `${basePath(url) || '/'}${url.search}`;

  async function send(request: SmsRequest): Promise<SmsResult> {
    const to = requireE164('webhook', request.to);
    const now = Date.now();
    const timestamp = String(Math.floor(now / 1000));
    // from is null rather than absent: the receiver then picks its own sender.
    const rawBody = JSON.stringify({
      to,
      from: request.from ?? settings.from ?? null,
      text: request.text,
      idempotencyKey: request.idempotencyKey,
      sentAt: new Date(now).toISOString(),
    });
    const answer = await exchange(
      'webhook',
      http.pool,
      {
        path,
        headers: {
          'Content-Type': 'application/json',
          'Idempotency-Key': request.idempotencyKey,
          [WebhookHeaders.timestamp]: timestamp,
          [WebhookHeaders.signature]: signWebhookBody(settings.secret, timestamp, rawBody),
        },
        body: rawBody,
      },
      to,
    );
    if (answer.status >= 200 && answer.status < 300) {
      const id = (parseJson(answer.text) as { id?: unknown } | null | undefined)?.id;
      const providerMessageId = typeof id === 'string' && id ? id : typeof id === 'number' ? String(id) : request.idempotencyKey;
      return { providerMessageId, provider: 'webhook' };
    }
    const body = parseJson(answer.text) as { code?: unknown; error?: { code?: unknown } } | null | undefined;
    const code = body?.code ?? body?.error?.code;
    const providerCode = typeof code === 'string' || typeof code === 'number' ? code : undefined;
    throw refusal(
      'webhook',
      answer,
      `webhook: expected a 2xx for the SMS to ${maskPhone(to)}, ` +
        `got ${answer.status}: ${excerpt(answer.text, scrubber(to, [settings.secret]))}`,
      providerCode,
    );
  }

  return { name: 'webhook', send, close: http.close };
}
