/**
 * The SMS module's front door: createSmsProvider picks the adapter the
 * settings name. Callers depend on SmsProvider and SmsProviderError only.
 */
import type { EgressGuard } from '../egress/guard.ts';
import { createLogProvider } from './log.ts';
import { createTwilioProvider } from './twilio.ts';
import { createWebhookProvider } from './webhook.ts';
import type { SmsLog, SmsProvider, SmsSettings } from './types.ts';

/** `egress`: where the webhook adapter may connect; without one, only public addresses. */
export function createSmsProvider(settings: SmsSettings, deps: { log: SmsLog; egress?: EgressGuard }): SmsProvider {
  switch (settings.provider) {
    case 'twilio':
      return createTwilioProvider(settings);
    case 'webhook':
      return createWebhookProvider(settings, deps.egress);
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
