/**
 * The SMS module's front door: createSmsProvider picks the adapter the
 * settings name. Callers depend on SmsProvider and SmsProviderError only.
 */
import { createLogProvider } from './log.ts';
import { createTwilioProvider } from './twilio.ts';
import { createWebhookProvider } from './webhook.ts';
import type { SmsLog, SmsProvider, SmsSettings } from './types.ts';

export function createSmsProvider(settings: SmsSettings, deps: { log: SmsLog }): SmsProvider {
  switch (settings.provider) {
    case 'twilio':
      return createTwilioProvider(settings);
    case 'webhook':
      return createWebhookProvider(settings);
    case 'log':
      return createLogProvider(settings, deps.log);
  }
}

export { SmsProviderError, kindForStatus, type SmsErrorKind } from './errors.ts';
export { createLogProvider } from './log.ts';
export { createTwilioProvider } from './twilio.ts';
export { WebhookHeaders, createWebhookProvider, signWebhookBody, verifyWebhookSignature } from './webhook.ts';
export type {
  LogSettings,
  SmsLog,
  SmsProvider,
  SmsProviderName,
  SmsRequest,
  SmsResult,
  SmsSettings,
  TwilioSettings,
  WebhookSettings,
} from './types.ts';
