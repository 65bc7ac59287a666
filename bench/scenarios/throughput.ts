/**
 * Dispatch throughput: 50,000 queued messages drained by rbm-dispatch beside
 * the bare ceiling, a plain BullMQ worker POSTing the same body to the same
 * emulator with no validation, status or limiter.
 */
import { Queue, Worker } from 'bullmq';
import { Pool } from 'undici';
import { createRedis, whenReady } from '../../src/queue/connection.ts';
import { createTokenSource, loadServiceAccountKey } from '../../src/rbm/auth.ts';
import { benchService, completions, deleteKeys, bareAddBulk, typicalMessage, type EmulatorProcess } from '../lib.ts';

export interface ThroughputResult {
  latencyMs: number;
  concurrency: number;
  messages: number;
  /** Medians over the rounds; each round runs bare then rbm-dispatch back to back. */
  bareJobsPerSec: number;
  dispatchJobsPerSec: number;
  /** Median of the per-round ratios: machine drift between rounds cancels. */
  ratio: number;
  rounds: Array<{ bare: number; dispatch: number }>;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function bare(emu: EmulatorProcess, redisUrl: string, n: number, concurrency: number): Promise<number> {
  const prefix = 'bench-bare';
  const connection = createRedis(redisUrl, 'worker');
  await whenReady(connection);
  const queue = new Queue('bare', { connection, prefix });
  await bareAddBulk(
    queue,
    Array.from({ length: n }, (_, i) => typicalMessage(i)),
    'bare-agent',
  );
  const token = await createTokenSource(await loadServiceAccountKey(emu.keyFile)).getToken();
  const pool = new Pool(emu.url, { connections: concurrency, keepAliveTimeout: 30_000 });
  const start = Date.now();
  const worker = new Worker(
    'bare',
    async (job) => {
      const { to, messageId, agentId, message } = job.data;
      const res = await pool.request({
        method: 'POST',
        path: `/v1/phones/${to}/agentMessages?messageId=${messageId}&agentId=${agentId}`,
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify(message),
      });
      await res.body.text();
      if (res.statusCode !== 200) throw new Error(`status ${res.statusCode}`);
    },
    { connection, prefix, concurrency, removeOnComplete: { count: 1000 }, removeOnFail: { count: 1000 } },
  );
  const end = await completions(worker, n);
  await worker.close();
  await queue.close();
  await pool.close();
  await deleteKeys(connection, `${prefix}:*`);
  await connection.quit();
  return (n / (end - start)) * 1000;
}

async function dispatch(emu: EmulatorProcess, redisUrl: string, n: number, concurrency: number): Promise<number> {
  const prefix = 'bench-dispatch';
  const { service, close } = await benchService(emu, redisUrl, {
    QUEUE_PREFIX: prefix,
    RBM_AGENTS: 'bench-agent:100000',
    DISPATCH_CONCURRENCY: String(concurrency),
  });
  await service.producer.sendMessages(Array.from({ length: n }, (_, i) => typicalMessage(i)));
  const start = Date.now();
  const d = service.startDispatch();
  const end = await completions(d.workers[0]!.worker, n);
  await deleteKeys(service.redis.producer, `${prefix}:*`);
  await close();
  return (n / (end - start)) * 1000;
}

export async function throughput(
  emu: EmulatorProcess,
  redisUrl: string,
  opts: { latencyMs: number; concurrency: number; messages: number; rounds: number },
): Promise<ThroughputResult> {
  const rounds: Array<{ bare: number; dispatch: number }> = [];
  // A warm-up round (JIT, connections, Lua scripts, the emulator), small and not counted.
  for (const warm of [true, ...Array.from({ length: opts.rounds }, () => false)]) {
    const n = warm ? Math.min(5000, opts.messages) : opts.messages;
    await emu.control('/reset', 'POST');
    await emu.control('/faults', 'PUT', { latencyMs: opts.latencyMs });
    const bareRate = await bare(emu, redisUrl, n, opts.concurrency);
    await emu.control('/reset', 'POST');
    await emu.control('/faults', 'PUT', { latencyMs: opts.latencyMs });
    const dispatchRate = await dispatch(emu, redisUrl, n, opts.concurrency);
    const counters = await emu.control('/counters');
    if (counters.messagesAccepted !== n) throw new Error(`emulator accepted ${counters.messagesAccepted} of ${n}`);
    if (!warm) rounds.push({ bare: bareRate, dispatch: dispatchRate });
  }
  await emu.control('/reset', 'POST');
  return {
    latencyMs: opts.latencyMs,
    concurrency: opts.concurrency,
    messages: opts.messages,
    bareJobsPerSec: median(rounds.map((r) => r.bare)),
    dispatchJobsPerSec: median(rounds.map((r) => r.dispatch)),
    ratio: median(rounds.map((r) => r.dispatch / r.bare)),
    rounds,
  };
}
