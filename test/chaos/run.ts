/**
 * `npm run chaos`: runs the fault scenarios one after another, each in a
 * world of its own, prints one table and writes JSON to test/chaos/results.
 * Exit 1 when any bad column (the archive's against Redis's timelines too) is non-zero, a recovery took over 10 s (or
 * never came), a scenario's target was missed or a scenario broke.
 *
 *   CHAOS_SCALE=0.2            sizes and outage durations × 0.2 (floors apply)
 *   CHAOS_ONLY=name,name       only these scenarios (names as in the table; a prefix matches)
 *   CHAOS_SETTLE_MS=150000     how long a scenario may take to settle after its traffic
 *   CHAOS_LOCK_MS / CHAOS_STALLED_MS   WORKER_LOCK_DURATION_MS / WORKER_STALLED_INTERVAL_MS of the
 *                              processes (default 5000 each; 'default' = the service's own)
 *   CHAOS_RATE=100             agent rate of the dispatcher-kill drain
 *   CHAOS_REDIS_DOWN_MS=3000   how long Redis stays down in the Redis scenarios
 *   CHAOS_LOG_LEVEL=info       the processes' LOG_LEVEL (logs kept per scenario, path printed)
 *   CHAOS_TIMEOUT_MS=5400000   the whole run's bound; every child is killed when it passes
 *   CHAOS_PG_URL               the PostgreSQL admin URL each scenario's archive database is made from
 *                              (else HISTORY_TEST_PG_URL, else postgres://postgres@127.0.0.1:5432/test)
 *   CHAOS_HISTORY=off          no archiver, no history columns
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from './cluster.ts';
import { installCleanup, killAll } from './procs.ts';
import { SCENARIOS, type Ctx, type Row } from './scenarios.ts';

const scale = Number(process.env.CHAOS_SCALE ?? 1);
if (!(scale > 0)) {
  console.error(`CHAOS_SCALE must be a number > 0, got ${process.env.CHAOS_SCALE}`);
  process.exit(2);
}
const only = (process.env.CHAOS_ONLY ?? '')
  .split(',')
  .map((s) => s.trim())
  .filter(Boolean);
const chosen = only.length ? SCENARIOS.filter((s) => only.some((o) => s.name.startsWith(o))) : SCENARIOS;
if (chosen.length === 0) {
  console.error(`CHAOS_ONLY matches no scenario; the scenarios: ${SCENARIOS.map((s) => s.name).join(', ')}`);
  process.exit(2);
}
installCleanup(Number(process.env.CHAOS_TIMEOUT_MS ?? 90 * 60_000));

const stamp = new Date().toISOString().replace(/[:.]/g, '-');
const ctx: Ctx = {
  scale,
  settleMs: Number(process.env.CHAOS_SETTLE_MS ?? 150_000),
  baseDir: join(tmpdir(), `rbm-chaos-${stamp}`),
  recoveryLimitMs: 10_000,
};
await mkdir(ctx.baseDir, { recursive: true });
console.error(`chaos: ${chosen.length} scenario(s), scale ${scale}, logs under ${ctx.baseDir}`);

const rows: Row[] = [];
for (const s of chosen) {
  const row: Row = { scenario: s.name, recoveries: [], notes: [], logs: join(ctx.baseDir, s.name), seconds: 0 };
  const t0 = Date.now();
  console.error(`chaos: ▶ ${s.name}`);
  try {
    await s.run(ctx, row);
  } catch (err) {
    row.error = (err as Error).message;
  }
  row.seconds = Math.round((Date.now() - t0) / 1000);
  rows.push(row);
  console.error(`chaos: ■ ${s.name} in ${row.seconds} s${row.error ? `: ERROR ${row.error}` : ''}`);
}
killAll();

// ---------------------------------------------------------------- table

const BAD = ['lost', 'twice', 'smsBad', 'smsNotDue', 'wrong', 'stuck', 'failed'] as const;
const worstRecovery = (r: Row): number | null | undefined =>
  r.recoveries.length === 0
    ? undefined
    : r.recoveries.some((x) => x.ms === null)
      ? null
      : Math.max(...r.recoveries.map((x) => x.ms as number));

function ok(r: Row): boolean {
  if (r.error || !r.verdict) return false;
  if (BAD.some((k) => r.verdict![k] > 0)) return false;
  const h = r.history;
  if (h && (h.lost > 0 || h.twice > 0 || h.stateDiffers > 0 || h.drainedInMs === null)) return false;
  const rec = worstRecovery(r);
  if (rec === null || (rec !== undefined && rec > ctx.recoveryLimitMs)) return false;
  return r.target?.ok ?? true;
}

const header = [
  'scenario',
  'messages',
  'lost',
  'twice',
  'SMS 0/2+',
  'SMS+RCS',
  'wrong',
  'stuck',
  'failed',
  'arch lost',
  'arch twice',
  'arch state',
  'recover s',
  'target',
  'ok',
];
const table = rows.map((r) => {
  const v = r.verdict;
  const rec = worstRecovery(r);
  const cell = (k: (typeof BAD)[number]): string => (v ? String(v[k]) : '–');
  return [
    r.scenario,
    v ? String(v.messages) : '–',
    cell('lost'),
    cell('twice'),
    cell('smsBad'),
    cell('smsNotDue'),
    cell('wrong'),
    cell('stuck'),
    cell('failed'),
    r.history ? String(r.history.lost) : '–',
    r.history ? String(r.history.twice) : '–',
    r.history ? String(r.history.stateDiffers) : '–',
    rec === undefined ? '–' : rec === null ? 'never' : (rec / 1000).toFixed(1),
    r.target ? (r.target.ok ? 'met' : 'MISSED') : '–',
    ok(r) ? 'yes' : r.error ? 'ERROR' : 'NO',
  ];
});
const widths = header.map((h, i) => Math.max(h.length, ...table.map((row) => row[i]!.length)));
const line = (cells: string[]): string =>
  `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
const out: string[] = [];
out.push(
  `chaos run ${new Date().toISOString()}, scale ${scale}, lock/stalled ${process.env.CHAOS_LOCK_MS ?? 'default'}/${process.env.CHAOS_STALLED_MS ?? 'default'} ms, settle ≤ ${ctx.settleMs / 1000} s`,
);
out.push('');
out.push(line(header));
out.push(`|${widths.map((w, i) => (i === 0 ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|`);
for (const r of table) out.push(line(r));
out.push('');
for (const r of rows) {
  out.push(`${r.scenario} (${r.seconds} s, logs ${r.logs}):`);
  if (r.error) out.push(`  ERROR: ${r.error}`);
  for (const n of r.notes) out.push(`  - ${n}`);
  if (r.target) out.push(`  - target: ${r.target.text}`);
  for (const x of r.recoveries)
    out.push(
      `  - recovery ${x.what}: ${x.ms === null ? 'NOT within 120 s' : `${(x.ms / 1000).toFixed(1)} s`} (${x.inFlight} in flight)${x.left?.length ? ` left: ${x.left.join(', ')}` : ''}`,
    );
  if (r.verdict) {
    out.push(
      `  - final states: ${Object.entries(r.verdict.byState)
        .map(([k, n]) => `${k} ${n}`)
        .join(
          ', ',
        )}${r.verdict.settledInMs === null ? ' (did not settle)' : `; settled ${(r.verdict.settledInMs / 1000).toFixed(0)} s after the traffic`}`,
    );
    for (const [col, list] of Object.entries(r.verdict.examples)) out.push(`  - ${col}: ${list.join('; ')}`);
  }
  for (const [col, list] of Object.entries(r.history?.examples ?? {})) out.push(`  - ${col}: ${list.join('; ')}`);
}
console.log(out.join('\n'));

const dir = join(ROOT, 'test/chaos/results');
await mkdir(dir, { recursive: true });
const file = join(dir, only.length || scale !== 1 ? 'partial.json' : 'latest.json');
await writeFile(
  file,
  `${JSON.stringify({ at: new Date().toISOString(), scale, node: process.version, settleMs: ctx.settleMs, lockMs: process.env.CHAOS_LOCK_MS ?? 'default', stalledMs: process.env.CHAOS_STALLED_MS ?? 'default', rows: rows.map((r) => ({ ...r, ok: ok(r) })) }, null, 2)}\n`,
);
console.error(`chaos: results in ${file}`);
process.exit(rows.every(ok) ? 0 : 1);
