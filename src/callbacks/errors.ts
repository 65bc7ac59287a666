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
    super(ErrorCodes.CALLBACK_DELIVERY, `status callback to ${origin} ${status === undefined ? `got no answer (${detail})` : `answered ${status}`}`, options);
    this.name = 'CallbackDeliveryError';
    this.origin = origin;
    this.status = status;
  }
}
