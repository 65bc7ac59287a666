/**
 * `report`: the deliveries report (GET /v1/reports/deliveries) as a table,
 * or with --csv the range's messages as CSV (?format=csv), streamed to a
 * file (written as <file>.part, renamed once whole) or to stdout (`-`).
 */
import { createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import type { DeliveriesReport, ReportQuery } from '../api-client.ts';
import type { Register } from '../context.ts';
import { ExitCodes } from '../errors.ts';

const GROUPS = ['day', 'agent', 'trafficType', 'state', 'fallbackReason', 'batch'];

const pct = (rate: number) => `${(rate * 100).toFixed(1)}%`;
const ms = (v: number | null) => (v === null ? '-' : `${Math.round(v)}ms`);

/** The report as aligned text columns, a header first. */
export function reportTable(report: DeliveriesReport): string[] {
  const header = ['key', 'total', 'delivered', 'read', 'fellBack', 'failed', 'delivered%', 'read%', 'fallback%', 'p50', 'p95'];
  const rows = report.rows.map((r) => [
    r.key ?? '(none)',
    String(r.total),
    String(r.delivered),
    String(r.read),
    String(r.fellBack),
    String(r.failed),
    pct(r.deliveredRate),
    pct(r.readRate),
    pct(r.fallbackRate),
    ms(r.timeToDeliveredP50Ms),
    ms(r.timeToDeliveredP95Ms),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
      .join('  ')
      .trimEnd();
  const range = `${report.groupBy} from ${new Date(report.from).toISOString()} to ${new Date(report.to).toISOString()}`;
  return [
    range,
    line(header),
    ...(rows.length === 0 ? ['(no messages)'] : rows.map(line)),
    ...(report.truncated ? ['(truncated: more groups than the service answers; narrow the range or pick an agent)'] : []),
  ];
}

export const registerReport: Register = (program, run) => {
  program
    .command('report')
    .description('the deliveries report from the archive: counts and rates per group, or --csv the messages of the range')
    .option('--from <time>', 'start, inclusive: ms since the epoch or ISO 8601 (2025-01-31); default 30 days before --to')
    .option('--to <time>', 'end, exclusive: ms since the epoch or ISO 8601; default now')
    .option('--agent <agentId>', 'one agent (default: every agent of the API key)')
    .option('--group-by <group>', `one of ${GROUPS.join(', ')}`, 'day')
    .option('--csv <file>', "export the range's messages as CSV to <file> (- for stdout) instead of the table")
    .addHelpText('after', '\nThe range is at most 400 days. With --json: the report object.')
    .action((opts: { from?: string; to?: string; agent?: string; groupBy: string; csv?: string }, cmd) =>
      run(cmd, async ({ api, out }) => {
        const query: ReportQuery = { from: opts.from, to: opts.to, agentId: opts.agent };
        if (opts.csv === undefined) {
          const report = await api().getReport({ ...query, groupBy: opts.groupBy });
          out.result(report, reportTable(report));
          return ExitCodes.OK;
        }
        if (opts.csv === '-') {
          await api().exportReport(query, out.stdout, false);
          return ExitCodes.OK;
        }
        const part = `${opts.csv}.part`;
        try {
          await api().exportReport(query, createWriteStream(part), true);
        } catch (err) {
          await rm(part, { force: true });
          throw err;
        }
        await rename(part, opts.csv);
        out.note(`wrote ${opts.csv}`);
        return ExitCodes.OK;
      }),
    );
};
