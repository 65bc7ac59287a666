/**
 * A first run needs no setup: when REDIS_URL is unset and nothing answers on
 * 127.0.0.1:6379, start a redis-server of our own (data under .data/redis,
 * git-ignored) and say so. A configured REDIS_URL is used as it is.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { resolve } from 'node:path';
import { DispatchError, ErrorCodes } from '../errors.ts';

export interface RedisTarget {
  url: string;
  /** Set when we started the server; stops it. */
  stop?: () => Promise<void>;
  startedHere: boolean;
}

const DEFAULT_HOST = '127.0.0.1';

/** Sends PING and waits for +PONG: true when a Redis answers there. */
export function redisAnswers(host: string, port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise((done) => {
    const socket = createConnection({ host, port });
    const finish = (ok: boolean) => {
      socket.destroy();
      done(ok);
    };
    socket.setTimeout(timeoutMs, () => finish(false));
    socket.once('error', () => finish(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.once('data', (d) => finish(d.toString().startsWith('+PONG')));
  });
}

/** The Redis of a process: none to find or start in cluster mode (REDIS_CLUSTER_NODES names it); else ensureRedis. */
export function redisOf(config: { redisUrl: string | undefined; redisClusterNodes: readonly string[] | undefined }): Promise<RedisTarget> {
  if (config.redisClusterNodes) return Promise.resolve({ url: config.redisClusterNodes.join(','), startedHere: false });
  return ensureRedis(config.redisUrl);
}

export async function ensureRedis(
  redisUrl: string | undefined,
  options: { port?: number; dataDir?: string; log?: (line: string) => void } = {},
): Promise<RedisTarget> {
  if (redisUrl) return { url: redisUrl, startedHere: false };
  const port = options.port ?? 6379;
  const url = `redis://${DEFAULT_HOST}:${port}`;
  if (await redisAnswers(DEFAULT_HOST, port)) return { url, startedHere: false };

  const dir = resolve(options.dataDir ?? '.data/redis');
  await mkdir(dir, { recursive: true });
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  log(`[rbm-dispatch] no Redis answered on ${DEFAULT_HOST}:${port}: starting redis-server of our own (data in ${dir})`);
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', DEFAULT_HOST, '--dir', dir, '--appendonly', 'yes', '--save', '', '--maxmemory-policy', 'noeviction'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  await waitUntilUp(child, port);
  return {
    url,
    startedHere: true,
    stop: () => stopChild(child),
  };
}

async function waitUntilUp(child: ChildProcess, port: number): Promise<void> {
  let failure: Error | undefined;
  child.once('error', (err: NodeJS.ErrnoException) => {
    failure =
      err.code === 'ENOENT'
        ? new DispatchError(
            ErrorCodes.REDIS_UNAVAILABLE,
            'redis-server was not found and no Redis answers on 127.0.0.1:6379. ' +
              'Install one (Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis) or set REDIS_URL.',
          )
        : err;
  });
  child.once('exit', (code) => {
    failure ??= new DispatchError(ErrorCodes.REDIS_UNAVAILABLE, `redis-server exited with code ${code} before answering`);
  });
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (failure) throw failure;
    if (await redisAnswers(DEFAULT_HOST, port, 200)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill('SIGKILL');
  throw failure ?? new DispatchError(ErrorCodes.REDIS_UNAVAILABLE, `redis-server did not answer on port ${port} within 10 s`);
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return Promise.resolve();
  return new Promise((resolveStop) => {
    child.once('exit', () => resolveStop());
    child.kill('SIGTERM');
  });
}
