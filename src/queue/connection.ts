/**
 * Redis connections in their two roles (STYLE.md habit 7): a producer fails
 * fast when Redis is gone, so an HTTP caller hears it at once; a worker waits
 * and reconnects forever, because BullMQ's blocking calls need that.
 */
import { Redis } from 'ioredis';

export type RedisRole = 'producer' | 'worker';

export function createRedis(url: string, role: RedisRole): Redis {
  return new Redis(url, {
    lazyConnect: false,
    ...(role === 'worker'
      ? { maxRetriesPerRequest: null, enableReadyCheck: false }
      : {
          maxRetriesPerRequest: 1,
          enableOfflineQueue: false,
          connectTimeout: 5000,
          // Commands issued in the same tick go out in one write: under load (a
          // webhook per request, a status read per call) that saves a syscall each.
          enableAutoPipelining: true,
        }),
  });
}

/** Resolves once the connection is ready, so a producer's first call is not refused. */
export async function whenReady(redis: Redis): Promise<void> {
  if (redis.status === 'ready') return;
  await new Promise<void>((resolve, reject) => {
    const onReady = () => {
      redis.off('error', onError);
      resolve();
    };
    const onError = (err: Error) => {
      redis.off('ready', onReady);
      reject(err);
    };
    redis.once('ready', onReady);
    redis.once('error', onError);
  });
}
