/**
 * Once per test run: a Redis to test against, REDIS_URL's or the local one,
 * or a redis-server of our own (the same rule as npm start); and a Redis
 * Cluster: REDIS_CLUSTER_NODES's, or three local masters of our own.
 */
import type { TestProject } from 'vitest/node';
import { ensureRedis } from '../src/queue/local-redis.ts';
import { startLocalCluster } from '../src/queue/local-cluster.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    redisUrl: string;
    /** host:port,host:port,... of a Redis Cluster's masters. */
    redisClusterNodes: string;
  }
}

export default async function setup(project: TestProject) {
  const redis = await ensureRedis(process.env.REDIS_URL, { port: 6379, dataDir: '.data/redis-test' });
  project.provide('redisUrl', redis.url);
  const given = process.env.REDIS_CLUSTER_NODES;
  const cluster = given ? undefined : await startLocalCluster(3);
  project.provide('redisClusterNodes', given ?? cluster!.nodes.join(','));
  return async () => {
    await cluster?.stop();
    await redis.stop?.();
  };
}
