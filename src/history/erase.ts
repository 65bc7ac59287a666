/**
 * A data-protection erase of one phone number: the archive's rows of it and
 * the status records of its messages that Redis still holds. Redis has no
 * index by number (records are keyed by agent and message ID, and hold the
 * number only inside), so the archive says which messages were the number's:
 * their IDs are read page by page first, their records deleted (only those
 * whose number is this one), then the archive's rows.
 *
 * What this cannot reach: a message whose changes the archiver has not
 * written yet (still in the history feed, or never archived) is not known by
 * number, and a message still moving is archived again as it moves. Erase
 * again once such messages have settled.
 */
import type { MessageRef } from '../status/store.ts';
import { MAX_AGENTS } from './validate.ts';
import { phoneHash } from './phone-hash.ts';
import { MAX_BY_PHONE, type HistoryStore } from './store.ts';
import type { EraseResult } from './types.ts';

export interface EraseSubscriberDeps {
  store: Pick<HistoryStore, 'byPhone' | 'erase'>;
  phoneKey: string;
  /** Every configured agent: an erase is of the number, whoever sent to it. */
  agentIds: readonly string[];
  /**
   * Redis: deletes what it holds of these messages that is this number's (status records, finished jobs);
   * returns how many status records went.
   */
  status: { eraseOfPhone(refs: readonly MessageRef[], e164: string): Promise<number> };
}

export interface EraseSubscriberResult {
  /** Rows removed from the archive. */
  archive: EraseResult;
  /** Status records removed from Redis. */
  redis: { records: number };
}

export async function eraseSubscriber(deps: EraseSubscriberDeps, e164: string): Promise<EraseSubscriberResult> {
  const toHash = phoneHash(deps.phoneKey, e164);
  let records = 0;
  // byPhone takes up to MAX_AGENTS agents a call: a service with more asks in groups.
  for (let i = 0; i < deps.agentIds.length; i += MAX_AGENTS) {
    const agents = deps.agentIds.slice(i, i + MAX_AGENTS);
    let before: string | undefined;
    do {
      const page = await deps.store.byPhone(toHash, agents, { limit: MAX_BY_PHONE, ...(before ? { before } : {}) });
      records += await deps.status.eraseOfPhone(
        page.messages.map((m) => ({ agentId: m.agentId, messageId: m.messageId })),
        e164,
      );
      before = page.next;
    } while (before);
  }
  const archive = await deps.store.erase(toHash);
  return { archive, redis: { records } };
}
