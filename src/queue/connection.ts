/**
 * Redis connections in their two roles (STYLE.md habit 7): a producer fails
 * fast when Redis is gone, so an HTTP caller hears it at once; a worker waits
 * and reconnects forever, because BullMQ's blocking calls need that.
 *
 * Both reconnect with capped exponential backoff and jitter: a dead Redis
 * costs each connection a try every 2 s at most, and the many connections of
 * a fleet (BullMQ duplicates ours, which keeps this strategy) do not come
 * back in lockstep when it returns.
 */
import { Cluster, Redis } from 'ioredis';
import { throttled, type LineLogger } from '../log-throttle.ts';
import { clusterAuth, clusterStartupNodes } from './preflight.ts';

/** Where Redis is: a URL (one node), or the seed nodes of a Redis Cluster (REDIS_CLUSTER_NODES). */
export type RedisEndpoint = string | { clusterNodes: readonly string[] };

export type RedisRole = 'producer' | 'worker';

const RECONNECT_BASE_MS = 50;
/** The longest wait between two tries: how late after Redis returns a connection notices, at worst. */
export const RECONNECT_MAX_MS = 2000;

/** The delay before reconnect try `attempt` (1, 2, …): 50 ms doubling to 2 s, the upper half of it random. */
export function reconnectDelay(attempt: number, random: () => number = Math.random): number {
  const ceiling = Math.min(RECONNECT_MAX_MS, RECONNECT_BASE_MS * 2 ** Math.min(attempt - 1, 16));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

/**
 * With `log`, connection errors are logged, throttled (without a listener ioredis prints every one to stderr).
 * A Cluster endpoint gives an ioredis Cluster with the same roles. It is typed as Redis: the two share every
 * command, defineCommand, duplicate() and the events we use, and BullMQ takes either; every key of one script
 * shares the prefix's hash tag (config.ts requires braces in cluster mode), so no call crosses slots.
 */
export function createRedis(endpoint: RedisEndpoint, role: RedisRole, log?: LineLogger): Redis {
  const roleOptions =
    role === 'worker'
      ? { maxRetriesPerRequest: null, enableReadyCheck: false }
      : {
          maxRetriesPerRequest: 1,
          enableOfflineQueue: false,
          connectTimeout: 5000,
          // Commands issued in the same tick go out in one write: under load (a
          // webhook per request, a status read per call) that saves a syscall each.
          enableAutoPipelining: true,
        };
  const redis =
    typeof endpoint === 'string'
      ? new Redis(endpoint, { lazyConnect: false, retryStrategy: reconnectDelay, ...roleOptions })
      : clusterOf(endpoint.clusterNodes, roleOptions);
  if (log) redis.on('error', (err: Error) => throttled(log).error('redis connection error', err, role));
  return redis;
}

function clusterOf(nodes: readonly string[], roleOptions: Record<string, unknown>): Redis {
  const { enableOfflineQueue, enableAutoPipelining, enableReadyCheck, ...perNode } = roleOptions;
  const cluster = new Cluster(clusterStartupNodes(nodes), {
    clusterRetryStrategy: (times: number) => reconnectDelay(times),
    ...(enableOfflineQueue === false ? { enableOfflineQueue: false } : {}),
    ...(enableAutoPipelining ? { enableAutoPipelining: true } : {}),
    ...(enableReadyCheck === false ? { enableReadyCheck: false } : {}),
    // Masters only: a replica may lag, and the queues need what was just written.
    scaleReads: 'master',
    redisOptions: { ...clusterAuth(nodes), ...perNode } as never,
  });
  return cluster as unknown as Redis;
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

/**
 * The Redis connections this process holds open: ours, and every duplicate
 * made of them (BullMQ makes one per worker for its blocking fetch, the
 * stream consumers one each). A connection counts from its creation until it
 * ends for good ('end': closed, no reconnect left). Reported per dispatch
 * process (membership.ts), so an operator sees the cost of the agents it serves.
 */
export class ConnectionCount {
  private live = 0;

  get value(): number {
    return this.live;
  }

  /** Counts `redis` and, through its duplicate(), every connection made from it. */
  track<R extends Redis>(redis: R): R {
    this.live++;
    redis.once('end', () => this.live--);
    const duplicate = redis.duplicate.bind(redis);
    redis.duplicate = ((...args: Parameters<Redis['duplicate']>) => this.track(duplicate(...args))) as Redis['duplicate'];
    return redis;
  }
}
