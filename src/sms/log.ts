/**
 * The development SMS provider: sends nothing, logs one line per SMS. The
 * text is never logged, only its length: it may be an OTP code.
 */
import { maskPhone } from '../mask.ts';
import type { LogSettings, SmsLog, SmsProvider, SmsRequest, SmsResult } from './types.ts';

export function createLogProvider(settings: LogSettings, log: SmsLog): SmsProvider {
  async function send(request: SmsRequest): Promise<SmsResult> {
    // Never fails, even on a bad payload: a development provider must not turn into a failure source.
    log.info(
      {
        provider: 'log',
        to: typeof request.to === 'string' ? maskPhone(request.to) : '(none)',
        from: request.from ?? settings.from ?? null,
        textLength: typeof request.text === 'string' ? request.text.length : 0,
        idempotencyKey: request.idempotencyKey,
      },
      'sms not sent: SMS_PROVIDER=log',
    );
    return { providerMessageId: `log-${request.idempotencyKey}`, provider: 'log' };
  }

  return { name: 'log', send, close: async () => {} };
}
