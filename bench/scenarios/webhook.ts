/**
 * Webhook intake: signed RBM webhooks per second answered 200 and queued,
 * beside a bare Fastify route that only answers 200, both loaded by the same
 * generator (its own process) with unique signed envelopes; then the intake
 * at half its measured maximum for its p99 latency.
 */
import { spawn } from 'node:child_process';
import Fastify from 'fastify';
import { buildApi } from '../../src/api/app.ts';
import { createRedis, whenReady } from '../../src/queue/connection.ts';
import { StreamInboundIntake } from '../../src/queue/inbound-stream.ts';
import { intakeStreamKey } from '../../src/status/store.ts';
import { newWebhookCounters } from '../../src/webhook/receiver.ts';
import { deleteKeys } from '../lib.ts';

export interface LoadResult {
  requestsPerSec: number;
  total: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  p50: number;
  p99: number;
  max: number;
}

export interface WebhookResult {
  connections: number;
  durationSec: number;
  /** Each round: the bare route, then the intake at full load, then the intake at half its measured maximum. */
  rounds: Array<{ bare: LoadResult; intake: LoadResult; intakeQueued: number; halfRate: number; atHalf: LoadResult }>;
  /** Medians over the rounds. */
  bareRequestsPerSec: number;
  intakeRequestsPerSec: number;
  ratio: number;
  halfRate: number;
  p99AtHalf: number;
  p50AtHalf: number;
  /** Every round: no errors, no non-2xx, and every answered request queued. */
  clean: boolean;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const TOKEN = 'bench-client-token-000000000001';

function load(url: string, opts: { connections: number; durationSec: number; rate?: number }): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', 'bench/load/webhook-load.ts', JSON.stringify({ url, token: TOKEN, ...opts })],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.once('exit', (code) =>
      code === 0 ? resolve(JSON.parse(out) as LoadResult) : reject(new Error(`load generator exited with ${code}`)),
    );
  });
}

async function round(redisUrl: string, opts: { connections: number; durationSec: number }): Promise<WebhookResult['rounds'][number]> {
  const prefix = 'bench-webhook';
  const bareApp = Fastify();
  bareApp.post('/webhooks/rbm', async (_request, reply) => reply.code(200).send());
  const bareUrl = await bareApp.listen({ port: 0, host: '127.0.0.1' });
  const bare = await load(`${bareUrl}/webhooks/rbm`, opts);
  await bareApp.close();

  const redis = createRedis(redisUrl, 'producer');
  await whenReady(redis);
  await deleteKeys(redis, `${prefix}:*`);
  const intake = new StreamInboundIntake(redis, { prefix, dedupeTtlMs: 3_600_000 });
  const app = buildApi({
    producer: undefined as never, // the API routes are not loaded here
    apiKeys: [],
    openWithoutKeys: false,
    webhook: { clientTokens: { 'bench-agent': TOKEN }, intake, bodyLimitBytes: 1024 * 1024, counters: newWebhookCounters() },
  });
  const url = `${await app.listen({ port: 0, host: '127.0.0.1' })}/webhooks/rbm`;
  const intakeRun = await load(url, opts);
  const intakeQueued = await redis.xlen(intakeStreamKey(prefix));
  await deleteKeys(redis, `${prefix}:*`);
  const halfRate = Math.floor(intakeRun.requestsPerSec / 2);
  const atHalf = await load(url, { ...opts, rate: halfRate });
  await app.close();
  await deleteKeys(redis, `${prefix}:*`);
  await redis.quit();
  return { bare, intake: intakeRun, intakeQueued, halfRate, atHalf };
}

export async function webhook(
  redisUrl: string,
  opts: { connections: number; durationSec: number; rounds: number },
): Promise<WebhookResult> {
  const rounds: WebhookResult['rounds'] = [];
  for (let i = 0; i < opts.rounds; i++) rounds.push(await round(redisUrl, opts));
  // autocannon's total leaves out requests in flight when it stops (at most one per connection); those were queued too.
  const clean = rounds.every(
    (r) =>
      r.intake.non2xx === 0 &&
      r.intake.errors === 0 &&
      r.atHalf.non2xx === 0 &&
      r.intakeQueued >= r.intake.total &&
      r.intakeQueued <= r.intake.total + opts.connections,
  );
  return {
    connections: opts.connections,
    durationSec: opts.durationSec,
    rounds,
    bareRequestsPerSec: median(rounds.map((r) => r.bare.requestsPerSec)),
    intakeRequestsPerSec: median(rounds.map((r) => r.intake.requestsPerSec)),
    ratio: median(rounds.map((r) => r.intake.requestsPerSec / r.bare.requestsPerSec)),
    halfRate: median(rounds.map((r) => r.halfRate)),
    p99AtHalf: median(rounds.map((r) => r.atHalf.p99)),
    p50AtHalf: median(rounds.map((r) => r.atHalf.p50)),
    clean,
  };
}
