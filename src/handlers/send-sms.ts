/**
 * send-sms: the one SMS of a message. The worker first claims the record
 * (FALLBACK_QUEUED → FALLBACK_SENDING); a message that was delivered over RCS
 * in the meantime cannot be claimed, so it gets no SMS. A try that crashed
 * after it may have handed the SMS to the provider is not repeated: two SMS
 * for one message is the failure this service exists to prevent. Unless the
 * provider honours the idempotency key (the messageId): then the repeat is
 * answered with the first SMS, and repeating it is how the outcome is learnt.
 */
import { validate } from '../../jobs/common.ts';
import { sendSmsPayload, smsIdempotencyKey } from '../../jobs/send-sms.ts';
import { classify, ErrorCodes, PayloadError } from '../errors.ts';
import { maskPhone } from '../mask.ts';
import type { SmsProvider } from '../sms/index.ts';
import type { StatusPort } from '../status/store.ts';
import { isFinalAttempt, type Handler, type Logger, type Outcome } from './types.ts';

export interface SendSmsDeps {
  status: StatusPort;
  provider: Pick<SmsProvider, 'send' | 'name'>;
  /** The provider answers a repeated idempotency key with the first SMS (SMS_IDEMPOTENT): an unknown outcome may be retried. */
  idempotent: boolean;
  /** The agent's own SMS sender (the agent directory's smsFrom), used when the message names none; then the provider's default. */
  senderOf?: (agentId: string) => string | undefined;
  log: Logger;
}

const IN_FLIGHT = 'smsInFlight';

export function createSendSmsHandler(deps: SendSmsDeps): Handler {
  const { status, log } = deps;
  return async (payload, ctx): Promise<Outcome> => {
    const checked = validate(sendSmsPayload, payload);
    if (!checked.ok) throw new PayloadError('send-sms payload', checked.problems);
    const p = checked.value;
    const id = p.messageId;

    const wasInFlight = (await status.field(p, IN_FLIGHT)) === '1';
    const claim = await status.transition(p, 'FALLBACK_SENDING', {
      fields: { [IN_FLIGHT]: '1' },
      detail: `SMS try ${ctx.attempt} (${p.reason})`,
    });
    if (!claim.ok) return { outcome: 'CANCELLED', state: claim.from };
    if (claim.from === 'FALLBACK_SENDING' && wasInFlight && !deps.idempotent) {
      const error = {
        code: ErrorCodes.SMS_OUTCOME_UNKNOWN,
        message: 'a previous try stopped after handing the SMS to the provider; not sending a second one',
      };
      await status.transition(p, 'FALLBACK_FAILED', { error, fields: { [IN_FLIGHT]: '0' } });
      log.error({ messageId: id, to: maskPhone(p.to) }, error.message);
      return { outcome: 'OUTCOME_UNKNOWN' };
    }

    let providerMessageId: string;
    const from = p.from || deps.senderOf?.(p.agentId);
    try {
      ({ providerMessageId } = await deps.provider.send({
        to: p.to,
        text: p.text,
        ...(from ? { from } : {}),
        idempotencyKey: smsIdempotencyKey(p),
      }));
    } catch (err) {
      const kind = classify(err);
      // The provider answered: nothing is in flight any more.
      if (kind === 'rateLimited') {
        await status.setField(p, IN_FLIGHT, '0');
        throw err;
      }
      const error = {
        code: String((err as { code?: string }).code ?? ErrorCodes.SMS_PROVIDER),
        message: String((err as Error).message).slice(0, 500),
      };
      const final = kind === 'permanent' || isFinalAttempt(ctx);
      await status.transition(p, final ? 'FALLBACK_FAILED' : 'FALLBACK_SENDING', { error, fields: { [IN_FLIGHT]: '0' } });
      log[final ? 'error' : 'warn'](
        { messageId: id, to: maskPhone(p.to), attempt: ctx.attempt, ...error },
        final ? 'SMS fallback failed' : 'SMS send failed, will retry',
      );
      throw err;
    }
    await status.transition(p, 'FALLBACK_SENT', {
      fields: { [IN_FLIGHT]: '0', smsId: providerMessageId, smsProvider: deps.provider.name },
      detail: `SMS sent (${p.reason})`,
    });
    return { outcome: 'FALLBACK_SENT', providerMessageId };
  };
}
