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
 *
 * An event is bound to the agent whose client token verified it: it names a
 * message in that agent's namespace only (a message ID of another agent is
 * simply not found there, and is counted as agentMismatch), and it moves the
 * message only when its phone number is the message's (phoneMismatch
 * otherwise). Either way it is acknowledged and changes nothing.
 *
 * A message whose record left Redis after the hot window (history/evictor.ts)
 * has a tombstone: a late DELIVERED or READ moves it and reaches the archive
 * once; any other event about it changes nothing (NO_CHANGE, not kept).
 */
import { validate } from '../../jobs/common.ts';
import {
  inboundEventPayload,
  serverEventSchema,
  userEventSchema,
  userMessageSchema,
  type InboundEventPayload,
} from '../../jobs/inbound-event.ts';
import { classify, PayloadError, StatusTransitionError } from '../errors.ts';
import type { RequestFallback } from '../fallback/fallback.ts';
import type { DeadlinePort, InboundConsumerPort } from '../fallback/ports.ts';
import type { RbmClient } from '../rbm/client.ts';
import { PHONE_FIELD } from '../fallback/fallback.ts';
import { maskPhone } from '../mask.ts';
import { isWaiting, type MessageState } from '../status/states.ts';
import type { MessageRef, StatusPort } from '../status/store.ts';
import type { Tombstones } from '../status/tombstones.ts';
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
  count: (name: 'unknownMessageEvents' | 'inboundEvents' | 'agentMismatch' | 'phoneMismatch') => Promise<void>;
  /** Whether an agent other than this one holds a message with this ID (for the agentMismatch count only). */
  heldByOtherAgent?: (ref: MessageRef) => Promise<boolean>;
  /** The tombstones of messages that left Redis; without, an event about such a message counts as unknown. */
  tombstones?: Pick<Tombstones, 'apply'>;
  log: Logger;
}

/**
 * The message was waiting when the event came: park the event. Thrown inside the
 * handler, caught by its outer loop, which has the whole event to park.
 */
class MustWait extends Error {
  constructor(
    readonly ref: MessageRef,
    readonly eventType: string,
  ) {
    super(`message ${ref.messageId} is still being sent: ${eventType} waits for it`);
  }
}

/** How often a mismatch is logged at most: a forger's storm must not become a log storm. */
const MISMATCH_LOG_EVERY_MS = 10_000;

/** A park that finds the message settled (it moved in between) handles the event again, this many times. */
const MAX_REHANDLE = 3;

