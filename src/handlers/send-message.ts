/**
 * send-message: one AgentMessage to RBM. The messageId was fixed at enqueue and
 * is reused on every attempt, so RBM drops a resend. The status record moves
 * QUEUED → SENDING → SENT | NOT_RCS | FAILED (created by the first move when
 * the producer wrote none); a job whose record is already past SENDING is a
 * duplicate and sends nothing.
 */
import { sendMessagePayload, type SendMessagePayload } from '../../jobs/send-message.ts';
import { validate } from '../../jobs/common.ts';
import { classify, PayloadError, type DispatchError } from '../errors.ts';
import { maskPhone } from '../mask.ts';
import type { RbmClient } from '../rbm/client.ts';
import type { AgentMessageBody } from '../rbm/types.ts';
import type { StatusPort } from '../status/store.ts';
import { isFinalAttempt, type Handler, type Logger, type Outcome } from './types.ts';

export interface SendMessageDeps {
  rbm: Pick<RbmClient, 'createMessage'>;
  status: StatusPort;
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
  return { code: e.code ?? 'UNKNOWN', message: String(e.message ?? err).slice(0, 500) };
}

export function createSendMessageHandler(deps: SendMessageDeps): Handler {
  const now = deps.now ?? Date.now;
  const { status, rbm, log } = deps;

  return async (payload, ctx): Promise<Outcome> => {
    const checked = validate(sendMessagePayload, payload);
    if (!checked.ok) {
      const messageId = (payload as { messageId?: unknown } | null)?.messageId;
      const error = new PayloadError('send-message payload', checked.problems);
      if (typeof messageId === 'string') await status.transition(messageId, 'FAILED', { error: errorOf(error) });
      throw error;
    }
    const p = checked.value;
    const id = p.messageId;
    // The record to create if this message has none yet (it was enqueued with a fresh ID).
    const create = {
      messageId: id, agentId: p.agentId, to: p.to, createdAt: p.enqueuedAt,
      trafficType: p.message.messageTrafficType, batchId: p.batchId, expireAt: p.expireAt,
    };

    if (p.expireAt !== undefined && p.expireAt <= now()) {
      await status.transition(id, 'FAILED', { create, error: { code: 'EXPIRED_IN_QUEUE', message: 'the message expired before it could be sent' } });
      return { outcome: 'EXPIRED' };
    }

    const start = await status.transition(id, 'SENDING', { create, ...(ctx.attempt > 1 ? { detail: `attempt ${ctx.attempt}` } : {}) });
    if (!start.ok) {
      // Another job for this ID already got past sending: nothing to do.
      return { outcome: 'DUPLICATE', state: start.from };
    }

    try {
      await rbm.createMessage({ agentId: p.agentId, to: p.to, messageId: id, body: wireBody(p, now()) });
    } catch (err) {
      const kind = classify(err, 'send');
      if (kind === 'notRcs') {
        await status.transition(id, 'NOT_RCS', { countAttempt: true, detail: 'RBM answered 404: not reachable over RCS' });
        return { outcome: 'NOT_RCS' };
      }
      if (kind === 'rateLimited') throw err; // not an attempt: the runner pauses the agent's queue
      const error = errorOf(err);
      const final = kind === 'permanent' || isFinalAttempt(ctx);
      await status.transition(id, final ? 'FAILED' : 'SENDING', { countAttempt: true, error });
      log[final ? 'error' : 'warn']({ messageId: id, to: maskPhone(p.to), attempt: ctx.attempt, ...error }, final ? 'message failed' : 'send failed, will retry');
      throw err;
    }
    await status.transition(id, 'SENT', { countAttempt: true });
    return { outcome: 'SENT', attempt: ctx.attempt };
  };
}
