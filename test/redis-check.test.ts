/**
 * A wrong Redis is a clear error at start: a Cluster node, a replica, a
 * refused or missing password, something that is not Redis, nothing at all.
 * Each against a real server of its own; the entry points themselves exit
 * non-zero with one line on stderr that names the code and masks the password.
 */
import { spawn } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisCheckError } from '../src/errors.ts';
import { maskUrlPassword } from '../src/mask.ts';
import { checkRedis, olderThan } from '../src/queue/preflight.ts';
import { startEmulator, type RunningEmulator } from '../src/emulator/index.ts';
import { freePort } from './helpers.ts';
import { startHttpServer, startRedisServer, startSilentServer, stopAll, type RedisServer } from './redis-servers.ts';

const PASSWORD = 'hunter2-very-secret';
let cluster: RedisServer;
let primary: RedisServer;
let replica: RedisServer;
let locked: RedisServer;
let lru: RedisServer;

beforeAll(async () => {
  const nodesDir = await mkdtemp(join(tmpdir(), 'rbm-cluster-'));
  primary = await startRedisServer();
  [cluster, replica, locked, lru] = await Promise.all([
    // A single node with no slots is enough: INFO says cluster_enabled:1, every key command CLUSTERDOWN.
    startRedisServer(['--cluster-enabled', 'yes', '--cluster-config-file', join(nodesDir, 'nodes.conf')]),
    startRedisServer(['--replicaof', '127.0.0.1', String(primary.port)]),
    startRedisServer(['--requirepass', PASSWORD]),
    startRedisServer(['--maxmemory-policy', 'allkeys-lru']),
  ]);
});
afterAll(stopAll);

