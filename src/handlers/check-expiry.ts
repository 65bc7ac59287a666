/**
 * check-expiry: the local deadline (expireTime + grace). RBM's webhook can lag
 * for minutes and an OTP must not wait on it: if the message is still SENT,
 * revoke it; 200 means it was never delivered, so fall back; 404 means it was
 * delivered, so record that. Anything else already decided the message.
 */
import { validate } from '../../jobs/common.ts';
import { checkExpiryPayload } from '../../jobs/check-expiry.ts';
import { classify, PayloadError } from '../errors.ts';
import type { RequestFallback } from '../fallback/fallback.ts';
import type { RbmClient } from '../rbm/client.ts';
import type { StatusPort } from '../status/store.ts';
import type { Handler, Logger, Outcome } from './types.ts';

export interface CheckExpiryDeps {
  status: StatusPort;
  requestFallback: RequestFallback;
  rbm: Pick<RbmClient, 'revokeMessage'>;
  log: Logger;
}

export function createCheckExpiryHandler(deps: CheckExpiryDeps): Handler {
  return async (payload): Promise<Outcome> => {
    const checked = validate(checkExpiryPayload, payload);
    if (!checked.ok) throw new PayloadError('check-expiry payload', checked.problems);
    const p = checked.value;
    const { messageId, agentId, to } = p;
    const state = await deps.status.field(p, 'state');
    if (state !== 'SENT') return { outcome: 'NOTHING_TO_DO', state };

    let revoked: boolean;
    try {
      revoked = await deps.rbm.revokeMessage({ agentId, to, messageId });
    } catch (err) {
      if (classify(err, 'revoke') === 'permanent')
        deps.log.error({ messageId, err: (err as Error).message }, 'revoke at the local deadline refused');
      throw err;
    }
    if (!revoked) {
      await deps.status.transition(p, 'DELIVERED', { event: 'DEADLINE', detail: 'revoke answered 404: already delivered' });
      return { outcome: 'DELIVERED' };
    }
    const r = await deps.requestFallback({
      messageId,
      agentId,
      reason: 'DEADLINE',
      event: 'DEADLINE',
      detail: 'nothing heard by expireTime + grace; revoke answered 200',
    });
    return { ...r };
  };
}
