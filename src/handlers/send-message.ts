/**
 * send-message: one AgentMessage to RBM. The messageId was fixed at enqueue and
 * is reused on every attempt, so RBM drops a resend. The status record moves
 * QUEUED → SENDING → SENT | NOT_RCS | FAILED (created by the first move when
 * the producer wrote none); a job whose record is already past SENDING is a
 * duplicate and sends nothing. A message with a TTL gets its local deadline
 * when SENT; one that cannot be delivered over RCS falls back to SMS.
 */
import { sendMessagePayload, type SendMessagePayload } from '../../jobs/send-message.ts';
import { validate } from '../../jobs/common.ts';
import { classify, ErrorCodes, PayloadError, type DispatchError } from '../errors.ts';
import { encodeFallback, FALLBACK_FIELD, PHONE_FIELD, type RequestFallback } from '../fallback/fallback.ts';
import type { DeadlinePort, StoredFallback } from '../fallback/ports.ts';
import { maskPhone } from '../mask.ts';
import type { RbmClient } from '../rbm/client.ts';
import type { AgentMessageBody } from '../rbm/types.ts';
import { newStatusOf, type StatusPort } from '../status/store.ts';
import { isFinalAttempt, type Handler, type Logger, type Outcome } from './types.ts';

export interface SendMessageDeps {
  rbm: Pick<RbmClient, 'createMessage' | 'ready'>;
  status: StatusPort;
  requestFallback: RequestFallback;
  deadlines: DeadlinePort;
  /** The local deadline is expireTime + graceMs. */
  graceMs: number;
  log: Logger;
  now?: () => number;
}

/**
 * The body RBM gets. A ttl counts from the producer's request, not from the
 * moment a worker picks the job: an OTP queued 20 s behind a backlog with
 * ttl 60s is sent with ttl ≈ 40s, so it still expires when the caller expects.
 */
export function wireBody(p: SendMessagePayload, now: number): AgentMessageBody {
  const { ttl, ...rest } = p.message as AgentMessageBody;
  if (ttl === undefined || p.expireAt === undefined) return p.message as AgentMessageBody;
  const remainingMs = Math.max(1, p.expireAt - now);
  return { ...rest, ttl: `${(remainingMs / 1000).toFixed(3)}s` };
}

function errorOf(err: unknown): { code: string; message: string } {
  const e = err as Partial<DispatchError>;
  return { code: e.code ?? ErrorCodes.UNKNOWN, message: String(e.message ?? err).slice(0, 500) };
}

function fallbackOf(p: SendMessagePayload): StoredFallback | undefined {
  const sms = p.fallback?.sms;
  return sms ? { agentId: p.agentId, to: p.to, text: sms.text, ...(sms.from ? { from: sms.from } : {}) } : undefined;
}

export function createSendMessageHandler(deps: SendMessageDeps): Handler {
  const now = deps.now ?? Date.now;
  const { status, rbm, log } = deps;

  return async (payload, ctx): Promise<Outcome> => {
    const checked = validate(sendMessagePayload, payload);
    if (!checked.ok) {
      const { messageId, agentId } = (payload ?? {}) as { messageId?: unknown; agentId?: unknown };
      const error = new PayloadError('send-message payload', checked.problems);
      if (typeof messageId === 'string' && typeof agentId === 'string')
        await status.transition({ agentId, messageId }, 'FAILED', { error: errorOf(error) });
      throw error;
    }
    const p = checked.value;
    const id = p.messageId;
    const fallback = fallbackOf(p);
    // The record to create if this message has none yet (it was enqueued with a fresh ID).
    const create = newStatusOf(p);

    if (p.expireAt !== undefined && p.expireAt <= now()) {
      // Too late for RCS before it was even sent: SMS now, if the message has one.
      await status.transition(p, 'EXPIRED', {
        create,
        event: 'EXPIRED_IN_QUEUE',
        detail: 'the TTL passed before the message could be sent',
      });
      if (fallback)
        await deps.requestFallback({ messageId: id, agentId: p.agentId, reason: 'DEADLINE', event: 'EXPIRED_IN_QUEUE', fallback });
      return { outcome: 'EXPIRED' };
    }

    // No token yet (the token endpoint is down): the job waits without a try, a SENDING entry or an attempt.
    // Any other failure to get one (the key refused) is this try's outcome, recorded below.
    let notReady: unknown;
    try {
      await rbm.ready();
    } catch (err) {
      if (classify(err, 'send') === 'defer') throw err;
      notReady = err;
    }

    const start = await status.transition(p, 'SENDING', {
      create,
      ...(ctx.attempt > 1 ? { detail: `attempt ${ctx.attempt}` } : {}),
      // Kept with the record (never shown by getStatus): a later revoke needs the
      // number, a TTL event or deadline needs the SMS.
      fields: { [PHONE_FIELD]: p.to, ...(fallback ? { [FALLBACK_FIELD]: encodeFallback(fallback) } : {}) },
    });
    if (!start.ok) {
      // Another job for this ID already got past sending: nothing to do.
      return { outcome: 'DUPLICATE', state: start.from };
    }

    try {
      if (notReady !== undefined) throw notReady;
      await rbm.createMessage({ agentId: p.agentId, to: p.to, messageId: id, body: wireBody(p, now()) });
    } catch (err) {
      const kind = classify(err, 'send');
      if (kind === 'notRcs') {
        await status.transition(p, 'NOT_RCS', { countAttempt: true, detail: 'RBM answered 404: not reachable over RCS' });
        if (fallback) await deps.requestFallback({ messageId: id, agentId: p.agentId, reason: 'NOT_RCS', event: 'NOT_RCS', fallback });
        return { outcome: 'NOT_RCS', fallback: fallback !== undefined };
      }
      // Not an attempt: the runner pauses the agent's queue (429), or waits for a token (defer).
      if (kind === 'rateLimited' || kind === 'defer') throw err;
      const error = errorOf(err);
      const final = kind === 'permanent' || isFinalAttempt(ctx);
      await status.transition(p, final ? 'FAILED' : 'SENDING', { countAttempt: true, error });
      log[final ? 'error' : 'warn'](
        { messageId: id, to: maskPhone(p.to), attempt: ctx.attempt, ...error },
        final ? 'message failed' : 'send failed, will retry',
      );
      throw err;
    }
    const sent = await status.transition(p, 'SENT', { countAttempt: true });
    // A DELIVERED that came while we were sending was applied in the same step: no deadline then.
    if (sent.ok && sent.state === 'SENT' && p.expireAt !== undefined) {
      await deps.deadlines.schedule({ messageId: id, agentId: p.agentId, to: p.to, expireAt: p.expireAt }, p.expireAt + deps.graceMs);
    }
    return { outcome: 'SENT', attempt: ctx.attempt, ...(sent.ok && sent.state !== 'SENT' ? { state: sent.state } : {}) };
  };
}
