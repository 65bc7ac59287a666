/**
 * Bulk enqueue: the library's sendMessages (validation, IDs, status records)
 * beside bare addBulk of the same jobs, same chunking (500 a call, 4 in flight).
 */
import { Queue } from 'bullmq';
import { createRedis, whenReady } from '../../src/queue/connection.ts';
import { benchService, deleteKeys, bareAddBulk, typicalMessage, type EmulatorProcess } from '../lib.ts';

export interface EnqueueResult {
  messages: number;
  rounds: number;
  bareMsgsPerSec: number;
  libraryMsgsPerSec: number;
  /** Median of the per-round ratios: each round pairs the two back to back, so machine drift cancels. */
  ratio: number;
}

/** Start each timed phase from a clean heap, so neither side pays for the other's garbage. */
const settle = () => (globalThis as { gc?: () => void }).gc?.();

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export async function enqueue(emu: EmulatorProcess, redisUrl: string, opts: { messages: number; rounds: number }): Promise<EnqueueResult> {
  const n = opts.messages;
  const inputs = Array.from({ length: n }, (_, i) => typicalMessage(i));
  const connection = createRedis(redisUrl, 'producer');
  await whenReady(connection);
  const bareQueue = new Queue('bare', { connection, prefix: 'bench-enq-bare' });
  const { service, close } = await benchService(emu, redisUrl, { QUEUE_PREFIX: 'bench-enq', RBM_AGENTS: 'bench-agent:100000' });
  const bare: number[] = [];
  const library: number[] = [];
  const ratios: number[] = [];
  // Round 0 warms the JIT and connections and is not counted.
  for (let round = 0; round <= opts.rounds; round++) {
    settle();
    let start = performance.now();
    await bareAddBulk(bareQueue, inputs, 'bench-agent', {
      priority: 2,
      attempts: 8,
      backoff: { type: 'exponential', delay: 1000, jitter: 0.5 },
    });
    const bareRate = (n / (performance.now() - start)) * 1000;
    await deleteKeys(connection, 'bench-enq-bare:*');

    settle();
    start = performance.now();
    await service.producer.sendMessages(inputs);
    const libraryRate = (n / (performance.now() - start)) * 1000;
    await deleteKeys(connection, 'bench-enq:*');
    if (round === 0) continue;
    bare.push(bareRate);
    library.push(libraryRate);
    ratios.push(libraryRate / bareRate);
  }
  await bareQueue.close();
  await close();
  await connection.quit();
  const bareMsgsPerSec = median(bare);
  const libraryMsgsPerSec = median(library);
  return { messages: n, rounds: opts.rounds, bareMsgsPerSec, libraryMsgsPerSec, ratio: median(ratios) };
}
