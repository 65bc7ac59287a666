/**
 * A batch of changes folded into one row per message (pure, no I/O): one
 * INSERT … ON CONFLICT may touch a row only once, and the merge it does with
 * what is stored is the same merge done here, so folding first changes
 * nothing but the row count.
 *
 * The merge is idempotent and order-free, which is what makes a retried
 * batch harmless and out-of-order batches converge:
 *   state, updated_at   of the latest move by (at, STATE_RANK): a later
 *                       move wins, never an earlier one arriving late; an
 *                       event that moved nothing (detail NO_CHANGE…) is in the
 *                       timeline but moves neither, as in Redis
 *   *_at outcome times  the earliest change into the matching state (when it first happened)
 *   facts               the first value seen fills an empty column; never overwritten
 *   last error          that of the latest change carrying one
 */
import type { MessageState } from '../status/states.ts';
import { NO_CHANGE } from '../status/store.ts';
import type { HistoryChange } from './types.ts';

/** Which of two changes at the same ms is the later: the further along the machine. migrations/001 has the same table in SQL. */
export const STATE_RANK: Readonly<Record<MessageState, number>> = {
  QUEUED: 0,
  SENDING: 1,
  SENT: 2,
  NOT_RCS: 2,
  FAILED: 3,
  EXPIRED: 3,
  REVOKED: 3,
  FALLBACK_QUEUED: 4,
  FALLBACK_SENDING: 5,
  FALLBACK_SENT: 6,
  FALLBACK_FAILED: 6,
  DELIVERED: 7,
  READ: 8,
};

/** The outcome-time column each state sets. */
const OUTCOME_COLUMN: Partial<Record<MessageState, OutcomeColumn>> = {
  SENT: 'sent_at',
  DELIVERED: 'delivered_at',
  READ: 'read_at',
  FALLBACK_SENT: 'fallback_sent_at',
  FAILED: 'failed_at',
  FALLBACK_FAILED: 'failed_at',
};
export type OutcomeColumn = 'sent_at' | 'delivered_at' | 'read_at' | 'fallback_sent_at' | 'failed_at';

/** One messages row to upsert, its times in ms; the names are the columns. */
export interface MessageRow {
  agent_id: string;
  message_id: string;
  created_at: number;
  state: MessageState;
  updated_at: number;
  sent_at: number | null;
  delivered_at: number | null;
  read_at: number | null;
  fallback_sent_at: number | null;
  failed_at: number | null;
  to_masked: string | null;
  to_hash: string | null;
  traffic_type: string | null;
  batch_id: string | null;
  expire_at: number | null;
  callback_url: string | null;
  fallback_reason: string | null;
  last_error_code: string | null;
  last_error_message: string | null;
  /** The time of the change that carried the last error: which of two errors is later. */
  last_error_at: number | null;
  text: string | null;
}

function later(a: { at: number; state: MessageState }, b: { at: number; state: MessageState }): boolean {
  return a.at > b.at || (a.at === b.at && STATE_RANK[a.state] > STATE_RANK[b.state]);
}

/** The key of a message in the store: an agent's messageIds are its own. */
export function messageKey(c: Pick<HistoryChange, 'agentId' | 'messageId' | 'createdAt'>): string {
  return `${c.agentId}\u0000${c.messageId}\u0000${c.createdAt}`;
}

/** An event that moved nothing: the Redis record keeps it in the timeline, and neither its state nor its updatedAt moves. */
function movedNothing(c: HistoryChange): boolean {
  return c.detail?.startsWith(NO_CHANGE) === true;
}

export function foldChanges(changes: readonly HistoryChange[], storeText: boolean): MessageRow[] {
  const rows = new Map<string, MessageRow>();
  for (const c of changes) {
    const key = messageKey(c);
    let row = rows.get(key);
    if (!row) {
      row = {
        agent_id: c.agentId,
        message_id: c.messageId,
        created_at: c.createdAt,
        state: c.state,
        // Not moved by it: as early as the message can be, so the merge keeps the stored time.
        updated_at: movedNothing(c) ? c.createdAt : c.at,
        sent_at: null,
        delivered_at: null,
        read_at: null,
        fallback_sent_at: null,
        failed_at: null,
        to_masked: null,
        to_hash: null,
        traffic_type: null,
        batch_id: null,
        expire_at: null,
        callback_url: null,
        fallback_reason: null,
        last_error_code: null,
        last_error_message: null,
        last_error_at: null,
        text: null,
      };
      rows.set(key, row);
    } else if (!movedNothing(c) && later(c, { at: row.updated_at, state: row.state })) {
      row.state = c.state;
      row.updated_at = c.at;
    }
    const column = OUTCOME_COLUMN[c.state];
    if (column) row[column] = row[column] === null ? c.at : Math.min(row[column], c.at);
    row.to_masked ??= c.toMasked ?? null;
    row.to_hash ??= c.toHash?.toLowerCase() ?? null;
    row.traffic_type ??= c.trafficType ?? null;
    row.batch_id ??= c.batchId ?? null;
    row.expire_at ??= c.expireAt ?? null;
    row.callback_url ??= c.callbackUrl ?? null;
    row.fallback_reason ??= c.fallbackReason ?? (c.state === 'FALLBACK_QUEUED' ? (c.event ?? c.previousState ?? null) : null);
    if (storeText) row.text ??= c.text ?? null;
    if (c.errorCode && (row.last_error_at === null || c.at >= row.last_error_at)) {
      row.last_error_code = c.errorCode;
      row.last_error_message = c.errorMessage ?? null;
      row.last_error_at = c.at;
    }
  }
  return [...rows.values()];
}
