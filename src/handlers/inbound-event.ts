/**
 * inbound-event: one verified webhook payload. DELIVERED and READ move the
 * message there and cancel its local deadline; TTL_EXPIRATION_REVOKED falls
 * back; TTL_EXPIRATION_REVOKE_FAILED follows the policy by traffic type
 * (fall back at once, or revoke and fall back on 200, delivered on 404).
 * Events about a message still being sent wait (retry); events about
 * unknown messages are counted and dropped. User messages and user events
 * go to consumers, with an optional automatic READ.
 */
import { validate } from '../../jobs/common.ts';
import { inboundEventPayload, serverEventSchema, userEventSchema, userMessageSchema, type InboundEventPayload } from '../../jobs/inbound-event.ts';
import { classify, PayloadError, StatusTransitionError } from '../errors.ts';
import type { RequestFallback } from '../fallback/fallback.ts';
import type { DeadlinePort, InboundConsumerPort } from '../fallback/ports.ts';
import type { RbmClient } from '../rbm/client.ts';
import type { MessageState } from '../status/states.ts';
import type { StatusPort } from '../status/store.ts';
import type { Handler, Logger, Outcome } from './types.ts';

export interface InboundEventDeps {
  status: StatusPort;
  requestFallback: RequestFallback;
  deadlines: Pick<DeadlinePort, 'cancel'>;
  rbm: Pick<RbmClient, 'revokeMessage'>;
  consumers: InboundConsumerPort;
  /** Traffic types that fall back at once on TTL_EXPIRATION_REVOKE_FAILED. */
  immediateOnRevokeFailed: readonly string[];
  /** Set to send READ for each incoming user message. */
  markRead?: (to: string, userMessageId: string, agentId: string) => Promise<unknown>;
  count: (name: 'unknownMessageEvents' | 'inboundEvents') => Promise<void>;
  log: Logger;
}

/** States in which our own send is not settled yet: an event about them waits for it. */
const NOT_SETTLED: ReadonlyArray<MessageState | null> = ['QUEUED', 'SENDING', 'FALLBACK_SENDING'];

export function createInboundEventHandler(deps: InboundEventDeps): Handler {
  const { status } = deps;

  /** A refusal means: unknown message (count, drop), not settled yet (retry), or already past (kept in the timeline). */
  async function refused(messageId: string, event: string, from: MessageState | null): Promise<Outcome> {
    if (from === null) {
      await deps.count('unknownMessageEvents');
      return { outcome: 'UNKNOWN_MESSAGE', event };
    }
    if (NOT_SETTLED.includes(from)) throw new StatusTransitionError(messageId, from, event);
    return { outcome: 'NO_CHANGE', event, state: from };
  }

  async function delivery(messageId: string, eventType: 'DELIVERED' | 'READ'): Promise<Outcome> {
    const t = await status.transition(messageId, eventType, { event: eventType });
    if (!t.ok) return refused(messageId, eventType, t.from);
    await deps.deadlines.cancel(messageId);
    return { outcome: eventType };
  }

  async function ttlRevoked(messageId: string): Promise<Outcome> {
    const r = await deps.requestFallback({ messageId, reason: 'TTL_EXPIRATION_REVOKED', event: 'TTL_EXPIRATION_REVOKED', detail: 'RBM revoked the message at its TTL' });
    if (r.outcome === 'REFUSED') return refused(messageId, 'TTL_EXPIRATION_REVOKED', r.state);
    await deps.deadlines.cancel(messageId);
    return r;
  }

  async function ttlRevokeFailed(messageId: string, phone: string, agentId: string): Promise<Outcome> {
    const event = 'TTL_EXPIRATION_REVOKE_FAILED';
    const current = await status.get(messageId);
    if (current?.state !== 'SENT') {
      // Nothing to decide, but the timeline keeps the event (or it waits, or it is unknown).
      const t = await status.transition(messageId, 'EXPIRED', { event, detail: 'revocation at TTL failed' });
      return t.ok ? { outcome: 'EXPIRED' } : refused(messageId, event, t.from);
    }
    const trafficType = current.trafficType ?? 'UNSPECIFIED';
    if (deps.immediateOnRevokeFailed.includes(trafficType)) {
      // Google's advice for time-critical messages: SMS now, even at the risk of a duplicate.
      const r = await deps.requestFallback({ messageId, reason: 'TTL_EXPIRATION_REVOKE_FAILED', event, detail: `${trafficType}: falling back at once` });
      await deps.deadlines.cancel(messageId);
      return r.outcome === 'REFUSED' ? refused(messageId, event, r.state) : r;
    }
    let revoked: boolean;
    try {
      revoked = await deps.rbm.revokeMessage({ agentId, to: phone, messageId });
    } catch (err) {
      if (classify(err, 'revoke') === 'permanent') {
        deps.log.error({ messageId, err: (err as Error).message }, 'revoke after TTL_EXPIRATION_REVOKE_FAILED refused; leaving the message to its local deadline');
        return { outcome: 'REVOKE_REFUSED' };
      }
      throw err;
    }
    await deps.deadlines.cancel(messageId);
    if (!revoked) {
      const t = await status.transition(messageId, 'DELIVERED', { event, detail: 'revoke answered 404: already delivered' });
      return t.ok ? { outcome: 'DELIVERED' } : refused(messageId, event, t.from);
    }
    const r = await deps.requestFallback({ messageId, reason: 'TTL_EXPIRATION_REVOKE_FAILED', event, detail: 'revoked after the failed TTL revocation (200)' });
    return r.outcome === 'REFUSED' ? refused(messageId, event, r.state) : r;
  }

  async function toConsumers(event: InboundEventPayload): Promise<Outcome> {
    await deps.consumers.publish(event);
    if (event.kind === 'userMessage' && deps.markRead) {
      const m = userMessageSchema.parse(event.payload);
      await deps.markRead(m.senderPhoneNumber, m.messageId, event.agentId);
    }
    return { outcome: 'PUBLISHED', kind: event.kind };
  }

  return async (payload): Promise<Outcome> => {
    const checked = validate(inboundEventPayload, payload);
    if (!checked.ok) throw new PayloadError('inbound-event payload', checked.problems);
    const event = checked.value;
    await deps.count('inboundEvents');

    if (event.kind === 'userEvent') {
      const e = validate(userEventSchema, event.payload);
      if (!e.ok) throw new PayloadError('UserEvent', e.problems);
      if (e.value.eventType === 'DELIVERED' || e.value.eventType === 'READ') {
        if (!e.value.messageId) throw new PayloadError('UserEvent', [{ path: 'messageId', problem: `required for ${e.value.eventType}` }]);
        return delivery(e.value.messageId, e.value.eventType);
      }
      return toConsumers(event);
    }
    if (event.kind === 'serverEvent') {
      const e = validate(serverEventSchema, event.payload);
      if (!e.ok) throw new PayloadError('ServerEvent', e.problems);
      if (e.value.eventType === 'TTL_EXPIRATION_REVOKED') return ttlRevoked(e.value.messageId);
      if (e.value.eventType === 'TTL_EXPIRATION_REVOKE_FAILED') return ttlRevokeFailed(e.value.messageId, e.value.phoneNumber, event.agentId);
      return { outcome: 'IGNORED', eventType: e.value.eventType };
    }
    if (event.kind === 'userMessage') {
      const m = validate(userMessageSchema, event.payload);
      if (!m.ok) throw new PayloadError('UserMessage', m.problems);
    }
    return toConsumers(event);
  };
}
