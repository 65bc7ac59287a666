/**
 * A status callback that did not get a 2xx. Always retried on the callback
 * schedule: a receiver that is down, slow or answering 429 must not pause the
 * callbacks of every other receiver, which a queue-wide rate limit would.
 * Only the URL's origin is kept: a path or query may carry the receiver's token.
 */
import { DispatchError, ErrorCodes } from '../errors.ts';

export class CallbackDeliveryError extends DispatchError {
  readonly kind = 'retry' as const;
  readonly origin: string;
  /** The receiver's answer; undefined when none came (refused, reset, timeout). */
  readonly status: number | undefined;
  constructor(origin: string, status: number | undefined, detail: string, options?: { cause?: unknown }) {
    super(
      ErrorCodes.CALLBACK_DELIVERY,
      `status callback to ${origin} ${status === undefined ? `got no answer (${detail})` : `answered ${status}`}`,
      options,
    );
    this.name = 'CallbackDeliveryError';
    this.origin = origin;
    this.status = status;
  }
}

/**
 * A delivery that made no call: its receiver's breaker is open, or its calls
 * in flight are at the cap (receivers.ts). Put back without using an attempt
 * (`defer`), until `retryAfterMs` at the latest; a wake-up may come sooner.
 */
export class CallbackParkedError extends DispatchError {
  readonly kind = 'defer' as const;
  constructor(
    readonly origin: string,
    readonly reason: 'open' | 'busy',
    readonly retryAfterMs: number,
  ) {
    super(
      ErrorCodes.CALLBACK_PARKED,
      `status callback to ${origin} parked for up to ${retryAfterMs} ms: ` +
        (reason === 'open' ? 'its receiver is failing (breaker open)' : 'its receiver has as many calls in flight as it may'),
    );
    this.name = 'CallbackParkedError';
  }
}

/**
 * A delivery whose receiver kept failing until the retry horizon
 * (CALLBACK_RETRY_FOR_MS since it was queued) passed while it was parked:
 * failed for good, as after its last attempt; replay sends it again.
 */
export class CallbackExpiredError extends DispatchError {
  readonly kind = 'permanent' as const;
  constructor(
    readonly origin: string,
    readonly lastFailure: string,
  ) {
    super(
      ErrorCodes.CALLBACK_EXPIRED,
      `status callback to ${origin} not delivered within the retry horizon: ` +
        `its receiver kept failing${lastFailure ? ` (last: ${lastFailure})` : ''}`,
    );
    this.name = 'CallbackExpiredError';
  }
}