/** The check's error, and how long it took. */
async function failure(url: string, timeoutMs = 2000): Promise<{ err: RedisCheckError; ms: number }> {
  const started = Date.now();
  const err = await checkRedis(url, { prefix: 'check', timeoutMs }).then(
    () => {
      throw new Error(`the check of ${url} passed`);
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(RedisCheckError);
  expect((err as Error).message).not.toContain('\n');
  return { err: err as RedisCheckError, ms: Date.now() - started };
}

describe('the start-up check of Redis', () => {
  it('passes a standalone primary, and warns once when its maxmemory-policy can evict queue keys', async () => {
    expect(await checkRedis(primary.url, { prefix: 'check', timeoutMs: 2000 })).toEqual({ version: expect.any(String), warnings: [] });
    const { warnings } = await checkRedis(lru.url, { prefix: 'check', timeoutMs: 2000 });
    expect(warnings).toEqual([
      `Redis at ${lru.url} has maxmemory-policy allkeys-lru: when memory runs out it will evict queue and status keys; BullMQ needs noeviction (CONFIG SET maxmemory-policy noeviction)`,
    ]);
    expect(await checkRedis(`redis://:${PASSWORD}@127.0.0.1:${locked.port}`, { prefix: 'check', timeoutMs: 2000 })).toMatchObject({
      warnings: [],
    });
  });

  it('refuses a Redis Cluster node', async () => {
    const { err } = await failure(cluster.url);
    expect(err).toMatchObject({
      code: 'REDIS_UNSUITABLE',
      problem: 'cluster',
      url: cluster.url,
      expected: 'a standalone Redis',
      got: 'cluster_enabled:1',
    });
    expect(err.message).toBe(
      `Redis at ${cluster.url} is a Redis Cluster node; set REDIS_CLUSTER_NODES to its nodes (host:port,host:port) instead of REDIS_URL (expected a standalone Redis, got cluster_enabled:1)`,
    );
  });

  it('refuses a read-only replica, naming its primary', async () => {
    const { err } = await failure(replica.url);
    expect(err).toMatchObject({ code: 'REDIS_UNSUITABLE', problem: 'replica', expected: 'role:master', got: 'role:slave' });
    expect(err.message).toContain(`is a read-only replica of 127.0.0.1:${primary.port}; point REDIS_URL at the primary`);
  });

  it('refuses a missing or wrong password, and never shows the one given', async () => {
    const missing = (await failure(locked.url)).err;
    expect(missing).toMatchObject({ code: 'REDIS_UNSUITABLE', problem: 'auth' });
    expect(missing.message).toMatch(/requires a password; give it in REDIS_URL .*got NOAUTH/);
    for (const url of [
      `redis://:wrong-${PASSWORD}@127.0.0.1:${locked.port}`,
      `redis://someone:wrong-${PASSWORD}@127.0.0.1:${locked.port}/2`,
    ]) {
      const { err } = await failure(url);
      expect(err).toMatchObject({ code: 'REDIS_UNSUITABLE', problem: 'auth', url: maskUrlPassword(url) });
      expect(err.message).toMatch(/refused the password; check the credentials in REDIS_URL .*got WRONGPASS/);
      expect(err.message).toContain('***@127.0.0.1');
      expect(err.message).not.toContain(PASSWORD);
    }
  });

  it('refuses what is not Redis: an HTTP server, a server that never answers', async () => {
    const http = (await failure(`redis://127.0.0.1:${await startHttpServer()}`)).err;
    expect(http).toMatchObject({ code: 'REDIS_UNSUITABLE', problem: 'not-redis' });
    expect(http.message).toMatch(
      /is not Redis \(it answered something else\); check the host and port in REDIS_URL \(expected a Redis reply, got a protocol error/,
    );
    const { err: silent, ms } = await failure(`redis://127.0.0.1:${await startSilentServer()}`, 500);
    expect(silent).toMatchObject({ code: 'REDIS_UNSUITABLE', problem: 'not-redis', expected: 'a reply to INFO', got: 'nothing' });
    expect(ms).toBeLessThan(5000);
  });

  it('says so when nothing answers', async () => {
    const port = await freePort();
    const { err } = await failure(`redis://127.0.0.1:${port}`);
    expect(err).toMatchObject({ code: 'REDIS_UNAVAILABLE', problem: 'unreachable' });
    expect(err.message).toMatch(
      new RegExp(
        `^Redis at redis://127.0.0.1:${port} does not answer; start it or fix REDIS_URL \\(expected a connection within 2 s, got ECONNREFUSED`,
      ),
    );
  });

  it('compares versions by number', () => {
    expect(olderThan('6.0.16', '6.2.0')).toBe(true);
    expect(olderThan('6.2.0', '6.2.0')).toBe(false);
    expect(olderThan('7.0.15', '6.2.0')).toBe(false);
    expect(olderThan('10.0.0', '6.2.0')).toBe(false);
  });
});

describe('the entry points with a wrong Redis', () => {
  let emulator: RunningEmulator;
  let keyFile: string;
  beforeAll(async () => {
    emulator = await startEmulator();
    keyFile = join(await mkdtemp(join(tmpdir(), 'rbm-check-')), 'key.json');
    await emulator.writeKeyFile(keyFile);
  });
  afterAll(() => emulator.close());

  /** Runs an entry to its end (or, given `upWhen`, until it prints that and then SIGTERM): exit code and output. */
  function run(
    entry: string,
    env: Record<string, string>,
    upWhen?: RegExp,
  ): Promise<{ code: number | null; stderr: string; stdout: string }> {
    const child = spawn(process.execPath, ['--import', 'tsx', entry], {
      env: {
        ...process.env,
        RBM_ENDPOINT: emulator.url,
        GOOGLE_APPLICATION_CREDENTIALS: keyFile,
        RBM_AGENTS: 'agent-a:100',
        QUEUE_PREFIX: 'check',
        LOG_LEVEL: 'info',
        PORT: '0',
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      if (upWhen?.test(stdout)) child.kill('SIGTERM');
    });
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    return new Promise((resolve) => child.once('close', (code) => resolve({ code, stderr, stdout })));
  }

  it('dispatch, api and npm start exit 1 with one line on stderr, the code first and the password masked; an evicting Redis is one warning', async () => {
    const [dispatch, api, all, evicting] = await Promise.all([
      run('workers/dispatch.ts', { REDIS_URL: cluster.url }),
      run('workers/api.ts', { REDIS_URL: `redis://:wrong-${PASSWORD}@127.0.0.1:${locked.port}` }),
      run('workers/all.ts', { REDIS_URL: replica.url, GOOGLE_APPLICATION_CREDENTIALS: '', RBM_ENDPOINT: '', RBM_EMULATOR_PORT: '0' }),
      // Usable, but evicting and given a password it does not need: each library warning once, not once per connection.
      run('workers/dispatch.ts', { REDIS_URL: `redis://:unneeded@127.0.0.1:${lru.port}` }, /dispatch worker running/),
    ]);
    expect(dispatch.code).toBe(1);
    expect(dispatch.stderr).toBe(
      `rbm-dispatch worker: cannot start: REDIS_UNSUITABLE: Redis at ${cluster.url} is a Redis Cluster node; set REDIS_CLUSTER_NODES to its nodes (host:port,host:port) instead of REDIS_URL (expected a standalone Redis, got cluster_enabled:1)\n`,
    );
    expect(api.code).toBe(1);
    expect(api.stderr.split('\n')).toEqual([
      expect.stringMatching(
        /^rbm-dispatch api: cannot start: REDIS_UNSUITABLE: Redis at redis:\/\/:\*\*\*@127\.0\.0\.1:\d+ refused the password/,
      ),
      '',
    ]);
    expect(api.stderr + api.stdout).not.toContain(PASSWORD);
    expect(all.code).toBe(1);
    expect(all.stderr.split('\n')).toEqual([
      expect.stringMatching(/^rbm-dispatch: cannot start: REDIS_UNSUITABLE: Redis at .* is a read-only replica/),
      '',
    ]);
    // (Its exit code is not the point: a SIGTERM that lands before runProcess installs its handlers ends it by the signal.)
    expect(evicting.stdout.split('\n').filter((l) => l.includes('maxmemory-policy allkeys-lru'))).toHaveLength(1);
    expect(evicting.stderr).not.toContain('Eviction policy');
    expect(evicting.stderr.split('\n').filter((l) => l.includes('does not require a password'))).toHaveLength(1);
  }, 120_000);
});
