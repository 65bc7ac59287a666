/**
 * `npm run bench`: every benchmark in one run on this machine, printed as a
 * table and written to bench/results/latest.json. Not part of `npm test`.
 * BENCH_QUICK=1 shrinks the sizes for a smoke run; BENCH_ONLY=enqueue,adaptive
 * runs only those (both write bench/results/partial.json instead).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus, totalmem } from 'node:os';
import { createRequire } from 'node:module';
import { createRedis, whenReady } from '../src/queue/connection.ts';
import { ensureRedis } from '../src/queue/local-redis.ts';
import { printTable, startEmulatorProcess, type Row } from './lib.ts';
import { adaptive } from './scenarios/adaptive.ts';
import { clusterBench } from './scenarios/cluster.ts';
import { apiIntake } from './scenarios/api.ts';
import { enqueue } from './scenarios/enqueue.ts';
import { limiter } from './scenarios/limiter.ts';
import { memory } from './scenarios/memory.ts';
import { archiverThroughput } from './scenarios/archiver.ts';
import { historyReport } from './scenarios/history-report.ts';
import { priority } from './scenarios/priority.ts';
import { throughput } from './scenarios/throughput.ts';
import { webhook } from './scenarios/webhook.ts';

const quick = process.env.BENCH_QUICK === '1';
const fmt = (n: number, unit = '') => `${Math.round(n).toLocaleString('en-US')}${unit}`;

const redis = await ensureRedis(process.env.REDIS_URL);
const emu = await startEmulatorProcess();
const info = createRedis(redis.url, 'producer');
await whenReady(info);
const redisVersion = /redis_version:(\S+)/.exec(await info.info('server'))![1];
await info.quit();
const log = (line: string) => process.stderr.write(`[bench] ${line}\n`);

const only = process.env.BENCH_ONLY?.split(',');
const want = (name: string) => !only || only.includes(name);

try {
  const rows: Row[] = [];
  const results: Record<string, unknown> = {};
  const messages = quick ? 5000 : 50_000;
  if (want('throughput')) {
    const runs = [];
    for (const [latencyMs, concurrency] of [
      [0, 200],
      [50, 400],
    ] as const) {
      log(`dispatch throughput, ${messages} messages, ${latencyMs} ms per RBM call...`);
      const r = await throughput(emu, redis.url, { latencyMs, concurrency, messages, rounds: quick ? 1 : 3 });
      runs.push(r);
      rows.push({
        benchmark: `dispatch ${fmt(messages)} msgs, ${latencyMs} ms RBM, c=${concurrency} (median of ${r.rounds.length})`,
        measured: fmt(r.dispatchJobsPerSec, '/s'),
        baseline: `${fmt(r.bareJobsPerSec, '/s')} bare`,
        ratio: r.ratio,
        target: '≥ 0.60',
        pass: r.ratio >= 0.6,
      });
    }
    results.throughput = runs;
  }
  if (want('enqueue')) {
    log('bulk enqueue...');
    const enq = await enqueue(emu, redis.url, { messages: quick ? 5000 : 20_000, rounds: quick ? 1 : 5 });
    results.enqueue = enq;
    rows.push({
      benchmark: `bulk enqueue ${fmt(enq.messages)} msgs (median of ${enq.rounds} paired rounds)`,
      measured: fmt(enq.libraryMsgsPerSec, '/s'),
      baseline: `${fmt(enq.bareMsgsPerSec, '/s')} addBulk`,
      ratio: enq.ratio,
      target: '≥ 0.80',
      pass: enq.ratio >= 0.8,
    });
  }
  if (want('api')) {
    log('API intake...');
    const api = await apiIntake(emu, redis.url, { messages: quick ? 5000 : 20_000, singles: quick ? 2000 : 5000, rounds: quick ? 1 : 3 });
    results.api = api;
    rows.push({
      benchmark: `API intake: POST /v1/messages:batch, 1,000 per call (median of ${api.rounds.length})`,
      measured: fmt(api.batchApiMsgsPerSec, '/s'),
      baseline: `${fmt(api.libraryMsgsPerSec, '/s')} library`,
      ratio: api.ratio,
      target: '≥ 0.70',
      pass: api.ratio >= 0.7 && api.non2xx === 0,
    });
    rows.push({
      benchmark: 'API intake: single POST /v1/messages, 64 in flight',
      measured: fmt(api.singleApiMsgsPerSec, '/s'),
      baseline: `${fmt(api.libraryMsgsPerSec, '/s')} library`,
      ratio: api.singleApiMsgsPerSec / api.libraryMsgsPerSec,
      target: 'reported',
      pass: api.non2xx === 0,
    });
  }
  if (want('limiter')) {
    log('limiter at 500/s...');
    const lim = await limiter(emu, redis.url, { ratePerSec: 500, seconds: quick ? 3 : 20 });
    results.limiter = lim;
    rows.push({
      benchmark: `limiter ${lim.ratePerSec}/s for ${lim.seconds} s, quota ${lim.ratePerSec}/s`,
      measured: `${lim.measuredPerSec.toFixed(1)}/s, ${lim.rateLimited} × 429`,
      baseline: `${lim.ratePerSec}/s`,
      ratio: lim.measuredPerSec / lim.ratePerSec,
      target: '±3 %, 0 × 429',
      pass: Math.abs(lim.deviation) <= 0.03 && lim.rateLimited === 0,
    });
  }
  if (want('adaptive')) {
    log('adaptive rate: configured 200/s, RBM quota 50/s, 2 dispatch processes...');
    const ad = await adaptive(emu, redis.url, { configuredPerSec: 200, quotaPerSec: 50, seconds: quick ? 20 : 60 });
    results.adaptive = ad;
    rows.push({
      benchmark: `adaptive rate: ${ad.configuredPerSec}/s configured, quota ${ad.quotaPerSec}/s, ${ad.processes} dispatch processes, ${ad.seconds} s`,
      measured: `${ad.acceptedPerSec.toFixed(1)}/s, ${(ad.rateLimitedShareAfter10s * 100).toFixed(1)} % 429 after 10 s, ${ad.attemptsBurned} attempts burned`,
      baseline: `${ad.quotaPerSec}/s quota`,
      ratio: ad.quotaShare,
      target: '≥ 0.80, ≤ 5 % 429, 0 burned',
      pass: ad.quotaShare >= 0.8 && ad.rateLimitedShareAfter10s <= 0.05 && ad.attemptsBurned === 0,
    });
  }
  if (want('priority')) {
    log('AUTHENTICATION through a PROMOTION backlog...');
    const prio = await priority(emu, redis.url, { backlog: quick ? 5000 : 20_000, ratePerSec: 1000, samples: quick ? 40 : 200 });
    results.priority = prio;
    rows.push({
      benchmark: `OTP into ${fmt(prio.backlog)} PROMOTION at ${fmt(prio.ratePerSec)}/s (${prio.samples} OTPs)`,
      measured: `p99 ${fmt(prio.p99Ms, ' ms')} (p50 ${fmt(prio.p50Ms)}, max ${fmt(prio.maxMs)})`,
      baseline: '',
      target: 'p99 < 250 ms, 0 × 429',
      pass: prio.p99Ms < 250 && prio.rateLimited === 0,
    });
  }
  if (want('webhook')) {
    log('webhook intake...');
    const wh = await webhook(redis.url, { connections: 64, durationSec: quick ? 3 : 8, rounds: quick ? 1 : 3 });
    results.webhook = wh;
    rows.push({
      benchmark: `webhook intake, signed, ${wh.connections} conns (median of ${wh.rounds.length})`,
      measured: fmt(wh.intakeRequestsPerSec, '/s'),
      baseline: `${fmt(wh.bareRequestsPerSec, '/s')} bare route`,
      ratio: wh.ratio,
      target: '≥ 0.50, all queued',
      pass: wh.ratio >= 0.5 && wh.clean,
    });
    rows.push({
      benchmark: `webhook intake at half its max (${fmt(wh.halfRate)}/s)`,
      measured: `p99 ${wh.p99AtHalf} ms (p50 ${wh.p50AtHalf})`,
      baseline: '',
      target: 'p99 < 20 ms',
      pass: wh.p99AtHalf < 20 && wh.clean,
    });
  }
  if (want('memory')) {
    log('Redis memory per queued message...');
    const mem = await memory(emu, redis.url, { messages: quick ? 5000 : 20_000 });
    results.memory = mem;
    rows.push({
      benchmark: `Redis memory per queued message (${fmt(mem.messages)})`,
      measured: fmt(mem.bytesPerMessage, ' B'),
      baseline: `${fmt(mem.bareBytesPerJob, ' B')} bare job`,
      ratio: mem.bytesPerMessage / mem.bareBytesPerJob,
      target: 'reported',
      pass: true,
    });
  }
  if (want('archiver')) {
    log('archiver: the history feed to PostgreSQL...');
    const arch = await archiverThroughput(redis.url, { messages: quick ? 5000 : 50_000 });
    results.archiver = arch;
    // Beside the dispatch rate of this run (0 ms RBM), when it ran: the archive must keep up with what dispatch makes.
    const dispatchRate = (results.throughput as Array<{ dispatchJobsPerSec: number }> | undefined)?.[0]?.dispatchJobsPerSec;
    rows.push({
      benchmark: `archiver: ${fmt(arch.changes)} changes (${fmt(arch.messages)} msgs × 5) to PostgreSQL, 1 process`,
      measured: `${fmt(arch.changesPerSec, '/s')} (${fmt(arch.messagesPerSec, ' msgs/s')})`,
      baseline: dispatchRate ? `${fmt(dispatchRate, ' msgs/s')} dispatch` : '',
      ...(dispatchRate ? { ratio: arch.changesPerSec / dispatchRate } : {}),
      target: '≥ 2 × dispatch',
      pass: dispatchRate === undefined || arch.changesPerSec >= 2 * dispatchRate,
    });
    rows.push({
      benchmark: 'Redis bytes per settled message after the hot window (tombstone)',
      measured: fmt(arch.redisBytesPerEvictedMessage, ' B'),
      baseline: `${fmt(arch.redisBytesPerSettledMessage, ' B')} in the hot window`,
      ratio: arch.redisBytesPerEvictedMessage / arch.redisBytesPerSettledMessage,
      target: '≤ 120 B',
      pass: arch.redisBytesPerEvictedMessage <= 120,
    });
    rows.push({
      benchmark: 'evictor: settled records out of Redis, 1 process',
      measured: fmt(arch.evictedPerSec, ' msgs/s'),
      baseline: `${fmt(arch.messagesPerSec, ' msgs/s')} archived`,
      ratio: arch.evictedPerSec / arch.messagesPerSec,
      target: 'reported',
      pass: true,
    });
  }
  if (want('history')) {
    log('history: the deliveries report over generated rows...');
    const hr = await historyReport({ rows: quick ? 200_000 : 10_000_000, log });
    results.historyReport = hr;
    rows.push({
      benchmark: `deliveries report, 1 agent × 30 days × day, over ${fmt(hr.rows)} rows (${hr.runs} runs)`,
      measured: `p95 ${fmt(hr.p95Ms, ' ms')} (p50 ${fmt(hr.p50Ms)})`,
      baseline: `${fmt(hr.bytesPerMessage, ' B')}/msg in PostgreSQL`,
      target: 'p95 < 500 ms',
      pass: hr.p95Ms < 500,
    });
  }
  if (want('cluster')) {
    log('Redis Cluster (3 local masters) beside one node: throughput, Redis time per message, spread, idle CPU...');
    const cl = await clusterBench(emu, redis.url, {
      messages: quick ? 5000 : 20_000,
      rounds: quick ? 1 : 3,
      idleAgents: quick ? 200 : 1000,
      idleSeconds: quick ? 5 : 20,
    });
    results.cluster = cl;
    rows.push(
      {
        benchmark: `dispatch on a 3-master cluster vs one node, ${fmt(cl.messages)} msgs, 1 agent (median of ${cl.rounds.length})`,
        measured: fmt(cl.cluster.jobsPerSec, '/s'),
        baseline: `${fmt(cl.single.jobsPerSec, '/s')} single`,
        ratio: cl.ratio,
        target: '≥ 0.90',
        pass: cl.ratio >= 0.9,
      },
      {
        benchmark: 'Redis CPU per message (INFO cpu; calls from commandstats), enqueue + send, cluster vs single',
        measured: `${cl.cluster.usPerMsg.toFixed(0)} µs (${cl.cluster.callsPerMsg.toFixed(1)} calls)`,
        baseline: `${cl.single.usPerMsg.toFixed(0)} µs (${cl.single.callsPerMsg.toFixed(1)} calls) single`,
        target: 'reported',
        pass: true,
      },
      {
        benchmark: `spread of Redis calls over 3 masters, ${cl.spread.agents} agents`,
        measured: `${cl.spread.callsPerMaster.map((c) => fmt(c)).join(' / ')}`,
        baseline: `max ${(cl.spread.maxDeviation * 100).toFixed(0)} % off the mean`,
        target: 'each within ±15 %',
        pass: cl.spread.maxDeviation <= 0.15,
      },
      {
        benchmark: `idle Redis CPU, ${fmt(cl.idle.agents)} agents served, no traffic (${cl.idle.seconds} s)`,
        measured: `${cl.idle.clusterCpuPct.toFixed(1)} % cluster`,
        baseline: `${cl.idle.singleCpuPct.toFixed(1)} % single`,
        target: 'reported',
        pass: true,
      },
    );
  }
  const table = printTable(rows);
  const machine = {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    redis: redisVersion,
    bullmq: (createRequire(import.meta.url)('bullmq/package.json') as { version: string }).version,
  };
  const date = new Date().toISOString();
  process.stdout.write(
    `\nrbm-dispatch benchmarks, ${date}, ${machine.cpus} × ${machine.cpuModel}, Node ${machine.node}, Redis ${machine.redis}, bullmq ${machine.bullmq}${quick ? ' (QUICK)' : ''}\n\n${table}\n`,
  );
  await mkdir('bench/results', { recursive: true });
  const out = quick || only ? 'bench/results/partial.json' : 'bench/results/latest.json';
  await writeFile(out, `${JSON.stringify({ date, quick, machine, only: only ?? null, results, rows }, null, 2)}\n`);
  process.stdout.write(`\nwritten to ${out}\n`);
  process.exitCode = rows.every((r) => r.pass) ? 0 : 1;
} finally {
  await emu.stop();
  await redis.stop?.();
}
