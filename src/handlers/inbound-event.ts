/**
 * inbound-event: one verified webhook payload. DELIVERED and READ move the
 * message there and cancel its local deadline; TTL_EXPIRATION_REVOKED falls
 * back; TTL_EXPIRATION_REVOKE_FAILED follows the policy by traffic type
 * (fall back at once, or revoke and fall back on 200, delivered on 404).
 * An event about a message whose own step is still under way (QUEUED,
 * SENDING, FALLBACK_SENDING) is parked on its record and applied when the
 * message settles, however long that takes; events about unknown messages
 * are counted and dropped. User messages and user events
 * go to consumers, with an optional automatic READ.
 */
import { validate } from '../../jobs/common.ts';
import { inboundEventPayload, serverEventSchema, userEventSchema, userMessageSchema, type InboundEventPayload } from '../../jobs/inbound-event.ts';
import { classify, PayloadError, StatusTransitionError } from '../errors.ts';
import type { RequestFallback } from '../fallback/fallback.ts';
import type { DeadlinePort, InboundConsumerPort } from '../fallback/ports.ts';
import type { RbmClient } from '../rbm/client.ts';
import { isWaiting, type MessageState } from '../status/states.ts';
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

/**
 * The message was waiting when the event came: park the event. Thrown inside the
 * handler, caught by its outer loop, which has the whole event to park.
 */
class MustWait extends Error {
  constructor(readonly messageId: string, readonly eventType: string) {
    super(`message ${messageId} is still being sent: ${eventType} waits for it`);
  }
}

/** A park that finds the message settled (it moved in between) handles the event again, this many times. */
const MAX_REHANDLE = 3;

export function createInboundEventHandler(deps: InboundEventDeps): Handler {
  const { status } = deps;

  /** A refusal means: unknown message (count, drop), waiting (park the event), or already past (kept in the timeline). */
  async function refused(messageId: string, event: string, from: MessageState | null): Promise<Outcome> {
    if (from === null) {
      await deps.count('unknownMessageEvents');
      return { outcome: 'UNKNOWN_MESSAGE', event };
    }
    if (isWaiting(from)) throw new MustWait(messageId, event);
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

  async function handle(event: InboundEventPayload): Promise<Outcome> {
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
  }

  return async (payload): Promise<Outcome> => {
    const checked = validate(inboundEventPayload, payload);
    if (!checked.ok) throw new PayloadError('inbound-event payload', checked.problems);
    const event = checked.value;
    await deps.count('inboundEvents');
    for (let round = 1; ; round++) {
      try {
        return await handle(event);
      } catch (err) {
        if (!(err instanceof MustWait)) throw err;
        const parked = await status.park(err.messageId, err.eventType, event);
        if (parked === 'PARKED') return { outcome: 'PARKED', event: err.eventType };
        // It settled between the refusal and the park: handle the event again; past a few
        // rounds of such luck, the queue's retry takes over (a retry with no budget to run out).
        if (round >= MAX_REHANDLE) throw new StatusTransitionError(err.messageId, parked, err.eventType);
      }
    }
  };
}
