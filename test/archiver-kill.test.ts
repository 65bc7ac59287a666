/**
 * Issue 11's kill test: an archiver killed (SIGKILL) in the middle of its
 * batches, then started again, loses and duplicates nothing. Real processes,
 * a real Redis and a fresh database on the local PostgreSQL: every message's
 * archived timeline is counted against the one Redis holds.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import postgres from 'postgres';
import { afterAll, describe, expect, it } from 'vitest';
import { openHistory } from '../src/history/index.ts';
import { createRedis, whenReady } from '../src/queue/connection.ts';
import { historyFeedKey, StatusStore } from '../src/status/store.ts';
import { redisUrl, uniquePrefix, waitFor } from './helpers.ts';

const ADMIN_URL = process.env.HISTORY_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const redis = createRedis(redisUrl(), 'worker');
const children: ChildProcess[] = [];
const cleanups: Array<() => Promise<void>> = [];

afterAll(async () => {
  for (const c of children) c.kill('SIGKILL');
  for (const clean of cleanups.reverse()) await clean();
  await redis.quit();
});

async function database(): Promise<string> {
  const name = `rbm_archiver_kill_${randomBytes(6).toString('hex')}`;
  const admin = postgres(ADMIN_URL, { max: 1, onnotice: () => {} });
  await admin.unsafe(`CREATE DATABASE ${name}`);
  cleanups.push(async () => {
    await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.end();
  });
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  return url.toString();
}

/** An archiver in its own process; resolves once it says it runs. */
function archiver(env: Record<string, string>): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/fixtures/archiver-child.ts'], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  return new Promise((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('archiving')) resolve(child);
    });
    child.once('exit', (code) => reject(new Error(`the archiver exited with ${code} before it ran`)));
  });
}

describe('an archiver killed mid-batch', () => {
  it('started again, it loses and duplicates nothing', async () => {
    await whenReady(redis);
    const url = await database();
    // The schema first, so the child's start is quick and the kill lands in the writes.
    const history = await openHistory({ url, log: { info: () => {}, warn: () => {} } });
    cleanups.push(() => history.close());
    const prefix = uniquePrefix('archkill');
    const status = new StatusStore(redis, { prefix, ttlMs: 120_000 });
    const createdAt = Date.now() - 60_000;
    const refs = Array.from({ length: 2000 }, (_, i) => ({ agentId: `agent-${i % 3}`, messageId: randomUUID() }));
    const moves: Array<Promise<unknown>> = [];
    for (const ref of refs) {
      moves.push(
        (async () => {
          await status.transition(ref, 'SENDING', { create: { ...ref, to: '+14155550123', createdAt }, now: createdAt + 1 });
          await status.transition(ref, 'SENT', { now: createdAt + 2, event: 'SENT' });
          await status.transition(ref, 'DELIVERED', { now: createdAt + 3, event: 'DELIVERED' });
        })(),
      );
    }
    await Promise.all(moves);
    // QUEUED (derived), SENDING, SENT, DELIVERED: four timeline entries a message.
    const expected = refs.length * 4;
    const count = async () => Number((await history.db.query<{ n: number }>('SELECT count(*)::int AS n FROM message_events'))[0]!.n);
    const env = { REDIS_URL: redisUrl(), PREFIX: prefix, DATABASE_URL: url, BATCH: '100', CLAIM_IDLE_MS: '1000' };

    const first = await archiver(env);
    // Polled: the archive is another process's writes, and nothing signals them here.
    await waitFor(count, (n) => n >= expected / 4);
    // Killed inside a write: its transaction open, its batch read and not acknowledged.
    const inWrite = async () =>
      (
        await history.db.query<{ n: number }>(
          'SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND xact_start IS NOT NULL',
        )
      )[0]!.n;
    await waitFor(inWrite, (n) => n > 0);
    first.kill('SIGKILL');
    await new Promise((r) => first.once('exit', r));
    const [pendingAtKill] = (await redis.xpending(historyFeedKey(prefix), 'archiver')) as [number];
    expect(pendingAtKill).toBeGreaterThan(0);
    expect(await count()).toBeLessThan(expected);

    await archiver(env);
    await waitFor(
      () => redis.xlen(historyFeedKey(prefix)),
      (n) => n === 0,
      90_000,
    );
    // Every change once: the total is exact, and each message holds its four entries.
    expect(await count()).toBe(expected);
    const perMessage = await history.db.query<{ n: number; messages: number }>(
      'SELECT n, count(*)::int AS messages FROM (SELECT count(*)::int AS n FROM message_events GROUP BY agent_id, message_id) t GROUP BY n',
    );
    expect(perMessage).toEqual([{ n: 4, messages: refs.length }]);
    for (const ref of refs.slice(0, 20)) {
      expect((await history.message(ref))!.timeline).toEqual((await status.get(ref))!.timeline);
    }
  });
});
