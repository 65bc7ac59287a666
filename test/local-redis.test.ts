/** npm start and npm test need nothing else: a redis-server of our own when none answers. */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ensureRedis, redisAnswers } from '../src/queue/local-redis.ts';
import { freePort } from './helpers.ts';

describe('ensureRedis', () => {
  it('uses REDIS_URL as given', async () => {
    expect(await ensureRedis('redis://cache.internal:6380')).toEqual({ url: 'redis://cache.internal:6380', startedHere: false });
  });

  it('starts a redis-server of its own when nothing answers, and stops it', async () => {
    const port = await freePort();
    expect(await redisAnswers('127.0.0.1', port)).toBe(false);
    const lines: string[] = [];
    const redis = await ensureRedis(undefined, { port, dataDir: await mkdtemp(join(tmpdir(), 'rbm-redis-')), log: (l) => lines.push(l) });
    expect(redis).toMatchObject({ url: `redis://127.0.0.1:${port}`, startedHere: true });
    expect(lines[0]).toContain('starting redis-server of our own');
    expect(await redisAnswers('127.0.0.1', port)).toBe(true);
    await redis.stop!();
    expect(await redisAnswers('127.0.0.1', port)).toBe(false);
  });

  it('says how to install one when no redis-server exists', async () => {
    const port = await freePort();
    const path = process.env.PATH;
    process.env.PATH = '/nonexistent';
    try {
      await expect(ensureRedis(undefined, { port, dataDir: await mkdtemp(join(tmpdir(), 'rbm-redis-')), log: () => {} })).rejects.toThrow(
        /apt-get install redis-server/,
      );
    } finally {
      process.env.PATH = path;
    }
  });
});
