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
 */
import { Webhook } from 'standardwebhooks';
import { callbackWebhookId, deliverCallbackPayload, STATUS_CHANGED } from '../../jobs/deliver-callback.ts';
import { validate } from '../../jobs/common.ts';
import { CallbackDeliveryError } from '../callbacks/errors.ts';
import { PayloadError, UrlForbiddenError } from '../errors.ts';
import { isFinalAttempt, type Handler, type Logger, type Outcome } from './types.ts';

export interface CallbackPost {
  (url: string, body: string, headers: Record<string, string>): Promise<number>;
}

export interface DeliverCallbackDeps {
  /** The Standard Webhooks secret of a scope (see src/callbacks/secrets.ts). */
  secretFor: (scope: string) => string;
  /** Sends the request; resolves with the status, rejects when no answer came. */
  post: CallbackPost;
  /** Counts delivered, retried and failed callbacks. */
  count: (outcome: 'delivered' | 'retried' | 'failed') => Promise<void>;
  log: Logger;
  now?: () => number;
}

export function createDeliverCallbackHandler(deps: DeliverCallbackDeps): Handler {
  const now = deps.now ?? Date.now;
  const signers = new Map<string, Webhook>();
  const signer = (scope: string) => {
    let s = signers.get(scope);
    if (!s) signers.set(scope, (s = new Webhook(deps.secretFor(scope))));
    return s;
  };
  return async (payload, ctx): Promise<Outcome> => {
    const checked = validate(deliverCallbackPayload, payload);
    if (!checked.ok) throw new PayloadError('deliver-callback payload', checked.problems);
    const { url, scope, data } = checked.value;
    const id = callbackWebhookId(data);
    const body = JSON.stringify({ type: STATUS_CHANGED, timestamp: new Date(data.at).toISOString(), data });
    const sentAt = new Date(now());
    const headers = {
      'content-type': 'application/json',
      'webhook-id': id,
      'webhook-timestamp': String(Math.floor(sentAt.getTime() / 1000)),
      'webhook-signature': signer(scope).sign(id, sentAt, body),
    };
    // Only the origin is logged: a path or query may carry the receiver's token.
    const origin = new URL(url).origin;
    let status: number | undefined;
    let noAnswer = '';
    try {
      status = await deps.post(url, body, headers);
    } catch (err) {
      if (err instanceof UrlForbiddenError) {
        await deps.count('failed');
        deps.log.error({ webhookId: id, origin, reason: err.reason }, 'status callback refused for good: its URL leads to an address callbacks may not reach (CALLBACK_ALLOW_HOSTS opens private hosts)');
        throw err;
      }
      noAnswer = (err as Error).message;
    }
    if (status !== undefined && status >= 200 && status <= 299) {
      await deps.count('delivered');
      return { outcome: 'DELIVERED', status };
    }
    const final = isFinalAttempt(ctx);
    await deps.count(final ? 'failed' : 'retried');
    const entry = { webhookId: id, origin, status, attempt: ctx.attempt, of: ctx.maxAttempts };
    if (final) deps.log.error(entry, 'status callback failed for good; replay it with POST /v1/messages/:id/callbacks:replay');
    else deps.log.warn(entry, 'status callback failed, will retry');
    throw new CallbackDeliveryError(origin, status, noAnswer);
  };
}
