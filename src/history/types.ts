/**
 * The shapes of history: what the archiver writes (HistoryChange), what the
 * API reads (HistoryMessage: status/store.ts's MessageStatus, so a message
 * answers with the same body from Redis or from here) and the deliveries
 * report. Times are ms since the epoch everywhere outside SQL.
 *
 * Glossary:
 *   change     one entry of a message's timeline: a move into `state` at `at`
 *   delivered  DELIVERED or READ happened (READ implies delivery)
 *   fell back  an SMS was sent for it (FALLBACK_SENT happened)
 *   failed     it ended in FAILED or FALLBACK_FAILED: nothing reached the phone
 *              (EXPIRED and REVOKED are outcomes of their own: see groupBy 'state')
 */
import type { MessageState } from '../status/states.ts';
import type { MessageStatus, TimelineEntry } from '../status/store.ts';

export interface HistoryChange {
  agentId: string;
  /** A UUID, as every messageId is. */
  messageId: string;
  state: MessageState;
  previousState?: MessageState | null | undefined;
  at: number;
  /** What caused it (DELIVERED, TTL_EXPIRATION_REVOKED, DEADLINE…). */
  event?: string | undefined;
  detail?: string | undefined;
  errorCode?: string | undefined;
  /** The error's message beside its code (the Redis timeline keeps both). */
  errorMessage?: string | undefined;
  /** When the message was created (enqueued): the same on every change of a message; it picks the partition. */
  createdAt: number;
  /** The facts of the message: each fills in its column where still empty. */
  toMasked?: string | undefined;
  /** phoneHash(key, to): 64 hex characters. */
  toHash?: string | undefined;
  trafficType?: string | undefined;
  batchId?: string | undefined;
  /** Why it fell back (NOT_RCS, TTL_EXPIRATION_REVOKED…); taken from the FALLBACK_QUEUED change's event when absent. */
  fallbackReason?: string | undefined;
  /** When the message expires (its TTL), ms. */
  expireAt?: number | undefined;
  /** Where its status changes are POSTed. */
  callbackUrl?: string | undefined;
  /** The message text: kept only when the store was opened with storeText. */
  text?: string | undefined;
}

export interface WriteResult {
  /** Timeline entries new to the store (a batch written twice adds 0 the second time). */
  events: number;
  /** Message rows inserted or moved by those new entries. */
  messages: number;
  /** Changes of messages created before the retention horizon: dropped, their partitions are gone. */
  tooOld: number;
}

/** A message as GET /v1/messages/:id answers it; `channel` is 'sms' once an SMS was sent for it. */
export type HistoryMessage = Omit<MessageStatus, 'channel' | 'attempts'> & {
  channel: 'rcs' | 'sms';
  fallbackReason?: string;
  /** Only when the store keeps text (HISTORY_STORE_TEXT). */
  text?: string;
  timeline: TimelineEntry[];
};

/** One line of a number's messages: a message without its timeline. */
export type HistorySummary = Omit<HistoryMessage, 'timeline' | 'text'>;

export interface ByPhoneOptions {
  /** 1–100, default 50. */
  limit?: number;
  /** The `next` of the previous page. */
  before?: string;
}

export interface ByPhonePage {
  messages: HistorySummary[];
  /** Pass as `before` for the next (older) page; absent on the last page. */
  next?: string;
}

export const REPORT_GROUPS = ['day', 'agent', 'trafficType', 'state', 'fallbackReason', 'batch'] as const;
export type ReportGroupBy = (typeof REPORT_GROUPS)[number];

export interface ReportQuery {
  /** Messages created in [from, to), ms. At most MAX_REPORT_DAYS apart. */
  from: number;
  to: number;
  /** 1–100 agents; only their messages count. */
  agentIds: readonly string[];
  groupBy: ReportGroupBy;
}

export interface ReportRow {
  /** The group: a UTC day 'YYYY-MM-DD', an agent, a traffic type, a state, a reason, a batch; null when the message has none. */
  key: string | null;
  total: number;
  delivered: number;
  read: number;
  fellBack: number;
  failed: number;
  /** Each over total, 0–1. */
  deliveredRate: number;
  readRate: number;
  fallbackRate: number;
  /** ms from SENT (or creation, when never marked sent) to DELIVERED; null when none was delivered. Nearest-rank percentiles. */
  timeToDeliveredP50Ms: number | null;
  timeToDeliveredP95Ms: number | null;
}

export interface Report {
  groupBy: ReportGroupBy;
  from: number;
  to: number;
  rows: ReportRow[];
  /** More than MAX_REPORT_GROUPS groups: the first ones (by key) only. */
  truncated: boolean;
}

export interface ExportQuery {
  from: number;
  to: number;
  agentIds: readonly string[];
}

export interface EraseResult {
  messages: number;
  events: number;
}

export interface RetentionResult {
  /** Messages created before this (ms, a UTC midnight) are gone. */
  cutoff: number;
  /** The UTC days ('YYYY-MM-DD') whose partitions were dropped. */
  droppedDays: string[];
}
