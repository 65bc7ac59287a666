/**
 * The deliveries report over a large history: N messages (10 M in the full
 * run) generated server-side with INSERT … SELECT generate_series into a
 * fresh database on the local PostgreSQL, spread evenly over `agents`
 * agents (interleaved, as live traffic is) and `days` days, with a plausible
 * mix of outcomes; then the report for one agent × the last 30 days ×
 * groupBy day, `runs` times after one warm-up, through HistoryStore.report.
 * Target: p95 < 500 ms.
 *
 * After generation the table is VACUUM ANALYZEd, as autovacuum would have
 * done to settled days in production: the report is an index-only scan of
 * messages_report, which needs the visibility map. Only messages are
 * generated (the report does not read timelines).
 */
import { openHistory } from '../../src/history/index.ts';
import { DAY_MS, dayStart, Partitions } from '../../src/history/partitions.ts';
import { freshDatabase, percentile } from '../lib.ts';

export interface HistoryReportResult {
  rows: number;
  agents: number;
  days: number;
  runs: number;
  /** Messages the measured report covered (one agent, 30 days). */
  reportedMessages: number;
  generateSec: number;
  /** Heap and indexes of messages, per message. */
  bytesPerMessage: number;
  p50Ms: number;
  p95Ms: number;
  maxMs: number;
}

const silent = { info: () => {}, warn: () => {} };

export async function historyReport(opts: {
  rows: number;
  agents?: number;
  days?: number;
  runs?: number;
  /** The server's admin database; a fresh one is created beside it and dropped after. */
  adminUrl?: string;
  log?: (line: string) => void;
  /** Leave the database for a look at the plans (its name is logged); dropped by default. */
  keepDatabase?: boolean;
}): Promise<HistoryReportResult> {
  const agents = opts.agents ?? 10;
  const days = opts.days ?? 90;
  const runs = opts.runs ?? 20;
  const log = opts.log ?? (() => {});
  const database = await freshDatabase('rbm_history_bench', opts.adminUrl);
  const end = dayStart(Date.now()) + DAY_MS;
  const start = end - days * DAY_MS;
  const store = await openHistory({ url: database.url, log: silent, now: () => end - 1 });
  try {
    await new Partitions(store.db).ensure(Array.from({ length: days }, (_, d) => start + d * DAY_MS));
    const t0 = performance.now();
    // One statement per day: bounded transactions, and progress to show.
    const perDay = Math.ceil(opts.rows / days);
    for (let d = 0; d < days; d++) {
      const first = d * perDay + 1;
      const last = Math.min(opts.rows, (d + 1) * perDay);
      if (first > last) break;
      await store.db.query(GENERATE, [first, last, agents, start, opts.rows, days * DAY_MS]);
      if (d % 10 === 9) log(`history-report: ${last.toLocaleString('en-US')} of ${opts.rows.toLocaleString('en-US')} rows`);
    }
    await store.db.exec('VACUUM (ANALYZE) messages');
    const generateSec = (performance.now() - t0) / 1000;
    const [size] = await store.db.query<{ bytes: number }>(
      "SELECT sum(pg_total_relation_size(inhrelid))::float8 AS bytes FROM pg_inherits WHERE inhparent = 'messages'::regclass",
    );

    const q = { agentIds: ['agent-0'], from: end - 30 * DAY_MS, to: end, groupBy: 'day' as const };
    const warm = await store.report(q);
    const reportedMessages = warm.rows.reduce((n, r) => n + r.total, 0);
    const times: number[] = [];
    for (let i = 0; i < runs; i++) {
      const t = performance.now();
      await store.report(q);
      times.push(performance.now() - t);
    }
    return {
      rows: opts.rows,
      agents,
      days,
      runs,
      reportedMessages,
      generateSec,
      bytesPerMessage: (size?.bytes ?? 0) / opts.rows,
      p50Ms: percentile(times, 50),
      p95Ms: percentile(times, 95),
      maxMs: Math.max(...times),
    };
  } finally {
    await store.close();
    if (opts.keepDatabase) log(`history-report: kept database ${database.name}`);
    await database.drop(opts.keepDatabase);
  }
}

/**
 * Rows $1..$2 of $5, agent i % $3, created evenly over [$4, $4 + $6) ms. Outcomes from a hash of i:
 * 60 % delivered (a third of them read), 15 % fallen back to SMS, 5 % failed, 10 % expired, 10 % only sent;
 * delivery 0.2–10 s after SENT, SENT 50–550 ms after creation.
 */
const GENERATE = `
INSERT INTO messages (agent_id, message_id, created_at, state, updated_at, sent_at, delivered_at, read_at, fallback_sent_at,
  failed_at, channel, to_masked, to_hash, traffic_type, batch_id, fallback_reason)
SELECT 'agent-' || (i % $3), md5(i::text)::uuid, created, state,
  coalesce(read_at, delivered_at, fallback_at, failed_at, sent_at), sent_at, delivered_at, read_at, fallback_at, failed_at,
  CASE WHEN fallback_at IS NULL THEN 'rcs' ELSE 'sms' END, '+1415***' || lpad((i % 10000)::text, 4, '0'),
  sha256(('+1415555' || (i % 1000000))::bytea), CASE WHEN r % 3 = 0 THEN 'PROMOTION' ELSE 'TRANSACTION' END,
  'batch-' || (i / 1000), CASE WHEN fallback_at IS NOT NULL THEN 'TTL_EXPIRATION_REVOKED' END
FROM (
  SELECT i, r, created, sent_at,
    CASE WHEN r < 60 THEN sent_at + (200 + (h % 9800)) * interval '1 ms' END AS delivered_at,
    CASE WHEN r < 20 THEN sent_at + (10200 + (h % 60000)) * interval '1 ms' END AS read_at,
    CASE WHEN r >= 60 AND r < 75 THEN sent_at + interval '1 hour' END AS fallback_at,
    CASE WHEN r >= 75 AND r < 80 THEN sent_at + interval '1 minute' END AS failed_at,
    CASE WHEN r < 20 THEN 'READ' WHEN r < 60 THEN 'DELIVERED' WHEN r < 75 THEN 'FALLBACK_SENT' WHEN r < 80 THEN 'FAILED'
      WHEN r < 90 THEN 'EXPIRED' ELSE 'SENT' END AS state
  FROM (
    SELECT i, h, h % 100 AS r,
      timestamptz 'epoch' + ($4::bigint + (i - 1) * ($6::float8 / $5::bigint))::bigint * interval '1 ms' AS created,
      timestamptz 'epoch' + ($4::bigint + (i - 1) * ($6::float8 / $5::bigint) + 50 + h % 500)::bigint * interval '1 ms' AS sent_at
    FROM (SELECT i, abs(hashint8(i)) AS h FROM generate_series($1::bigint, $2::bigint) AS i) g
  ) s
) t`;
