/**
 * Real redis-server processes of a test's own (a Cluster node, a replica, a
 * password, one to kill and restart), and servers that are not Redis at all,
 * each on a free port, all stopped by stopAll().
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { createServer as createHttpServer } from 'node:http';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './helpers.ts';

export interface RedisServer {
  port: number;
  url: string;
  child: ChildProcess;
  /** Resolves once the process has exited. */
  exited: Promise<void>;
}

const children = new Set<ChildProcess>();
const servers = new Set<Server>();

/** Starts redis-server with these arguments (no persistence unless they say so); resolves when it accepts connections. */
export async function startRedisServer(args: string[] = [], port?: number): Promise<RedisServer> {
  const p = port ?? (await freePort());
  const dir = await mkdtemp(join(tmpdir(), 'rbm-redis-test-'));
  const child = spawn(
    'redis-server',
    ['--port', String(p), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no', ...args],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  children.add(child);
  const exited = new Promise<void>((resolve) =>
    child.once('exit', () => {
      children.delete(child);
      resolve();
    }),
  );
  await new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('Ready to accept connections')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`redis-server ${args.join(' ')} exited with ${code}: ${out.slice(-500)}`)));
  });
  return { port: p, url: `redis://127.0.0.1:${p}`, child, exited };
}

/** A port that answers HTTP, as a web server does when REDIS_URL names the wrong port. */
export async function startHttpServer(): Promise<number> {
  const server = createHttpServer((_req, res) => res.end('hello'));
  return listen(server);
}

/** A port that accepts connections and never says anything. */
export async function startSilentServer(): Promise<number> {
  return listen(createServer(() => {}));
}

async function listen(server: Server): Promise<number> {
  servers.add(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as { port: number }).port;
}

export async function stopAll(): Promise<void> {
  for (const child of children) child.kill('SIGKILL');
  for (const server of servers) {
    (server as Server & { closeAllConnections?: () => void }).closeAllConnections?.();
    server.close();
  }
  servers.clear();
}
