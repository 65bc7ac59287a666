/**
 * deliver-callback: POSTs one status change to the producer's callback URL,
 * signed per Standard Webhooks with the `standardwebhooks` package:
 *   webhook-id         the change's own ID (same on every retry and replay)
 *   webhook-timestamp  this attempt's time, in seconds (receivers refuse old ones)
 *   webhook-signature  v1,<base64 HMAC-SHA256 of "id.timestamp.body">
 * Body: {"type":"message.status_changed","timestamp":<ISO time of the change>,"data":{...}}.
 * A 2xx is success; anything else, or no answer, is retried on the callback
 * schedule (CallbackDeliveryError). A URL the egress guard refuses at connect
 * (UrlForbiddenError: it leads to a private, loopback or metadata address)
 * fails for good at once: every retry would lead to the same place.
 * Before the call, the receiver (the URL's origin) must admit it: a receiver
 * whose breaker is open, or with as many calls in flight as it may, gets no
 * call and the delivery is parked without using an attempt
 * (CallbackParkedError); one parked past the retry horizon fails for good
 * (CallbackExpiredError). See src/callbacks/receivers.ts.
 */
import { Webhook } from 'standardwebhooks';
import { callbackWebhookId, deliverCallbackPayload, STATUS_CHANGED } from '../../jobs/deliver-callback.ts';
import { validate } from '../../jobs/common.ts';
import { CallbackDeliveryError, CallbackExpiredError, CallbackParkedError } from '../callbacks/errors.ts';
import type { CallResult, ReceiverPort } from '../callbacks/receivers.ts';
import { PayloadError, UrlForbiddenError } from '../errors.ts';
import { isFinalAttempt, type Handler, type Logger, type Outcome } from './types.ts';

export type CallbackPost = (url: string, body: string, headers: Record<string, string>) => Promise<number>;

export interface DeliverCallbackDeps {
  /** The Standard Webhooks secret of a scope (see src/callbacks/secrets.ts). */
  secretFor: (scope: string) => string;
  /** Sends the request; resolves with the status, rejects when no answer came. */
  post: CallbackPost;
  /** Counts delivered, retried and failed callbacks. */
  count: (outcome: 'delivered' | 'retried' | 'failed') => Promise<void>;
  /** Per-receiver fairness: in-flight cap and breaker. */
  receivers: ReceiverPort;
  /** CALLBACK_RETRY_FOR_MS: a delivery still parked this long after it was queued fails for good. */
  retryForMs: number;
  log: Logger;
  now?: () => number;
}

export function createDeliverCallbackHandler(deps: DeliverCallbackDeps): Handler {
  const now = deps.now ?? Date.now;
  const signers = new Map<string, Webhook>();
  const signer = (scope: string) => {
    let s = signers.get(scope);
    if (!s) {
      s = new Webhook(deps.secretFor(scope));
      signers.set(scope, s);
    }
    return s;
  };
  // The call is made: its outcome stands even if Redis cannot take the report
  // (the slot's lease runs out by itself), so a delivered callback is not sent again for that.
  const settle = async (origin: string, jobId: string, result: CallResult) => {
    try {
      await deps.receivers.report(origin, jobId, result);
    } catch (err) {
      deps.log.warn({ origin, err: (err as Error).message }, "could not report a callback call to its receiver's state");
    }
  };
  return async (payload, ctx): Promise<Outcome> => {
    const checked = validate(deliverCallbackPayload, payload);
    if (!checked.ok) throw new PayloadError('deliver-callback payload', checked.problems);
    const { url, scope, data } = checked.value;
    const id = callbackWebhookId(data);
    const origin = new URL(url).origin;
    const admission = await deps.receivers.admit(origin, ctx.jobId);
    if (admission.verdict === 'busy') throw new CallbackParkedError(origin, 'busy', Math.max(1, admission.untilMs - now()));
    if (admission.verdict === 'open') {
      // Counted from when it was queued: a parked delivery uses no attempts, so they cannot end it.
      const horizon = (ctx.queuedAt ?? now()) + deps.retryForMs;
      if (now() >= horizon) {
        await deps.receivers.forget(origin, ctx.jobId);
        await deps.count('failed');
        deps.log.error(
          { webhookId: id, origin, last: admission.lastFailure },
          'status callback failed for good (its receiver kept failing); replay it with POST /v1/messages/:id/callbacks:replay',
        );
        throw new CallbackExpiredError(origin, admission.lastFailure);
      }
      throw new CallbackParkedError(origin, 'open', Math.max(1, Math.min(admission.untilMs, horizon) - now()));
    }
    const body = JSON.stringify({ type: STATUS_CHANGED, timestamp: new Date(data.at).toISOString(), data });
    const sentAt = new Date(now());
    const headers = {
      'content-type': 'application/json',
      'webhook-id': id,
      'webhook-timestamp': String(Math.floor(sentAt.getTime() / 1000)),
      'webhook-signature': signer(scope).sign(id, sentAt, body),
    };
    // Only the origin is logged: a path or query may carry the receiver's token.
    let status: number | undefined;
    let noAnswer = '';
    try {
      status = await deps.post(url, body, headers);
    } catch (err) {
      if (err instanceof UrlForbiddenError) {
        // The slot it held goes back; nothing will be tried again.
        await settle(origin, ctx.jobId, {
          ok: false,
          probe: admission.verdict === 'probe',
          done: true,
          failure: 'refused: forbidden address',
        });
        await deps.count('failed');
        deps.log.error(
          { webhookId: id, origin, reason: err.reason },
          'status callback refused for good: its URL leads to an address callbacks may not reach ' +
            '(CALLBACK_ALLOW_HOSTS opens private hosts)',
        );
        throw err;
      }
      noAnswer = (err as Error).message;
    }
    const probe = admission.verdict === 'probe';
    if (status !== undefined && status >= 200 && status <= 299) {
      await settle(origin, ctx.jobId, { ok: true, probe, done: true });
      await deps.count('delivered');
      return { outcome: 'DELIVERED', status };
    }
    const final = isFinalAttempt(ctx);
    await settle(origin, ctx.jobId, {
      ok: false,
      probe,
      done: final,
      failure: status === undefined ? `no answer (${noAnswer})` : `answered ${status}`,
    });
    await deps.count(final ? 'failed' : 'retried');
    const entry = { webhookId: id, origin, status, attempt: ctx.attempt, of: ctx.maxAttempts };
    if (final) deps.log.error(entry, 'status callback failed for good; replay it with POST /v1/messages/:id/callbacks:replay');
    else deps.log.warn(entry, 'status callback failed, will retry');
    throw new CallbackDeliveryError(origin, status, noAnswer);
  };
}
