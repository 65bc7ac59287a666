/**
 * The deliveries report and the CSV export, over messages created in a
 * range by some agents. The report is one GROUP BY served by the
 * messages_report index (agent_id, created_at, outcome times INCLUDEd): for
 * groupBy day, agent, trafficType and state an index-only scan. The export
 * pages by keyset, agent by agent, 1,000 rows a query: memory stays flat
 * whatever the range holds.
 */
import type { HistoryDb } from './db.ts';
import { ms, textArray, ts } from './sql.ts';
import type { ExportQuery, Report, ReportGroupBy, ReportQuery, ReportRow } from './types.ts';

/** Most groups a report answers (groupBy batch can have many). */
export const MAX_REPORT_GROUPS = 1000;
const EXPORT_PAGE = 1000;

/** The grouping column of each groupBy but day (which is done a day at a time: see reportSql). */
const GROUP_COLUMN: Readonly<Record<Exclude<ReportGroupBy, 'day'>, string>> = {
  agent: 'agent_id',
  trafficType: 'traffic_type',
  state: 'state',
  fallbackReason: 'fallback_reason',
  batch: 'batch_id',
};

/** One group's numbers. Both percentiles come from one sort (the array form of percentile_disc). */
const AGGREGATES = `count(*)::int AS total,
  count(*) FILTER (WHERE delivered_at IS NOT NULL OR read_at IS NOT NULL)::int AS delivered,
  count(read_at)::int AS read,
  count(fallback_sent_at)::int AS fell_back,
  count(*) FILTER (WHERE state IN ('FAILED', 'FALLBACK_FAILED'))::int AS failed,
  percentile_disc(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY ${ms('delivered_at - coalesce(sent_at, created_at)')}) AS p`;

const AGENTS = `agent_id = ANY(${textArray('$1')})`;
const OUT = 'total, delivered, read, fell_back, failed, p[1] AS p50, p[2] AS p95';

/**
 * $1 agents JSON, $2 from ms, $3 to ms, $4 limit. By day: one aggregate per day of the range (LATERAL),
 * each reading one day's partition, in day order: no sort of the range's rows to group them, which is
 * most of the cost of a GROUP BY over a month of an agent's messages.
 */
function reportSql(groupBy: ReportGroupBy): string {
  if (groupBy === 'day') {
    return `
SELECT to_char(d, 'YYYY-MM-DD') AS key, ${OUT}
FROM generate_series(date_trunc('day', ${ts('$2::bigint')}), ${ts('$3::bigint')} - interval '1 microsecond', interval '1 day') AS d,
LATERAL (
  SELECT ${AGGREGATES} FROM messages
  WHERE ${AGENTS} AND created_at >= greatest(d, ${ts('$2::bigint')}) AND created_at < least(d + interval '1 day', ${ts('$3::bigint')})
) a
WHERE total > 0 ORDER BY d LIMIT $4`;
  }
  const column = GROUP_COLUMN[groupBy];
  return `
SELECT key, ${OUT} FROM (
  SELECT ${column} AS key, ${AGGREGATES} FROM messages
  WHERE ${AGENTS} AND created_at >= ${ts('$2::bigint')} AND created_at < ${ts('$3::bigint')}
  GROUP BY ${column}
) g
ORDER BY key COLLATE "C" NULLS LAST LIMIT $4`;
}

interface ReportSqlRow {
  key: string | null;
  total: number;
  delivered: number;
  read: number;
  fell_back: number;
  failed: number;
  p50: number | null;
  p95: number | null;
}

export async function deliveriesReport(db: HistoryDb, q: ReportQuery): Promise<Report> {
  const rows = await db.query<ReportSqlRow & Record<string, unknown>>(reportSql(q.groupBy), [
    JSON.stringify(q.agentIds),
    q.from,
    q.to,
    MAX_REPORT_GROUPS + 1,
  ]);
  const rate = (n: number, total: number) => (total === 0 ? 0 : n / total);
  const out: ReportRow[] = rows.slice(0, MAX_REPORT_GROUPS).map((r) => ({
    key: r.key,
    total: r.total,
    delivered: r.delivered,
    read: r.read,
    fellBack: r.fell_back,
    failed: r.failed,
    deliveredRate: rate(r.delivered, r.total),
    readRate: rate(r.read, r.total),
    fallbackRate: rate(r.fell_back, r.total),
    timeToDeliveredP50Ms: r.p50 === null ? null : Number(r.p50),
    timeToDeliveredP95Ms: r.p95 === null ? null : Number(r.p95),
  }));
  return { groupBy: q.groupBy, from: q.from, to: q.to, rows: out, truncated: rows.length > MAX_REPORT_GROUPS };
}