export function createInboundEventHandler(deps: InboundEventDeps): Handler {
  const { status } = deps;
  const lastLogged = new Map<string, number>();

  /** A refusal means: unknown message (count, drop), waiting (park the event), or already past (kept in the timeline). */
  async function refused(ref: MessageRef, event: string, from: MessageState | null): Promise<Outcome> {
    if (from === null) {
      await deps.count('unknownMessageEvents');
      return { outcome: 'UNKNOWN_MESSAGE', event };
    }
    if (isWaiting(from)) throw new MustWait(ref, event);
    return { outcome: 'NO_CHANGE', event, state: from };
  }

  function logMismatch(kind: string, fields: object): void {
    const at = Date.now();
    if (at - (lastLogged.get(kind) ?? 0) < MISMATCH_LOG_EVERY_MS) return;
    lastLogged.set(kind, at);
    deps.log.warn(
      fields,
      `webhook event ignored: ${kind} ` +
        `(further ones are counted in rbm_inbound_events_total, logged at most every ${MISMATCH_LOG_EVERY_MS / 1000} s)`,
    );
  }

  function phoneMismatch(ref: MessageRef, event: string, phone: string, expected: string | null | undefined): Promise<Outcome> {
    logMismatch('phoneMismatch', { agentId: ref.agentId, messageId: ref.messageId, event, phone: maskPhone(phone), expected });
    return deps.count('phoneMismatch').then(() => ({ outcome: 'PHONE_MISMATCH', event }));
  }

  /** An event about a message that left Redis: its tombstone's answer, or null when it has none either. */
  async function late(ref: MessageRef, phone: string, event: string): Promise<Outcome | null> {
    if (!deps.tombstones) return null;
    const moveTo = event === 'DELIVERED' || event === 'READ' ? event : null;
    const t = await deps.tombstones.apply(ref, phone, event, moveTo);
    if (!t.found) return null;
    if (!t.phoneMatches) return phoneMismatch(ref, event, phone, null);
    return t.moved ? { outcome: event, late: true } : { outcome: 'NO_CHANGE', event, state: t.state, late: true };
  }

  /**
   * Whether the event may touch the message: it exists in the verifying agent's
   * namespace and the event's phone is the message's. The full number is kept
   * once the message is being sent; before that only its masked form is. A
   * message that left Redis answers here, from its tombstone (late()).
   */
  async function bound(ref: MessageRef, phone: string, event: string): Promise<Outcome | null> {
    const [state, e164, masked] = await status.fields(ref, ['state', PHONE_FIELD, 'to']);
    if (state === null) {
      const settled = await late(ref, phone, event);
      if (settled) return settled;
      if (deps.heldByOtherAgent && (await deps.heldByOtherAgent(ref))) {
        await deps.count('agentMismatch');
        logMismatch('agentMismatch', { agentId: ref.agentId, messageId: ref.messageId, event });
        return { outcome: 'AGENT_MISMATCH', event };
      }
      return refused(ref, event, null);
    }
    const same = e164 !== null ? e164 === phone : masked === maskPhone(phone);
    if (same) return null;
    return phoneMismatch(ref, event, phone, masked);
  }

  async function delivery(ref: MessageRef, eventType: 'DELIVERED' | 'READ', phone: string): Promise<Outcome> {
    const t = await status.transition(ref, eventType, { event: eventType });
    // No record: it left Redis since bound() read it (the evictor); its tombstone takes the news.
    if (!t.ok && t.from === null) return (await late(ref, phone, eventType)) ?? refused(ref, eventType, null);
    if (!t.ok) return refused(ref, eventType, t.from);
    await deps.deadlines.cancel(ref);
    return { outcome: eventType };
  }

  async function ttlRevoked(ref: MessageRef): Promise<Outcome> {
    const r = await deps.requestFallback({
      ...ref,
      reason: 'TTL_EXPIRATION_REVOKED',
      event: 'TTL_EXPIRATION_REVOKED',
      detail: 'RBM revoked the message at its TTL',
    });
    if (r.outcome === 'REFUSED') return refused(ref, 'TTL_EXPIRATION_REVOKED', r.state);
    await deps.deadlines.cancel(ref);
    return r;
  }

  async function ttlRevokeFailed(ref: MessageRef, phone: string): Promise<Outcome> {
    const event = 'TTL_EXPIRATION_REVOKE_FAILED';
    const current = await status.get(ref);
    if (current?.state !== 'SENT') {
      // Nothing to decide, but the timeline keeps the event (or it waits, or it is unknown).
      const t = await status.transition(ref, 'EXPIRED', { event, detail: 'revocation at TTL failed' });
      return t.ok ? { outcome: 'EXPIRED' } : refused(ref, event, t.from);
    }
    const trafficType = current.trafficType ?? 'UNSPECIFIED';
    if (deps.immediateOnRevokeFailed.includes(trafficType)) {
      // Google's advice for time-critical messages: SMS now, even at the risk of a duplicate.
      const r = await deps.requestFallback({
        ...ref,
        reason: 'TTL_EXPIRATION_REVOKE_FAILED',
        event,
        detail: `${trafficType}: falling back at once`,
      });
      await deps.deadlines.cancel(ref);
      return r.outcome === 'REFUSED' ? refused(ref, event, r.state) : r;
    }
    let revoked: boolean;
    try {
      revoked = await deps.rbm.revokeMessage({ agentId: ref.agentId, to: phone, messageId: ref.messageId });
    } catch (err) {
      if (classify(err, 'revoke') === 'permanent') {
        deps.log.error(
          { messageId: ref.messageId, err: (err as Error).message },
          'revoke after TTL_EXPIRATION_REVOKE_FAILED refused; leaving the message to its local deadline',
        );
        return { outcome: 'REVOKE_REFUSED' };
      }
      throw err;
    }
    await deps.deadlines.cancel(ref);
    if (!revoked) {
      const t = await status.transition(ref, 'DELIVERED', { event, detail: 'revoke answered 404: already delivered' });
      return t.ok ? { outcome: 'DELIVERED' } : refused(ref, event, t.from);
    }
    const r = await deps.requestFallback({
      ...ref,
      reason: 'TTL_EXPIRATION_REVOKE_FAILED',
      event,
      detail: 'revoked after the failed TTL revocation (200)',
    });
    return r.outcome === 'REFUSED' ? refused(ref, event, r.state) : r;
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
        const ref = { agentId: event.agentId, messageId: e.value.messageId };
        const phone = e.value.senderPhoneNumber;
        return (await bound(ref, phone, e.value.eventType)) ?? delivery(ref, e.value.eventType, phone);
      }
      return toConsumers(event);
    }
    if (event.kind === 'serverEvent') {
      const e = validate(serverEventSchema, event.payload);
      if (!e.ok) throw new PayloadError('ServerEvent', e.problems);
      if (e.value.eventType === 'EVENT_TYPE_UNSPECIFIED') return { outcome: 'IGNORED', eventType: e.value.eventType };
      const ref = { agentId: event.agentId, messageId: e.value.messageId };
      const mismatch = await bound(ref, e.value.phoneNumber, e.value.eventType);
      if (mismatch) return mismatch;
      if (e.value.eventType === 'TTL_EXPIRATION_REVOKED') return ttlRevoked(ref);
      return ttlRevokeFailed(ref, e.value.phoneNumber);
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
        const parked = await status.park(err.ref, err.eventType, event);
        if (parked === 'PARKED') return { outcome: 'PARKED', event: err.eventType };
        // It settled between the refusal and the park: handle the event again; past a few
        // rounds of such luck, the queue's retry takes over (a retry with no budget to run out).
        if (round >= MAX_REHANDLE) throw new StatusTransitionError(err.ref.messageId, parked, err.eventType);
      }
    }
  };
}
