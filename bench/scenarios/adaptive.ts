/**
 * The adaptive rate under a quota below the configured rate: the agent is
 * configured at 200/s, the emulator's token bucket allows 50/s (burst 200 ms),
 * and two dispatch processes (`workers/dispatch.ts` as child processes) drain
 * one backlog. Measured from the emulator's own counters: accepted sends over
 * the run against the quota, 429s as a share of calls after the first 10 s,
 * and, from the status records, attempts used up (a 429 must use none).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { outboundQueueName } from '../../jobs/index.ts';
import { ADAPTIVE_RATE_KEY_TYPE } from '../../src/queue/adaptive-rate.ts';
import { benchService, deleteKeys, typicalMessage, type EmulatorProcess } from '../lib.ts';

export interface AdaptiveResult {
  configuredPerSec: number;
  quotaPerSec: number;
  seconds: number;
  processes: number;
  accepted: number;
  acceptedPerSec: number;
  /** accepted / (quota × seconds). */
  quotaShare: number;
  /** 429s / calls from second 10 to the end. */
  rateLimitedShareAfter10s: number;
  rateLimited: number;
  /** Status records with more than one attempt, or FAILED. */
  attemptsBurned: number;
  /** The effective rate each second, and the emulator's accepts and 429s in it. */
  timeline: Array<{ second: number; rate: number; accepted: number; rateLimited: number }>;
}

const AGENT = 'adapt-agent';
const PREFIX = 'bench-adapt';

function startDispatcher(emu: EmulatorProcess, redisUrl: string, configured: number): { child: ChildProcess; up: Promise<void> } {
  const child = spawn(process.execPath, ['--import', 'tsx', 'workers/dispatch.ts'], {
    env: {
      ...process.env,
      REDIS_URL: redisUrl,
      QUEUE_PREFIX: PREFIX,
      RBM_ENDPOINT: emu.url,
      GOOGLE_APPLICATION_CREDENTIALS: emu.keyFile,
      RBM_AGENTS: `${AGENT}:${configured}`,
      LOG_LEVEL: 'info',
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const up = new Promise<void>((resolve, reject) => {
    let out = '';
    const onData = (d: Buffer) => {
      out += d.toString();
      if (out.includes('dispatch worker running')) {
        child.stdout!.off('data', onData);
        child.stdout!.resume(); // its 429 log lines are not read, but must not fill the pipe
        resolve();
      }
    };
    child.stdout!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`dispatch child exited with ${code}: ${out.slice(-300)}`)));
  });
  return { child, up };
}

const stop = (child: ChildProcess) =>
  new Promise<void>((done) => {
    if (child.exitCode !== null) return done();
    child.once('exit', () => done());
    child.kill('SIGTERM');
  });

export async function adaptive(
  emu: EmulatorProcess,
  redisUrl: string,
  opts: { configuredPerSec: number; quotaPerSec: number; seconds: number },
): Promise<AdaptiveResult> {
  await emu.control('/reset', 'POST');
  await emu.control(`/quotas/${AGENT}`, 'PUT', { ratePerSec: opts.quotaPerSec });
  const { service, close } = await benchService(emu, redisUrl, { QUEUE_PREFIX: PREFIX, RBM_AGENTS: `${AGENT}:${opts.configuredPerSec}` });
  const redis = service.redis.producer;
  // A rate learnt by an earlier run would skip the very convergence measured here.
  await deleteKeys(redis, `${PREFIX}:*`);
  // More than the quota can take in the run: the queue never runs dry.
  const backlog = Math.ceil(opts.quotaPerSec * opts.seconds * 1.3);
  const sent = await service.producer.sendMessages(Array.from({ length: backlog }, (_, i) => ({ ...typicalMessage(i), agentId: AGENT })));
  const rateKey = `${PREFIX}:${outboundQueueName(AGENT)}:${ADAPTIVE_RATE_KEY_TYPE}`;
  const counts = async () => {
    const c = (await emu.control('/counters')).perAgent[AGENT] ?? {};
    return { accepted: (c.accepted ?? 0) as number, rateLimited: (c.rateLimited ?? 0) as number };
  };

  const dispatchers = [startDispatcher(emu, redisUrl, opts.configuredPerSec), startDispatcher(emu, redisUrl, opts.configuredPerSec)];
  const timeline: AdaptiveResult['timeline'] = [];
  let start = { accepted: 0, rateLimited: 0 };
  let at10 = start;
  let end = start;
  try {
    await Promise.all(dispatchers.map((d) => d.up));
    const t0 = performance.now();
    start = await counts();
    let last = start;
    for (let second = 1; second <= opts.seconds; second++) {
      // Sampled on the second, against the run's start: a slow sample does not stretch the run.
      await new Promise((r) => setTimeout(r, Math.max(0, t0 + second * 1000 - performance.now())));
      const now = await counts();
      timeline.push({
        second,
        rate: Number((await redis.hget(rateKey, 'rate')) ?? NaN),
        accepted: now.accepted - last.accepted,
        rateLimited: now.rateLimited - last.rateLimited,
      });
      last = now;
      if (second === 10) at10 = now;
    }
    end = last;
  } finally {
    // SIGTERM: each finishes the sends in hand, so every status below is settled or waiting.
    await Promise.all(dispatchers.map((d) => stop(d.child)));
  }

  let attemptsBurned = 0;
  for (let i = 0; i < sent.length; i += 500) {
    const statuses = await Promise.all(sent.slice(i, i + 500).map((s) => service.producer.getStatus(s.messageId)));
    attemptsBurned += statuses.filter((s) => !s || s.attempts > 1 || s.state === 'FAILED').length;
  }
  await deleteKeys(redis, `${PREFIX}:*`);
  await close();
  await emu.control('/reset', 'POST');

  const accepted = end.accepted - start.accepted;
  const afterCalls = end.accepted - at10.accepted + (end.rateLimited - at10.rateLimited);
  return {
    configuredPerSec: opts.configuredPerSec,
    quotaPerSec: opts.quotaPerSec,
    seconds: opts.seconds,
    processes: dispatchers.length,
    accepted,
    acceptedPerSec: accepted / opts.seconds,
    quotaShare: accepted / (opts.quotaPerSec * opts.seconds),
    rateLimitedShareAfter10s: afterCalls === 0 ? 1 : (end.rateLimited - at10.rateLimited) / afterCalls,
    rateLimited: end.rateLimited - start.rateLimited,
    attemptsBurned,
    timeline,
  };
}
