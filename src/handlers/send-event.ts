/**
 * send-event: a READ receipt or IS_TYPING indicator to RBM with the eventId
 * fixed at enqueue. A typing indicator that waited longer than it would be
 * shown is dropped: sending it would tell the user someone is typing who is not.
 */
import { sendEventPayload } from '../../jobs/send-event.ts';
import { validate } from '../../jobs/common.ts';
import { classify, PayloadError } from '../errors.ts';
import { maskPhone } from '../mask.ts';
import type { RbmClient } from '../rbm/client.ts';
import type { Handler, Logger, Outcome } from './types.ts';

export interface SendEventDeps {
  rbm: Pick<RbmClient, 'createEvent'>;
  log: Logger;
  typingMaxAgeMs: number;
  now?: () => number;
}

export function createSendEventHandler(deps: SendEventDeps): Handler {
  const now = deps.now ?? Date.now;
  return async (payload): Promise<Outcome> => {
    const checked = validate(sendEventPayload, payload);
    if (!checked.ok) throw new PayloadError('send-event payload', checked.problems);
    const p = checked.value;
    if (p.eventType === 'IS_TYPING' && now() - p.enqueuedAt > deps.typingMaxAgeMs) {
      return { outcome: 'DROPPED_STALE', ageMs: now() - p.enqueuedAt };
    }
    try {
      await deps.rbm.createEvent({
        agentId: p.agentId,
        to: p.to,
        eventId: p.eventId,
        body: p.eventType === 'READ' ? { eventType: 'READ', messageId: p.messageId! } : { eventType: 'IS_TYPING' },
      });
    } catch (err) {
      if (classify(err, 'event') === 'notRcs') {
        deps.log.info({ eventId: p.eventId, to: maskPhone(p.to) }, 'event not delivered: phone not reachable over RCS');
        return { outcome: 'NOT_RCS' };
      }
      throw err;
    }
    return { outcome: 'SENT' };
  };
}
