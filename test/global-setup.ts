/**
 * Once per test run: a Redis to test against, REDIS_URL's or the local one,
 * or a redis-server of our own (the same rule as npm start).
 */
import type { TestProject } from 'vitest/node';
import { ensureRedis } from '../src/queue/local-redis.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    redisUrl: string;
  }
}

export default async function setup(project: TestProject) {
  const redis = await ensureRedis(process.env.REDIS_URL, { port: 6379, dataDir: '.data/redis-test' });
  project.provide('redisUrl', redis.url);
  return async () => {
    await redis.stop?.();
  };
}
