/**
 * The history store: settled messages and their timelines in PostgreSQL (a
 * server, or the embedded PGlite), fed by the archiver with write() and read
 * by the API. Every read is bounded (a limit, a range, a page); every write
 * is one transaction of two statements, idempotent on (agent, message,
 * state, at): an archiver killed mid-batch retries the batch and adds nothing.
 */
import { PayloadError } from '../errors.ts';
import type { TimelineEntry } from '../status/store.ts';
import type { MessageState } from '../status/states.ts';
import type { HistoryDb } from './db.ts';
import { foldChanges, messageKey } from './fold.ts';
import { dayName, dayStart, DAY_MS, type Partitions } from './partitions.ts';
import { deliveriesReport, exportCsv, exportRows, type ExportRow } from './report.ts';
import * as Q from './sql.ts';
import type {
  ByPhoneOptions,
  ByPhonePage,
  EraseResult,
  ExportQuery,
  HistoryChange,
  HistoryMessage,
  HistorySummary,
  Report,
  ReportQuery,
  RetentionResult,
  WriteResult,
} from './types.ts';
import { REPORT_GROUPS } from './types.ts';
import { checkAgents, checkChanges, checkHash, checkRange } from './validate.ts';

/** Most timeline entries a message answers with. */
export const MAX_TIMELINE = 1000;
export const MAX_BY_PHONE = 100;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** SQLSTATE 23514: "no partition of relation … found for row" (dropped under us by another process's retention). */
const NO_PARTITION = '23514';

export interface HistoryStoreOptions {
  /** Keep message text (HISTORY_STORE_TEXT); otherwise every change's text is dropped. Default false. */
  storeText?: boolean;
  /** HISTORY_RETENTION_DAYS: changes of messages created before the horizon are not written (their days are dropped). */
  retentionDays?: number | undefined;
  /** The clock (tests). */
  now?: () => number;
}

interface MessageSqlRow extends Record<string, unknown> {
  agent_id: string;
  message_id: string;
  created_at: number;
  updated_at: number;
  state: MessageState;
  channel: 'rcs' | 'sms';
  to_masked: string | null;
  traffic_type: string | null;
  batch_id: string | null;
  fallback_reason: string | null;
  last_error_code: string | null;
  last_error_message: string | null;
  expire_at: number | null;
  callback_url: string | null;
  text?: string | null;
}

function summary(r: MessageSqlRow): HistorySummary {
  return {
    messageId: r.message_id,
    state: r.state,
    agentId: r.agent_id,
    to: r.to_masked ?? '',
    channel: r.channel,
    ...(r.traffic_type ? { trafficType: r.traffic_type } : {}),
    ...(r.batch_id ? { batchId: r.batch_id } : {}),
    ...(r.fallback_reason ? { fallbackReason: r.fallback_reason } : {}),
    ...(r.expire_at !== null ? { expireAt: r.expire_at } : {}),
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    ...(r.last_error_code ? { lastError: { code: r.last_error_code, message: r.last_error_message ?? '' } } : {}),
    ...(r.callback_url ? { callbackUrl: r.callback_url } : {}),
  };
}

function encodeCursor(r: MessageSqlRow): string {
  return Buffer.from(JSON.stringify([r.created_at, r.agent_id, r.message_id])).toString('base64url');
}

function decodeCursor(cursor: string): [number, string, string] {
  try {
    const v = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as unknown;
    if (Array.isArray(v) && Number.isInteger(v[0]) && typeof v[1] === 'string' && typeof v[2] === 'string' && UUID.test(v[2])) {
      return v as [number, string, string];
    }
  } catch {}
  throw new PayloadError('history lookup', [
    { path: 'before', problem: `expected the next of a previous page, got '${cursor.slice(0, 40)}'` },
  ]);
}

export class HistoryStore {
  private readonly storeText: boolean;
  private readonly now: () => number;

  constructor(
    readonly db: HistoryDb,
    private readonly partitions: Partitions,
    private readonly options: HistoryStoreOptions = {},
  ) {
    this.storeText = options.storeText ?? false;
    this.now = options.now ?? Date.now;
  }

  /** Messages created before this are past retention (a UTC midnight), or 0 when none is set. */
  private horizon(now: number, days = this.options.retentionDays): number {
    return days ? dayStart(now - days * DAY_MS) : 0;
  }

  async write(changes: readonly HistoryChange[]): Promise<WriteResult> {
    checkChanges(changes);
    const horizon = this.horizon(this.now());
    // One spelling of each UUID, so one message is one key in the fold as in the database.
    const kept = changes.filter((c) => c.createdAt >= horizon).map((c) => ({ ...c, messageId: c.messageId.toLowerCase() }));
    const result: WriteResult = { events: 0, messages: 0, tooOld: changes.length - kept.length };
    if (kept.length === 0) return result;
    const events = JSON.stringify(
      kept.map((c) => ({
        agent_id: c.agentId,
        message_id: c.messageId,
        created_at: c.createdAt,
        at: c.at,
        state: c.state,
        previous_state: c.previousState ?? null,
        event: c.event ?? null,
        detail: c.detail ?? null,
        error_code: c.errorCode ?? null,
        error_message: c.errorMessage ?? null,
      })),
    );
    const rows = foldChanges(kept, this.storeText);
    const attempt = () =>
      this.db.transaction(async (tx) => {
        const added = await tx.query<{ agent_id: string; message_id: string; created_at: number; added: number }>(Q.INSERT_EVENTS, [
          events,
        ]);
        // Only messages that gained an entry can change: a batch written again touches no row at all.
        const changed = new Set(added.map((a) => messageKey({ agentId: a.agent_id, messageId: a.message_id, createdAt: a.created_at })));
        const upsert = rows.filter((r) =>
          changed.has(messageKey({ agentId: r.agent_id, messageId: r.message_id, createdAt: r.created_at })),
        );
        if (upsert.length > 0) await tx.query(Q.UPSERT_MESSAGES, [JSON.stringify(upsert)]);
        return { events: added.reduce((n, a) => n + a.added, 0), messages: upsert.length };
      });
    await this.partitions.ensure(kept.map((c) => c.createdAt));
    try {
      return { ...result, ...(await attempt()) };
    } catch (err) {
      if ((err as { code?: unknown }).code !== NO_PARTITION) throw err;
      this.partitions.forget();
      await this.partitions.ensure(kept.map((c) => c.createdAt));
      return { ...result, ...(await attempt()) };
    }
  }

  /** A message and its timeline (ordered by time), as GET /v1/messages/:id answers; null when absent. */
  async message(ref: { agentId: string; messageId: string }): Promise<HistoryMessage | null> {
    if (!UUID.test(ref.messageId)) return null;
    const [row] = await this.db.query<MessageSqlRow>(Q.SELECT_MESSAGE, [ref.agentId, ref.messageId]);
    if (!row) return null;
    const entries = await this.db.query<{
      state: MessageState;
      at: number;
      event: string | null;
      detail: string | null;
      error_code: string | null;
      error_message: string | null;
    }>(Q.SELECT_TIMELINE, [ref.agentId, ref.messageId, row.created_at, MAX_TIMELINE]);
    const timeline: TimelineEntry[] = entries.map((e) => ({
      state: e.state,
      at: e.at,
      ...(e.event ? { event: e.event } : {}),
      ...(e.detail ? { detail: e.detail } : {}),
      ...(e.error_code ? { error: { code: e.error_code, message: e.error_message ?? '' } } : {}),
    }));
    return { ...summary(row), ...(row.text ? { text: row.text } : {}), timeline };
  }

  /** A number's messages of these agents, newest first, a page at a time. */
  async byPhone(toHash: string, agentIds: readonly string[], options: ByPhoneOptions = {}): Promise<ByPhonePage> {
    checkHash(toHash, 'history lookup');
    checkAgents(agentIds, 'history lookup');
    const limit = options.limit ?? 50;
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_BY_PHONE) {
      throw new PayloadError('history lookup', [{ path: 'limit', problem: `expected 1 to ${MAX_BY_PHONE}, got ${limit}` }]);
    }
    const [at, agent, id] = options.before === undefined ? [null, null, null] : decodeCursor(options.before);
    const rows = await this.db.query<MessageSqlRow>(Q.SELECT_BY_PHONE, [
      toHash.toLowerCase(),
      JSON.stringify(agentIds),
      at,
      agent,
      id,
      limit + 1,
    ]);
    const page = rows.slice(0, limit);
    return { messages: page.map(summary), ...(rows.length > limit ? { next: encodeCursor(page[page.length - 1]!) } : {}) };
  }

  async report(q: ReportQuery): Promise<Report> {
    checkAgents(q.agentIds, 'history report');
    checkRange(q.from, q.to, 'history report');
    if (!REPORT_GROUPS.includes(q.groupBy)) {
      throw new PayloadError('history report', [
        { path: 'groupBy', problem: `expected one of ${REPORT_GROUPS.join(', ')}, got '${q.groupBy}'` },
      ]);
    }
    return deliveriesReport(this.db, q);
  }

  /** The range's messages, one at a time (bounded memory). */
  exportRows(q: ExportQuery): AsyncGenerator<ExportRow> {
    checkAgents(q.agentIds, 'history export');
    checkRange(q.from, q.to, 'history export');
    return exportRows(this.db, q);
  }

  /** The range's messages as CSV chunks, header first (bounded memory). */
  exportCsv(q: ExportQuery): AsyncGenerator<string> {
    checkAgents(q.agentIds, 'history export');
    checkRange(q.from, q.to, 'history export');
    return exportCsv(this.db, q);
  }

  /** Removes a number's messages and their timelines (a data-protection request). */
  async erase(toHash: string): Promise<EraseResult> {
    checkHash(toHash, 'history erase');
    const [counts] = await this.db.query<{ messages: number; events: number }>(Q.ERASE, [toHash.toLowerCase()]);
    return { messages: counts?.messages ?? 0, events: counts?.events ?? 0 };
  }

  /** Drops the days wholly older than `days` before `now`: whole partitions, no row-by-row delete. */
  async enforceRetention(now: number, days: number): Promise<RetentionResult> {
    if (!Number.isInteger(days) || days < 1) {
      throw new PayloadError('history retention', [{ path: 'days', problem: `expected a whole number of days ≥ 1, got ${days}` }]);
    }
    const cutoff = this.horizon(now, days);
    const dropped = await this.partitions.dropBefore(cutoff);
    return { cutoff, droppedDays: dropped.map(dayName) };
  }

  /** The days that hold history (UTC 'YYYY-MM-DD'), oldest first. */
  async days(): Promise<string[]> {
    return (await this.partitions.days()).map(dayName);
  }

  close(): Promise<void> {
    return this.db.close();
  }
}
