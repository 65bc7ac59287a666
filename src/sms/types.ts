/**
 * The SMS port: one small interface every provider adapter implements, and
 * the settings that choose and configure an adapter. The SMS fallback worker
 * sees only SmsProvider; which provider runs is a deployment choice.
 */

export interface SmsRequest {
  /** E.164, with the leading '+'. */
  to: string;
  text: string;
  /** Sender; falls back to the provider's configured default. */
  from?: string;
  /** Stable per logical SMS (we pass the RBM messageId): providers that honour it make a retry safe. */
  idempotencyKey: string;
}

export interface SmsResult {
  providerMessageId: string;
  provider: string;
}

export interface SmsProvider {
  readonly name: 'twilio' | 'webhook' | 'log';
  /** Resolves once the provider accepted the SMS; rejects with SmsProviderError only. */
  send(request: SmsRequest): Promise<SmsResult>;
  /** Closes kept-alive sockets; safe to call more than once. */
  close(): Promise<void>;
}

export type SmsProviderName = SmsProvider['name'];

export type SmsSettings =
  | { provider: 'twilio'; accountSid: string; authToken: string; baseUrl: string; from?: string; timeoutMs: number }
  | { provider: 'webhook'; url: string; secret: string; from?: string; timeoutMs: number }
  | { provider: 'log'; from?: string };

export type TwilioSettings = Extract<SmsSettings, { provider: 'twilio' }>;
export type WebhookSettings = Extract<SmsSettings, { provider: 'webhook' }>;
export type LogSettings = Extract<SmsSettings, { provider: 'log' }>;

/** The one logger method the SMS module needs; pino's Logger fits. */
export interface SmsLog {
  info(obj: object, msg?: string): void;
}
