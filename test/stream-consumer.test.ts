/**
 * The stream consumer's loop under a Redis that answers errors: it neither
 * dies (the stream would go unread until a restart) nor spins on the error;
 * once the stream is usable again it reads and handles entries.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { createRedis } from '../src/queue/connection.ts';
import { startStreamConsumer } from '../src/queue/inbound-stream.ts';
import { startRedisServer, stopAll } from './redis-servers.ts';

afterAll(stopAll);

const calls = async (redis: Redis, command: string) =>
  Number(
    /calls=(\d+)/.exec((await redis.info('commandstats')).split('\n').find((l) => l.startsWith(`cmdstat_${command}:`)) ?? '')?.[1] ?? 0,
  );

describe('the stream consumer', () => {
  it('backs off while every call fails, logs a few lines, and resumes when the stream is readable', async () => {
    const server = await startRedisServer();
    const admin = new Redis(server.url);
    // Not a stream: XGROUP CREATE answers WRONGTYPE, every time.
    await admin.set('s', 'not a stream');
    const lines: string[] = [];
    const log = { error: (_: object, msg?: string) => void lines.push(msg ?? ''), warn: () => {}, info: () => {}, debug: () => {} };
    let handled: (event: unknown) => void = () => {};
    const got = new Promise<unknown>((resolve) => (handled = resolve));
    const [blocking, redis] = [createRedis(server.url, 'worker'), createRedis(server.url, 'worker')];
    const consumer = startStreamConsumer({
      stream: 's',
      group: 'g',
      blocking,
      redis,
      handler: async (event) => {
        handled(event);
        return { outcome: 'handled' };
      },
      concurrency: 4,
      claimIdleMs: 1000,
      retryLater: async () => {},
      log,
    });
    await new Promise((r) => setTimeout(r, 1500)); // the measured window
    const tries = await calls(admin, 'xgroup|create');
    // Backoff of 50 ms doubling to 2 s: about 5 tries in 1.5 s; a spinning loop makes thousands, a dead one 1.
    expect(tries).toBeGreaterThanOrEqual(2);
    expect(tries).toBeLessThanOrEqual(10);
    expect(lines.length).toBeLessThanOrEqual(3);
    expect(lines[0]).toBe('stream consumer error; retrying');

    await admin.del('s');
    await admin.xadd('s', '*', 'e', JSON.stringify({ hello: 'again' }));
    expect(await got).toEqual({ hello: 'again' });
    await consumer.close();
    await Promise.all([redis.quit(), admin.quit()]);
  });
});
