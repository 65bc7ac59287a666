/**
 * The SMS provider settings from the service's config. 'emulator' is the
 * Twilio-compatible sink of the built-in RBM emulator, so a first run shows a
 * real SMS request end to end without an account anywhere.
 */
import type { SmsConfig } from '../config.ts';
import type { SmsSettings } from './types.ts';

export function smsSettingsFrom(sms: SmsConfig, emulatorUrl: string | undefined): SmsSettings {
  switch (sms.provider) {
    case 'twilio':
      return { provider: 'twilio', ...sms.twilio, ...(sms.from ? { from: sms.from } : {}), timeoutMs: sms.timeoutMs };
    case 'webhook':
      return { provider: 'webhook', ...sms.webhook, ...(sms.from ? { from: sms.from } : {}), timeoutMs: sms.timeoutMs };
    case 'log':
      return { provider: 'log', ...(sms.from ? { from: sms.from } : {}) };
    case 'emulator':
      if (!emulatorUrl) throw new Error("SMS_PROVIDER 'emulator' needs the built-in emulator running");
      return {
        provider: 'twilio',
        accountSid: 'ACemulator',
        authToken: 'emulator',
        baseUrl: emulatorUrl,
        from: sms.from ?? '+15550000000',
        timeoutMs: sms.timeoutMs,
      };
  }
}
