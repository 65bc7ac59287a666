/**
 * A local Redis Cluster of three masters (no replicas) for the tests (started
 * once per run by test/global-setup.ts, like the plain Redis) and the
 * benchmarks: three redis-server processes with cluster mode on, joined by
 * `redis-cli --cluster create`, ready once every node says cluster_state:ok.
 * Seconds to start; no persistence (unless asked: a test that restarts a
 * master keeps its data in an AOF); stopped with the run.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface LocalCluster {
  /** host:port of each master, as REDIS_CLUSTER_NODES takes them. */
  nodes: string[];
  /** Stops master `index` with SIGTERM (its AOF written, when persistent), starts it again, and waits for cluster_state:ok. */
  restart(index: number): Promise<void>;
  stop(): Promise<void>;
}

const READY_WITHIN_MS = 30_000;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.once('error', reject);
    child.once('exit', (code) =>
      code === 0 ? resolve(out) : reject(new Error(`${cmd} ${args.join(' ')} exited with ${code}: ${out.slice(-500)}`)),
    );
  });
}

async function startNode(port: number, dir: string, persistent: boolean): Promise<ChildProcess> {
  const child = spawn(
    'redis-server',
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--dir',
      dir,
      '--save',
      '',
      '--appendonly',
      persistent ? 'yes' : 'no',
      '--appendfsync',
      'always',
      '--appendfilename',
      `appendonly-${port}.aof`,
      '--appenddirname',
      `aof-${port}`,
      '--cluster-enabled',
      'yes',
      '--cluster-config-file',
      `nodes-${port}.conf`,
      '--cluster-node-timeout',
      '5000',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  await new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('Ready to accept connections')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`redis-server (cluster node ${port}) exited with ${code}: ${out.slice(-500)}`)));
  });
  return child;
}

async function whenAllOk(ports: readonly number[]): Promise<void> {
  const deadline = Date.now() + READY_WITHIN_MS;
  for (const p of ports) {
    while (!(await run('redis-cli', ['-p', String(p), 'cluster', 'info']).catch(() => '')).includes('cluster_state:ok')) {
      if (Date.now() > deadline) throw new Error(`the local cluster did not become ready within ${READY_WITHIN_MS} ms`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

export async function startLocalCluster(masters = 3, opts: { persistent?: boolean } = {}): Promise<LocalCluster> {
  const persistent = opts.persistent ?? false;
  const dir = await mkdtemp(join(tmpdir(), 'rbm-cluster-'));
  const ports = await Promise.all(Array.from({ length: masters }, () => freePort()));
  const children = await Promise.all(ports.map((p) => startNode(p, dir, persistent)));
  const nodes = ports.map((p) => `127.0.0.1:${p}`);
  const stop = async () => {
    for (const c of children) c.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  };
  const restart = async (index: number) => {
    const child = children[index]!;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    await exited;
    children[index] = await startNode(ports[index]!, dir, persistent);
    await whenAllOk(ports);
  };
  try {
    await run('redis-cli', ['--cluster', 'create', ...nodes, '--cluster-replicas', '0', '--cluster-yes']);
    await whenAllOk(ports);
  } catch (err) {
    await stop();
    throw err;
  }
  return { nodes, restart, stop };
}
