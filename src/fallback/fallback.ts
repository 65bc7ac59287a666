/**
 * Falling back to SMS, the same way from every trigger (404 at send, TTL
 * revoked, revoke-failed policy, local deadline, producer revoke): one atomic
 * status move to FALLBACK_QUEUED decides, then the SMS job is added under a
 * job ID derived from the messageId. A re-run after a crash finds the record
 * already FALLBACK_QUEUED and adds the job again, which is harmless; the SMS
 * worker claims the record before sending, so a message gets one SMS at most.
 * A message without fallback settings ends EXPIRED instead (or stays NOT_RCS).
 */
import type { FallbackReason } from '../../jobs/send-sms.ts';
import type { MessageState } from '../status/states.ts';
import type { MessageRef, StatusPort, TransitionResult } from '../status/store.ts';
import type { SmsQueuePort, StoredFallback } from './ports.ts';

export const FALLBACK_FIELD = 'fb';
/** The full E.164 number, kept for revoke (the shown `to` is masked). */
export const PHONE_FIELD = 'e164';

export interface FallbackDeps {
  status: StatusPort;
  sms: SmsQueuePort;
  now?: () => number;
}

export interface FallbackRequest extends MessageRef {
  reason: FallbackReason;
  /** The webhook event or trigger that caused it, for the timeline. */
  event: string;
  detail?: string;
  /** Known already (the dispatch handler has the payload); read from the record otherwise. */
  fallback?: StoredFallback;
}

export type FallbackOutcome =
  | { outcome: 'FALLBACK_QUEUED' }
  | { outcome: 'EXPIRED' }
  | { outcome: 'NO_FALLBACK'; state: MessageState | null }
  | { outcome: 'REFUSED'; state: MessageState | null };

export function encodeFallback(fallback: StoredFallback): string {
  return JSON.stringify(fallback);
}

export function createFallback(deps: FallbackDeps) {
  const now = deps.now ?? Date.now;

  async function stored(ref: MessageRef): Promise<StoredFallback | undefined> {
    const raw = await deps.status.field(ref, FALLBACK_FIELD);
    return raw ? (JSON.parse(raw) as StoredFallback) : undefined;
  }

  return async function requestFallback(req: FallbackRequest): Promise<FallbackOutcome> {
    const fallback = req.fallback ?? (await stored(req));
    const detail = req.detail ?? `fallback: ${req.reason}`;
    if (!fallback) {
      // Nothing to fall back to: an expiry ends the message; a 404 leaves it NOT_RCS.
      if (req.reason === 'NOT_RCS') return { outcome: 'NO_FALLBACK', state: 'NOT_RCS' };
      const t: TransitionResult = await deps.status.transition(req, 'EXPIRED', { event: req.event, detail });
      return t.ok ? { outcome: 'EXPIRED' } : { outcome: 'REFUSED', state: t.from };
    }
    const t = await deps.status.transition(req, 'FALLBACK_QUEUED', { event: req.event, detail, count: `fallback|${req.reason}` });
    if (!t.ok && t.from !== 'FALLBACK_QUEUED') return { outcome: 'REFUSED', state: t.from };
    await deps.sms.enqueue({
      messageId: req.messageId,
      agentId: req.agentId,
      to: fallback.to,
      text: fallback.text,
      ...(fallback.from ? { from: fallback.from } : {}),
      reason: req.reason,
      queuedAt: now(),
    });
    return { outcome: 'FALLBACK_QUEUED' };
  };
}

export type RequestFallback = ReturnType<typeof createFallback>;
