/**
 * A BullMQ Queue over one of the service's shared connections (the producer's
 * or the workers'). Its 'error' events are that connection's own errors,
 * which createRedis's listener already logs, throttled; a Queue with no
 * listener has BullMQ print each one with its stack to stderr instead (some
 * 400 lines in 3 s of a Redis outage under `npm start`, from ten such queues).
 */
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';

export function sharedQueue(name: string, connection: Redis, prefix: string): Queue {
  const queue = new Queue(name, { connection, prefix });
  queue.on('error', () => {});
  return queue;
}
