/**
 * A producer revoking its own message, with or without the SMS fallback.
 * Still queued: taken out of the queue, never sent. Sent: RBM's DELETE
 * decides: 200 revoked (then the SMS if asked), 404 already delivered.
 * Anything else (being sent right now, delivered, failed) cannot be revoked,
 * and the error says which state it is in.
 */
import { DispatchError, ErrorCodes } from '../errors.ts';
import type { Producer } from '../queue/producer.ts';
import type { RbmClient } from '../rbm/client.ts';
import type { MessageState } from '../status/states.ts';
import { newStatusOf, type MessageRef, type StatusPort } from '../status/store.ts';
import { encodeFallback, FALLBACK_FIELD, PHONE_FIELD, type RequestFallback } from './fallback.ts';
import type { DeadlinePort, StoredFallback } from './ports.ts';

export interface RevokeDeps {
  status: StatusPort;
  producer: Pick<Producer, 'takeQueued'>;
  rbm: Pick<RbmClient, 'revokeMessage'>;
  requestFallback: RequestFallback;
  deadlines: Pick<DeadlinePort, 'cancel'>;
}

export interface RevokeResult {
  messageId: string;
  /** The state the message is in after the call. */
  state: MessageState;
  fallback: boolean;
}

export class RevokeError extends DispatchError {
  declare readonly code: typeof ErrorCodes.REVOKE_NOT_POSSIBLE;
  readonly messageId: string;
  readonly state: MessageState | null;
  constructor(messageId: string, state: MessageState | null, why: string) {
    super(ErrorCodes.REVOKE_NOT_POSSIBLE, `cannot revoke message ${messageId}: ${why}`);
    this.name = 'RevokeError';
    this.messageId = messageId;
    this.state = state;
  }
}

export function createRevoke(deps: RevokeDeps) {
  const event = 'REVOKED_BY_PRODUCER';

  async function thenFallback(ref: MessageRef, withFallback: boolean, fallback?: StoredFallback): Promise<RevokeResult> {
    const { messageId } = ref;
    if (!withFallback) return { messageId, state: 'REVOKED', fallback: false };
    const r = await deps.requestFallback({
      messageId,
      agentId: ref.agentId,
      reason: 'REVOKED_BY_PRODUCER',
      event,
      detail: 'revoked by the producer, SMS requested',
      ...(fallback ? { fallback } : {}),
    });
    return { messageId, state: r.outcome === 'FALLBACK_QUEUED' ? 'FALLBACK_QUEUED' : 'REVOKED', fallback: r.outcome === 'FALLBACK_QUEUED' };
  }

  return async function revoke(ref: MessageRef, options: { fallback?: boolean } = {}): Promise<RevokeResult> {
    const { messageId } = ref;
    const withFallback = options.fallback ?? false;
    const current = await deps.status.get(ref);
    const state = current?.state ?? null;

    if (state === null || state === 'QUEUED') {
      const taken = await deps.producer.takeQueued(ref);
      if (taken === null) throw new RevokeError(messageId, state, state === null ? 'no such message' : 'its job is gone');
      if (taken === 'in-flight') throw new RevokeError(messageId, 'SENDING', 'it is being sent right now; try again in a moment');
      const sms = taken.fallback?.sms;
      const fallback = sms ? { agentId: taken.agentId, to: taken.to, text: sms.text, ...(sms.from ? { from: sms.from } : {}) } : undefined;
      await deps.status.transition(ref, 'REVOKED', {
        event,
        detail: 'revoked before it was sent',
        create: newStatusOf(taken),
        fields: { [PHONE_FIELD]: taken.to, ...(fallback ? { [FALLBACK_FIELD]: encodeFallback(fallback) } : {}) },
      });
      return thenFallback(ref, withFallback, fallback);
    }

    if (state !== 'SENT') throw new RevokeError(messageId, state, `it is ${state}`);
    const to = await deps.status.field(ref, PHONE_FIELD);
    if (!to) throw new RevokeError(messageId, state, 'its phone number is not kept with the record');
    const revoked = await deps.rbm.revokeMessage({ agentId: ref.agentId, to, messageId });
    await deps.deadlines.cancel(ref);
    if (!revoked) {
      await deps.status.transition(ref, 'DELIVERED', { event, detail: 'revoke answered 404: already delivered' });
      return { messageId, state: 'DELIVERED', fallback: false };
    }
    const t = await deps.status.transition(ref, 'REVOKED', { event, detail: 'RBM revoked it (200)' });
    if (!t.ok) throw new RevokeError(messageId, t.from, `it moved to ${t.from} meanwhile`);
    return thenFallback(ref, withFallback);
  };
}
