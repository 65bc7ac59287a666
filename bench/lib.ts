/**
 * Benchmark plumbing: the emulator in a child process (so its CPU is not our
 * event loop's), its control API, Redis helpers and the result table.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { resolve } from 'node:path';
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import postgres from 'postgres';
import { v4 as uuidv4 } from 'uuid';

export interface EmulatorProcess {
  url: string;
  keyFile: string;
  control(path: string, method?: string, body?: unknown): Promise<any>;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const server = createServer();
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => done(port));
    });
  });
}

export async function startEmulatorProcess(): Promise<EmulatorProcess> {
  const port = await freePort();
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', 'workers/emulator.ts'], {
    env: { ...process.env, RBM_EMULATOR_PORT: String(port) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((ready, fail) => {
    child.once('exit', (code) => fail(new Error(`emulator exited with ${code}`)));
    child.stdout!.on('data', (d: Buffer) => {
      if (d.toString().includes('service-account key')) ready();
    });
  });
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    keyFile: resolve('.data/emulator-key.json'),
    async control(path, method = 'GET', body) {
      const res = await fetch(`${url}/_emulator${path}`, {
        method,
        headers: body === undefined ? {} : { 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      if (res.status >= 300) throw new Error(`emulator control ${method} ${path}: ${res.status} ${await res.text()}`);
      return res.json();
    },
    stop: () =>
      new Promise<void>((done) => {
        child.once('exit', () => done());
        child.kill('SIGTERM');
      }),
  };
}

export async function usedMemory(redis: Redis): Promise<number> {
  const info = await redis.info('memory');
  return Number(/used_memory:(\d+)/.exec(info)![1]);
}

export async function deleteKeys(redis: Redis, pattern: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 5000);
    cursor = next;
    // DEL, not UNLINK: freeing in Redis's background thread would steal the next measurement's CPU.
    // One DEL per key, pipelined: a cluster node refuses one DEL over keys of several slots (lanes).
    if (keys.length) {
      const pipeline = redis.pipeline();
      for (const key of keys) pipeline.del(key);
      await pipeline.exec();
    }
  } while (cursor !== '0');
}

export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/** Runs `work` over [0, total) in chunks, `lanes` chunks in flight. */
export async function inLanes(
  total: number,
  chunk: number,
  lanes: number,
  work: (from: number, to: number) => Promise<unknown>,
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: lanes }, async () => {
      while (next < total) {
        const from = next;
        next += chunk;
        await work(from, Math.min(total, from + chunk));
      }
    }),
  );
}

export interface Row {
  benchmark: string;
  measured: string;
  baseline: string;
  ratio?: number;
  target: string;
  pass: boolean;
}

export function printTable(rows: Row[]): string {
  const header = ['benchmark', 'rbm-dispatch', 'baseline', 'ratio', 'target', 'ok'];
  const lines = rows.map((r) => [
    r.benchmark,
    r.measured,
    r.baseline,
    r.ratio === undefined ? '' : r.ratio.toFixed(2),
    r.target,
    r.pass ? 'yes' : 'NO',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const fmt = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [fmt(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...lines.map(fmt)].join('\n');
}

/** A fresh rbm-dispatch service for one scenario, against the emulator process, with its own prefix. */
export async function benchService(emu: EmulatorProcess, redisUrl: string, env: Record<string, string>) {
  const { loadConfig } = await import('../src/config.ts');
  const { createLogger } = await import('../src/logger.ts');
  const { createService } = await import('../src/service.ts');
  const config = loadConfig({
    REDIS_URL: redisUrl,
    RBM_ENDPOINT: emu.url,
    GOOGLE_APPLICATION_CREDENTIALS: emu.keyFile,
    LOG_LEVEL: 'silent',
    ...env,
  });
  const service = await createService(config, { redisUrl, rbm: { baseUrl: emu.url, keyFile: emu.keyFile }, log: createLogger('silent') });
  return {
    config,
    service,
    async close() {
      await service.close();
    },
  };
}

/** The n-th bench number: never ends in 0, so the emulator's default rule makes it RCS. */
export const benchPhone = (n: number): string => `+1555${String(n).padStart(6, '0')}7`;

/** A typical notification: 160 characters, two reply chips. */
export function typicalMessage(n: number, trafficType: 'TRANSACTION' | 'PROMOTION' | 'AUTHENTICATION' = 'TRANSACTION') {
  return {
    to: benchPhone(n),
    messageTrafficType: trafficType,
    contentMessage: {
      text: `Order ${n} has shipped and will arrive tomorrow between 9:00 and 12:00. Track it in the app or reply below. Thank you for shopping with us today!!`.padEnd(
        160,
        '.',
      ),
      suggestions: [
        { reply: { text: 'Track order', postbackData: `track:${n}` } },
        { reply: { text: 'Contact us', postbackData: `contact:${n}` } },
      ],
    },
  };
}

/** Resolves when `count` completions have been seen on a BullMQ worker. */
export function completions(
  worker: { on(event: 'completed', fn: () => void): unknown; off(event: 'completed', fn: () => void): unknown },
  count: number,
): Promise<number> {
  return new Promise((resolve) => {
    let seen = 0;
    const on = () => {
      if (++seen === count) {
        worker.off('completed', on);
        resolve(Date.now());
      }
    };
    worker.on('completed', on);
  });
}

/**
 * The bare baseline's enqueue: plain addBulk of the same payload rbm-dispatch
 * queues (a fresh UUID, the message, a job ID from it), 500 a call, 4 in flight.
 */
export async function bareAddBulk(
  queue: Queue,
  inputs: ReadonlyArray<ReturnType<typeof typicalMessage>>,
  agentId: string,
  opts: Record<string, unknown> = {},
): Promise<void> {
  await inLanes(inputs.length, 500, 4, (from, to) =>
    queue.addBulk(
      inputs.slice(from, to).map(({ to: phone, ...message }) => {
        const messageId = uuidv4();
        return {
          name: 'send-message',
          data: { messageId, agentId, to: phone, message, enqueuedAt: Date.now() },
          opts: { jobId: `msg-${messageId}`, ...opts },
        };
      }),
    ),
  );
}

/**
 * A fresh database on the local PostgreSQL (HISTORY_BENCH_PG_URL names the
 * server's admin database), for one scenario; drop() removes it.
 */
export async function freshDatabase(
  prefix: string,
  adminUrl = process.env.HISTORY_BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test',
): Promise<{ name: string; url: string; drop(keep?: boolean): Promise<void> }> {
  const name = `${prefix}_${randomBytes(4).toString('hex')}`;
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`CREATE DATABASE ${name}`);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return {
    name,
    url: url.toString(),
    async drop(keep = false) {
      if (!keep) await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.end();
    },
  };
}
