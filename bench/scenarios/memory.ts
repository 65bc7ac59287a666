/**
 * Redis memory per queued message: a queued job plus its status record,
 * beside a bare BullMQ job of the same payload, read from INFO used_memory.
 */
import { Queue } from 'bullmq';
import { createRedis, whenReady } from '../../src/queue/connection.ts';
import { benchService, deleteKeys, bareAddBulk, typicalMessage, usedMemory, type EmulatorProcess } from '../lib.ts';

export interface MemoryResult {
  messages: number;
  bytesPerMessage: number;
  bareBytesPerJob: number;
}

export async function memory(emu: EmulatorProcess, redisUrl: string, opts: { messages: number }): Promise<MemoryResult> {
  const n = opts.messages;
  const redis = createRedis(redisUrl, 'producer');
  await whenReady(redis);
  const { service, close } = await benchService(emu, redisUrl, { QUEUE_PREFIX: 'bench-mem', RBM_AGENTS: 'bench-agent:100000' });
  let before = await usedMemory(redis);
  await service.producer.sendMessages(Array.from({ length: n }, (_, i) => typicalMessage(i)));
  const bytesPerMessage = ((await usedMemory(redis)) - before) / n;
  await deleteKeys(redis, 'bench-mem:*');
  await close();

  const queue = new Queue('bare', { connection: redis, prefix: 'bench-mem-bare' });
  before = await usedMemory(redis);
  await bareAddBulk(
    queue,
    Array.from({ length: n }, (_, i) => typicalMessage(i)),
    'bench-agent',
  );
  const bareBytesPerJob = ((await usedMemory(redis)) - before) / n;
  await queue.close();
  await deleteKeys(redis, 'bench-mem-bare:*');
  await redis.quit();
  return { messages: n, bytesPerMessage, bareBytesPerJob };
}
