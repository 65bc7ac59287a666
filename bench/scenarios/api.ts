/**
 * API intake: messages per second accepted through POST /v1/messages:batch
 * and through single POST /v1/messages (the client in its own process),
 * beside the library's bulk enqueue, in paired rounds.
 */
import { spawn } from 'node:child_process';
import { buildApi } from '../../src/api/app.ts';
import { benchService, deleteKeys, typicalMessage, type EmulatorProcess } from '../lib.ts';

export interface ApiResult {
  messages: number;
  rounds: Array<{ library: number; batchApi: number; singleApi: number }>;
  libraryMsgsPerSec: number;
  batchApiMsgsPerSec: number;
  singleApiMsgsPerSec: number;
  /** Median of the rounds' batch-API / library ratios. */
  ratio: number;
  non2xx: number;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const settle = () => (globalThis as { gc?: () => void }).gc?.();

function client(url: string, total: number, batchSize: number, concurrency: number): Promise<{ messagesPerSec: number; non2xx: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', 'bench/load/api-load.ts', JSON.stringify({ url, total, batchSize, concurrency })],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.once('exit', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`API load client exited with ${code}`))));
  });
}

export async function apiIntake(
  emu: EmulatorProcess,
  redisUrl: string,
  opts: { messages: number; singles: number; rounds: number },
): Promise<ApiResult> {
  const prefix = 'bench-api';
  const { service, close } = await benchService(emu, redisUrl, { QUEUE_PREFIX: prefix, RBM_AGENTS: 'bench-agent:100000' });
  const app = buildApi({ producer: service.producer, apiKeys: [], openWithoutKeys: true });
  const url = await app.listen({ port: 0, host: '127.0.0.1' });
  const inputs = Array.from({ length: opts.messages }, (_, i) => typicalMessage(i));
  const rounds: ApiResult['rounds'] = [];
  let non2xx = 0;
  for (let round = 0; round <= opts.rounds; round++) {
    settle();
    const start = performance.now();
    await service.producer.sendMessages(inputs);
    const library = (opts.messages / (performance.now() - start)) * 1000;
    await deleteKeys(service.redis.producer, `${prefix}:*`);
    settle();
    const batch = await client(url, opts.messages, 1000, 4);
    await deleteKeys(service.redis.producer, `${prefix}:*`);
    const single = await client(url, opts.singles, 0, 64);
    await deleteKeys(service.redis.producer, `${prefix}:*`);
    non2xx += batch.non2xx + single.non2xx;
    // Round 0 warms the JIT, the connections and the client's start-up; it is not counted.
    if (round > 0) rounds.push({ library, batchApi: batch.messagesPerSec, singleApi: single.messagesPerSec });
  }
  await app.close();
  await close();
  return {
    messages: opts.messages,
    rounds,
    libraryMsgsPerSec: median(rounds.map((r) => r.library)),
    batchApiMsgsPerSec: median(rounds.map((r) => r.batchApi)),
    singleApiMsgsPerSec: median(rounds.map((r) => r.singleApi)),
    ratio: median(rounds.map((r) => r.batchApi / r.library)),
    non2xx,
  };
}
