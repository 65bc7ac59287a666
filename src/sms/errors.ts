/**
 * The one error an SMS adapter throws. Its `kind` is decided in the adapter,
 * where the provider's answer is understood, so whoever runs the SMS job acts
 * on `kind` and never re-reads HTTP statuses.
 */
import { DispatchError, ErrorCodes } from '../errors.ts';
import type { SmsProviderName } from './types.ts';

/**
 * retry        no answer, a timeout, 408 or 5xx: the same request may succeed later
 *              (the idempotency key keeps a repeat from sending twice where honoured)
 * rateLimited  429: wait `retryAfterMs` (when the provider said) before the next try
 * permanent    any other refusal, or a request we refused before sending it
 */
export type SmsErrorKind = 'retry' | 'permanent' | 'rateLimited';

export interface SmsProviderErrorFields {
  provider: SmsProviderName;
  kind: SmsErrorKind;
  /** Already masked: no full phone number, no token, no secret. */
  message: string;
  status?: number | undefined;
  providerCode?: string | number | undefined;
  retryAfterMs?: number | undefined;
}

export class SmsProviderError extends DispatchError {
  declare readonly code: typeof ErrorCodes.SMS_PROVIDER;
  readonly provider: SmsProviderName;
  readonly kind: SmsErrorKind;
  /** HTTP status of the provider's answer; undefined when there was none. */
  readonly status: number | undefined;
  /** The provider's own error code, e.g. Twilio's 21211. */
  readonly providerCode: string | number | undefined;
  readonly retryAfterMs: number | undefined;

  constructor(fields: SmsProviderErrorFields, options?: { cause?: unknown }) {
    super(ErrorCodes.SMS_PROVIDER, fields.message, options);
    this.name = 'SmsProviderError';
    this.provider = fields.provider;
    this.kind = fields.kind;
    this.status = fields.status;
    this.providerCode = fields.providerCode;
    this.retryAfterMs = fields.retryAfterMs;
  }
}

/** The kind of a non-success HTTP answer. */
export function kindForStatus(status: number): SmsErrorKind {
  if (status === 429) return 'rateLimited';
  if (status === 408 || status >= 500) return 'retry';
  return 'permanent';
}