/** One exported message: the CSV's columns, in order. */
export interface ExportRow {
  messageId: string;
  agentId: string;
  state: string;
  channel: string;
  to: string | null;
  trafficType: string | null;
  batchId: string | null;
  fallbackReason: string | null;
  lastErrorCode: string | null;
  createdAt: number;
  sentAt: number | null;
  deliveredAt: number | null;
  readAt: number | null;
  fallbackSentAt: number | null;
  failedAt: number | null;
}

const EXPORT_SQL = `
SELECT message_id::text AS "messageId", agent_id AS "agentId", state, channel, to_masked AS "to", traffic_type AS "trafficType",
  batch_id AS "batchId", fallback_reason AS "fallbackReason", last_error_code AS "lastErrorCode", ${ms('created_at')} AS "createdAt",
  ${ms('sent_at')} AS "sentAt", ${ms('delivered_at')} AS "deliveredAt", ${ms('read_at')} AS "readAt",
  ${ms('fallback_sent_at')} AS "fallbackSentAt", ${ms('failed_at')} AS "failedAt"
FROM messages
WHERE agent_id = $1 AND created_at < ${ts('$3::bigint')}
  AND (created_at, message_id) > (${ts('$2::bigint')}, $4::uuid)
ORDER BY created_at, message_id LIMIT $5`;

/** The messages of the range, agent by agent (sorted), each oldest first; one page in memory at a time. */
export async function* exportRows(db: HistoryDb, q: ExportQuery): AsyncGenerator<ExportRow> {
  for (const agentId of [...new Set(q.agentIds)].sort()) {
    // Keyset cursor, exclusive: (from − 1 ms, the largest UUID) precedes every row created at or after `from`.
    let after = { createdAt: q.from - 1, messageId: 'ffffffff-ffff-ffff-ffff-ffffffffffff' };
    for (;;) {
      const page = await db.query<ExportRow & Record<string, unknown>>(EXPORT_SQL, [
        agentId,
        after.createdAt,
        q.to,
        after.messageId,
        EXPORT_PAGE,
      ]);
      yield* page;
      if (page.length < EXPORT_PAGE) break;
      const last = page[page.length - 1]!;
      after = { createdAt: last.createdAt, messageId: last.messageId };
    }
  }
}

export const CSV_COLUMNS: readonly (keyof ExportRow)[] = [
  'messageId',
  'agentId',
  'state',
  'channel',
  'to',
  'trafficType',
  'batchId',
  'fallbackReason',
  'lastErrorCode',
  'createdAt',
  'sentAt',
  'deliveredAt',
  'readAt',
  'fallbackSentAt',
  'failedAt',
];
const TIME_COLUMNS = new Set<keyof ExportRow>(['createdAt', 'sentAt', 'deliveredAt', 'readAt', 'fallbackSentAt', 'failedAt']);

function csvField(v: unknown): string {
  const s = v === null || v === undefined ? '' : String(v);
  // A leading = + - @ would be a formula in a spreadsheet: quoted with a ' (OWASP CSV injection); a masked number is not one.
  const safe = /^[=+\-@\t\r]/.test(s) && !/^\+\d+\*+\d+$/.test(s) ? `'${s}` : s;
  return /[",\r\n]/.test(safe) ? `"${safe.replaceAll('"', '""')}"` : safe;
}

/** CSV text (RFC 4180, header first, times as ISO 8601 UTC), one chunk per page of rows. */
export async function* exportCsv(db: HistoryDb, q: ExportQuery): AsyncGenerator<string> {
  yield `${CSV_COLUMNS.join(',')}\r\n`;
  let chunk = '';
  let n = 0;
  for await (const row of exportRows(db, q)) {
    const cells = CSV_COLUMNS.map((c) => (TIME_COLUMNS.has(c) && row[c] !== null ? new Date(row[c] as number).toISOString() : row[c]));
    chunk += `${cells.map(csvField).join(',')}\r\n`;
    if (++n % EXPORT_PAGE === 0) {
      yield chunk;
      chunk = '';
    }
  }
  if (chunk) yield chunk;
}
