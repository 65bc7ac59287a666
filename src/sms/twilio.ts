/**
 * Twilio's Messages API: POST /2010-04-01/Accounts/{sid}/Messages.json, a form
 * body, HTTP Basic with the account SID and auth token, and the message ID
 * sent as an idempotency token so a retried job does not text twice.
 */
import { maskPhone } from '../mask.ts';
import { SmsProviderError } from './errors.ts';
import { basePath, exchange, excerpt, openPool, parseJson, refusal, requireE164, scrubber } from './http.ts';
import type { SmsProvider, SmsRequest, SmsResult, TwilioSettings } from './types.ts';

/** Twilio's error JSON: https://www.twilio.com/docs/usage/twilios-response */
interface TwilioError {
  code?: number | string;
  message?: string;
  more_info?: string;
  status?: number;
}

export function createTwilioProvider(settings: TwilioSettings): SmsProvider {
  const base = new URL(settings.baseUrl);
  const http = openPool(base.origin, settings.timeoutMs);
  const path = `${basePath(base)}/2010-04-01/Accounts/${encodeURIComponent(settings.accountSid)}/Messages.json`;
  const authorization = `Basic ${Buffer.from(`${settings.accountSid}:${settings.authToken}`).toString('base64')}`;

  async function send(request: SmsRequest): Promise<SmsResult> {
    const to = requireE164('twilio', request.to);
    const from = request.from ?? settings.from;
    if (!from) {
      throw new SmsProviderError({
        provider: 'twilio',
        kind: 'permanent',
        message: `twilio: expected a sender in the fallback's from or in SMS_FROM, got neither; the SMS to ${maskPhone(to)} was not sent`,
      });
    }
    const scrub = scrubber(to, [settings.authToken]);
    const answer = await exchange(
      'twilio',
      http.pool,
      {
        path,
        headers: {
          authorization,
          'content-type': 'application/x-www-form-urlencoded',
          accept: 'application/json',
          // Twilio's own header, and the generic one for proxies and look-alike APIs.
          'I-Twilio-Idempotency-Token': request.idempotencyKey,
          'Idempotency-Key': request.idempotencyKey,
        },
        body: new URLSearchParams({ To: to, From: from, Body: request.text }).toString(),
      },
      to,
    );
    const body = parseJson(answer.text) as ({ sid?: unknown } & TwilioError) | undefined;
    if (answer.status === 200 || answer.status === 201) {
      if (typeof body?.sid === 'string' && body.sid) return { providerMessageId: body.sid, provider: 'twilio' };
      // Accepted or not, we cannot tell: a retry with the same idempotency token is the safe move.
      throw new SmsProviderError({
        provider: 'twilio',
        kind: 'retry',
        status: answer.status,
        message:
          `twilio: expected a JSON body with a sid for the SMS to ${maskPhone(to)}, ` +
          `got ${answer.status}: ${excerpt(answer.text, scrub)}`,
      });
    }
    const providerCode = typeof body?.code === 'number' || typeof body?.code === 'string' ? body.code : undefined;
    const detail = typeof body?.message === 'string' ? scrub(body.message) : excerpt(answer.text, scrub);
    throw refusal(
      'twilio',
      answer,
      `twilio: expected 201 for the SMS to ${maskPhone(to)}, got ${answer.status}` +
        `${providerCode === undefined ? '' : ` (Twilio error ${providerCode})`}: ${detail}`,
      providerCode,
    );
  }

  return { name: 'twilio', send, close: http.close };
}
