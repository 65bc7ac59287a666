/**
 * Test harness: the real service parts against a real Redis (own prefix per
 * harness) and the emulator over real HTTP. Waits on events, never on sleeps.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { createServer as createHttpServer } from 'node:http';
import { createServer } from 'node:net';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { QueueEvents } from 'bullmq';
import { type Cluster, Redis } from 'ioredis';
import { inject } from 'vitest';
import { CALLBACK_QUEUE, INBOUND_QUEUE, outboundQueueName, SMS_QUEUE } from '../jobs/index.ts';
import { loadConfig, type Config } from '../src/config.ts';
import { startEmulator, type EmulatorOptions, type RunningEmulator } from '../src/emulator/index.ts';
import { createLogger } from '../src/logger.ts';
import type { ResolveHost } from '../src/egress/guard.ts';
import type { FastifyInstance } from 'fastify';
import { buildApi } from '../src/api/app.ts';
import { createMetrics } from '../src/api/metrics.ts';
import type { WorkerSet } from '../src/queue/workers.ts';
import type { Producer } from '../src/queue/producer.ts';
import type { RbmClient } from '../src/rbm/client.ts';
import { AgentDirectory } from '../src/agents/directory.ts';
import { newRecord } from '../src/agents/record.ts';
import { createRedis, whenReady } from '../src/queue/connection.ts';
import { createService, type Service } from '../src/service.ts';
import { smsSettingsFrom } from '../src/sms/from-config.ts';
import type { StatusStore } from '../src/status/store.ts';

export const redisUrl = (): string => inject('redisUrl');

export const redisClusterNodes = (): string[] => inject('redisClusterNodes').split(',');

/**
 * Deletes every key under a test's prefix in the shared Redis, in chunks; on its own connection unless given one.
 * On a Cluster connection every master is asked (a {prefix} is one slot, so each chunk is one node's).
 */
export async function dropKeys(prefix: string, connection?: Redis): Promise<void> {
  const redis = connection ?? new Redis(redisUrl());
  const cluster = redis as unknown as Partial<Cluster>;
  const nodes: Redis[] = typeof cluster.nodes === 'function' ? cluster.nodes('master') : [redis];
  // A braced prefix's other lanes are `{<inner>:L<n>.<salt>}` (src/queue/keyspace.ts); one node's are `<prefix>:L<n>:…`, under `<prefix>:*`.
  const braced = /^\{(.+)\}$/.exec(prefix);
  const patterns = braced ? [`${prefix}:*`, `{${braced[1]}:L*`] : [`${prefix}:*`];
  for (const node of nodes) {
    const keys = (await Promise.all(patterns.map((p) => node.keys(p)))).flat();
    // One DEL per key: a cluster node refuses one DEL over keys of several slots.
    const pipeline = node.pipeline();
    for (const key of keys) pipeline.del(key);
    if (keys.length > 0) await pipeline.exec();
  }
  if (!connection) await redis.quit();
}

/**
 * `npm start` as a child process: every worker and the API in one process against the built-in emulator
 * (no Google endpoint or key), logging at info so tests can wait for its lines; `env` adds or overrides.
 */
export function spawnService(env: Record<string, string>): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', 'workers/all.ts'], {
    // The archive in memory: files run side by side, and an embedded database is one process's.
    env: { ...process.env, LOG_LEVEL: 'info', GOOGLE_APPLICATION_CREDENTIALS: '', RBM_ENDPOINT: '', HISTORY_DATA_DIR: 'memory://', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/**
 * A workers/ entry point (api, dispatch, callbacks...) as a child process of its own; `up` resolves once its
 * stdout matches `ready` and rejects if it exits first. The caller kills it (add it to its list of children).
 */
export function startProcess(entry: string, env: Record<string, string>, ready: RegExp): { child: ChildProcess; up: Promise<void> } {
  const child = spawn(process.execPath, ['--import', 'tsx', entry], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const up = new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out = (out + d.toString()).slice(-4000);
      if (ready.test(out)) resolve();
    });
    child.once('exit', (code) => reject(new Error(`${entry} exited with ${code}: ${out.slice(-300)}`)));
  });
  return { child, up };
}

/** The CLI run in this process (its `main`), with what it wrote to stdout and stderr. */
export async function runCli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  // Loaded here, not at the top: only the CLI's tests pay for the CLI's modules.
  const { main } = await import('../src/cli/main.ts');
  const code = await main(['node', 'rbm-dispatch', ...args], {
    stdout: {
      write: (s: string) => {
        stdout += s;
        return true;
      },
    } as NodeJS.WritableStream,
    stderr: {
      write: (s: string) => {
        stderr += s;
        return true;
      },
    } as NodeJS.WritableStream,
  });
  return { code, stdout, stderr };
}

export function uniquePrefix(name: string): string {
  return `t-${name}-${randomBytes(4).toString('hex')}`;
}

export interface Harness {
  config: Readonly<Config>;
  emulator: RunningEmulator;
  rbm: RbmClient;
  producer: Producer;
  status: StatusStore;
  redis: { producer: Redis; worker: Redis };
  service: Service;
  /** Starts the dispatch workers (not started by default, so tests can build a backlog first). */
  startDispatch(): WorkerSet;
  startInbound(): WorkerSet;
  startSms(): WorkerSet;
  startCallbacks(): WorkerSet;
  /** The HTTP app (API + webhook) on a free port; the emulator's webhook points at it. */
  startHttp(): Promise<string>;
  /** Resolves with a job's return value when it completes; rejects when it fails for good. */
  outcome(agentId: string, jobId: string): Promise<unknown>;
  /** The same for any queue (rbm-inbound, sms-outbound). */
  outcomeOn(queue: string, jobId: string): Promise<unknown>;
  /** How a job left its queue, whichever came first: it completed, failed for good, or was removed (a cancelled delayed job). */
  endOn(queue: string, jobId: string): Promise<'completed' | 'failed' | 'removed'>;
  close(): Promise<void>;
}

/**
 * On the cluster, the harness's agents are recorded on lanes other than 0 before the service starts (its
 * seeding leaves them there): lane 0's prefix is QUEUE_PREFIX itself, so a key built from the bare prefix
 * where the agent's lane was due would pass unseen on lane 0.
 */
async function placeOffLaneZero(config: Config): Promise<void> {
  const redis = createRedis({ clusterNodes: config.redisClusterNodes! }, 'producer');
  try {
    await whenReady(redis);
    const directory = new AgentDirectory(redis, config.queuePrefix);
    const now = Date.now();
    await directory.restore(config.agents.map((a, i) => newRecord(a, now, undefined, 1 + ((i * 5) % (config.keyspaceLanes - 1)))));
  } finally {
    redis.disconnect();
  }
}

/** resolveHost: stands in for DNS in the service's egress guard (src/egress/guard.ts). */
export async function startHarness(options: {
  name: string;
  env?: Record<string, string>;
  /** Against the test run's Redis Cluster (REDIS_CLUSTER_NODES) with a {prefix}, instead of the single node. */
  cluster?: boolean;
  emulator?: EmulatorOptions;
  resolveHost?: ResolveHost;
  /** Leave the keys at close (a later harness on the same QUEUE_PREFIX reads them, as after a restart). */
  keepKeys?: boolean;
}): Promise<Harness> {
  // The vitest project 'cluster' (vitest.config.ts) runs the end-to-end core against the Redis Cluster.
  options.cluster ??= process.env.RBM_TEST_REDIS === 'cluster';
  const emulator = await startEmulator(options.emulator);
  const keyFile = join(await mkdtemp(join(tmpdir(), 'rbm-key-')), 'key.json');
  await emulator.writeKeyFile(keyFile);
  const config = loadConfig({
    REDIS_URL: redisUrl(),
    QUEUE_PREFIX: options.cluster ? `{${uniquePrefix(options.name)}}` : uniquePrefix(options.name),
    ...(options.cluster ? { REDIS_CLUSTER_NODES: inject('redisClusterNodes') } : {}),
    RBM_ENDPOINT: emulator.url,
    GOOGLE_APPLICATION_CREDENTIALS: keyFile,
    SMS_TWILIO_BASE_URL: emulator.url,
    RBM_AGENTS: 'agent-a:1000',
    RBM_WEBHOOK_CLIENT_TOKENS: 'agent-a:test-client-token-a',
    SMS_PROVIDER: 'twilio',
    SMS_TWILIO_ACCOUNT_SID: 'ACtest',
    SMS_TWILIO_AUTH_TOKEN: 'test-token',
    SMS_FROM: '+15550001234',
    WORKER_STALLED_INTERVAL_MS: '5000',
    EVENT_COALESCE_WINDOW_MS: '0',
    // Longer than a job can take on a busy machine: a lost lock re-runs the job (a duplicate send, suppressed
    // by its ID) and the re-runs add to the load; with 10 s, a 10,000-message batch collapsed to a few a second.
    WORKER_LOCK_DURATION_MS: '30000',
    DISPATCH_BACKOFF_MS: '20',
    LOG_LEVEL: 'silent',
    ...options.env,
  });
  const log = createLogger(config.logLevel);
  if (options.cluster && config.keyspaceLanes > 1) await placeOffLaneZero(config);
  // A start that fails (a refused config) leaves no emulator running.
  const service = await createService(config, {
    redisUrl: config.redisUrl!,
    rbm: { baseUrl: emulator.url, keyFile },
    sms: smsSettingsFrom(config.sms, emulator.url),
    log,
    ...(options.resolveHost ? { resolveHost: options.resolveHost } : {}),
  }).catch(async (err: unknown) => {
    await emulator.close();
    throw err;
  });
  let http: FastifyInstance | undefined;
  // Every queue's finished jobs, recorded from the start, so a test asking
  // after a job finished still gets its outcome.
  const events = new Map<string, QueueEvents>();
  // QueueEvents over a Cluster take a connection of ours, which their close() leaves open.
  const clusterConnections: Redis[] = [];
  const finished = new Map<string, { ok: true; value: unknown } | { ok: false; reason: string }>();
  const removed = new Set<string>();
  const waiters = new Map<string, Array<() => void>>();
  const wake = (key: string) => {
    for (const resolve of waiters.get(key) ?? []) resolve();
    waiters.delete(key);
  };
  const record = (queue: string, jobId: string, result: { ok: true; value: unknown } | { ok: false; reason: string }) => {
    finished.set(`${queue}/${jobId}`, result);
    wake(`${queue}/${jobId}`);
  };
  const settled = (key: string): Promise<void> => new Promise<void>((resolve) => waiters.set(key, [...(waiters.get(key) ?? []), resolve]));
  // Each queue on its lane (src/queue/keyspace.ts): an agent's outbound queue on its agent's, an inbound queue on every lane.
  const watched: Array<{ queue: string; prefix: string }> = [
    ...config.agents.map((a) => ({ queue: outboundQueueName(a.agentId), prefix: service.keyspace.of(a.agentId) })),
    ...service.keyspace.tags.map((prefix) => ({ queue: INBOUND_QUEUE, prefix })),
    { queue: SMS_QUEUE, prefix: config.queuePrefix },
    { queue: CALLBACK_QUEUE, prefix: config.queuePrefix },
  ];
  for (const { queue, prefix } of watched) {
    const connection = config.redisClusterNodes
      ? createRedis({ clusterNodes: config.redisClusterNodes }, 'worker')
      : { url: config.redisUrl! };
    if (connection instanceof EventEmitter) clusterConnections.push(connection as Redis);
    const qe = new QueueEvents(queue, { connection: connection as never, prefix });
    qe.setMaxListeners(0);
    // The harness's own listener: a Redis outage a test makes is expected (the service's parts log their own errors).
    qe.on('error', () => {});
    qe.on('completed', ({ jobId, returnvalue }) =>
      record(queue, jobId, { ok: true, value: typeof returnvalue === 'string' ? JSON.parse(returnvalue) : returnvalue }),
    );
    qe.on('failed', ({ jobId, failedReason }) => record(queue, jobId, { ok: false, reason: failedReason }));
    qe.on('removed', ({ jobId }) => {
      removed.add(`${queue}/${jobId}`);
      wake(`${queue}/${jobId}`);
    });
    await qe.waitUntilReady();
    events.set(`${prefix}|${queue}`, qe);
  }
  const outcomeOn = async (queue: string, jobId: string): Promise<unknown> => {
    const key = `${queue}/${jobId}`;
    while (!finished.has(key)) await settled(key);
    const result = finished.get(key)!;
    if (!result.ok) throw new Error(result.reason);
    return result.value;
  };
  const endOn = async (queue: string, jobId: string): Promise<'completed' | 'failed' | 'removed'> => {
    const key = `${queue}/${jobId}`;
    while (!finished.has(key) && !removed.has(key)) await settled(key);
    const result = finished.get(key);
    return result === undefined ? 'removed' : result.ok ? 'completed' : 'failed';
  };

  return {
    config,
    emulator,
    rbm: service.rbm,
    producer: service.producer,
    status: service.status,
    redis: service.redis,
    service,
    startDispatch: () => service.startDispatch(),
    startInbound: () => service.startInbound(),
    startSms: () => service.startSms(),
    startCallbacks: () => service.startCallbacks(),
    async startHttp() {
      const metrics = createMetrics({ read: () => service.metricsSource.read(), webhookCounters: service.webhookCounters });
      http = buildApi({
        producer: service.producer,
        // API_KEYS in the env: the API checks them as in production; none: open, as with the emulator.
        apiKeys: config.apiKeys,
        openWithoutKeys: config.apiKeys.length === 0,
        timeouts: config.http,
        revoke: service.revoke,
        failures: { list: service.failures, redrive: service.redrive },
        callbacks: service.callbacks,
        agents: {
          directory: service.agents.directory,
          refresh: () => service.agents.refreshNow(),
          adminKey: config.adminApiKey,
          open: config.apiKeys.length === 0,
        },
        // The history routes only for a harness given an archive (HISTORY_DATA_DIR=memory:// or DATABASE_URL):
        // the default one is a directory of the checkout, one process's.
        ...(options.env?.HISTORY_DATA_DIR !== undefined || options.env?.DATABASE_URL !== undefined
          ? {
              history: {
                store: () => service.history(),
                phoneKey: () => service.historyPhoneKey(),
                agentIds: () => service.agents.knownIds(),
              },
              subscribers: {
                erase: (e164: string) => service.eraseSubscriber(e164),
                adminKey: config.adminApiKey,
                open: config.apiKeys.length === 0,
              },
            }
          : {}),
        metrics,
        webhook: {
          clientTokens: config.webhookClientTokens,
          directoryTokens: service.agents.clientTokens(),
          intake: service.intake,
          bodyLimitBytes: config.inbound.bodyLimitBytes,
          counters: service.webhookCounters,
          observeLag: metrics.observeWebhookLag,
        },
      });
      const url = await http.listen({ port: 0, host: '127.0.0.1' });
      const res = await fetch(`${emulator.url}/_emulator/webhook`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ url: `${url}/webhooks/rbm`, clientTokens: config.webhookClientTokens, retryBaseMs: 50, retryMaxMs: 500 }),
      });
      if (res.status !== 200) throw new Error(`emulator webhook config: ${res.status} ${await res.text()}`);
      return url;
    },
    outcome: (agentId, jobId) => outcomeOn(outboundQueueName(agentId), jobId),
    outcomeOn,
    endOn,
    async close() {
      await http?.close();
      await Promise.all([...events.values()].map((qe) => qe.close()));
      for (const c of clusterConnections) c.disconnect();
      // Leave no keys behind in a shared Redis.
      if (!options.keepKeys) await dropKeys(config.queuePrefix, service.redis.producer);
      await service.close();
      await emulator.close();
    },
  };
}

/** Resolves when `count` arrivals matching the filter reached the emulator. */
export function arrivals(
  emulator: RunningEmulator,
  count: number,
  match: (a: { kind: string; id: string; body: unknown }) => boolean = () => true,
): Promise<Array<{ kind: string; id: string; receivedAt: number }>> {
  const seen: Array<{ kind: string; id: string; receivedAt: number }> = [];
  return new Promise((resolve) => {
    const on = (a: { kind: string; id: string; body: unknown; receivedAt: number }) => {
      if (!match(a)) return;
      seen.push(a);
      if (seen.length >= count) {
        emulator.state.events.off('arrival', on);
        resolve(seen);
      }
    };
    emulator.state.events.on('arrival', on);
  });
}

/** The n-th test number that the emulator's default rule treats as RCS-enabled (it never ends in 0). */
/**
 * When BullMQ's limiter let each of an agent's jobs go, in Redis time: the
 * `active` entries of the queue's event stream (one per fetch, retries
 * included; the stream ID is the server clock at the fetch). Pacing measured
 * here is the limiter's own, free of the HTTP jitter a busy machine adds
 * between the release and the emulator's arrival.
 */
export async function limiterReleases(h: Harness, agentId: string): Promise<number[]> {
  const key = h.service.queues.queue('outbound', agentId).toKey('events');
  const entries = (await h.redis.producer.xrange(key, '-', '+')) as Array<[string, string[]]>;
  return entries
    .filter(([, fields]) => fields[0] === 'event' && fields[1] === 'active')
    .map(([id]) => Number(id.split('-')[0]))
    .sort((a, b) => a - b);
}

/** The most timestamps in any trailing second. */
export function busiestSecond(times: number[]): number {
  let most = 0;
  for (let i = 0, j = 0; i < times.length; i++) {
    while (times[i]! - times[j]! >= 1000) j++;
    most = Math.max(most, i - j + 1);
  }
  return most;
}

export function rcsPhone(n: number, area = '555'): string {
  return `+1${area}${String(n).padStart(6, '0')}7`;
}

/**
 * Polls a condition in another process (where there is no event to listen to)
 * until it holds, failing with the last value seen after `timeoutMs`. The
 * deadline only bounds how long a failure takes (a passing run returns as soon
 * as the condition holds), so it is generous: a busy 2-core machine runs
 * everything several times slower than a quiet one.
 */
export async function waitFor<T>(read: () => Promise<T>, done: (value: T) => boolean, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms; last value: ${JSON.stringify(value)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** One JSON request to the service; the answer's status and parsed body. */
export async function httpCall(
  base: string,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: any }> {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

/** A TCP port nothing listens on right now. */
/**
 * The environment a worker process (workers/*.ts) needs against the test Redis and an emulator: a key file
 * the emulator trusts, a free port, logs at info (the readiness lines the tests wait for); `extra` adds the rest.
 */
export async function processEnv(
  emulator: RunningEmulator,
  prefix: string,
  extra: Record<string, string>,
): Promise<{ env: Record<string, string>; port: number }> {
  const keyFile = join(await mkdtemp(join(tmpdir(), 'rbm-proc-')), 'key.json');
  await emulator.writeKeyFile(keyFile);
  const port = await freePort();
  const env = {
    REDIS_URL: redisUrl(),
    QUEUE_PREFIX: prefix,
    RBM_ENDPOINT: emulator.url,
    GOOGLE_APPLICATION_CREDENTIALS: keyFile,
    PORT: String(port),
    LOG_LEVEL: 'info',
    ...extra,
  };
  return { env, port };
}

export function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** Resolves with the first line of a child's output that matches; rejects if it exits first. */
export function lineOf(proc: ChildProcess, match: RegExp, stream: 'stdout' | 'stderr' = 'stdout'): Promise<string> {
  return new Promise((resolve, reject) => {
    let buffered = '';
    const onData = (d: Buffer) => {
      buffered += d.toString();
      const line = buffered.split('\n').find((l) => match.test(l));
      if (line) {
        proc[stream]!.off('data', onData);
        resolve(line);
      }
    };
    proc[stream]!.on('data', onData);
    // The other stream too, so a start that fails says why (its reason goes to stderr).
    const other = proc[stream === 'stdout' ? 'stderr' : 'stdout'];
    let otherText = '';
    const onOther = (d: Buffer) => {
      otherText = (otherText + d.toString()).slice(-1000);
    };
    other?.on('data', onOther);
    proc.once('exit', (code) =>
      reject(
        new Error(
          `exited with ${code} before printing ${match}: ${buffered.slice(-500)}${otherText ? `\n(other stream) ${otherText.slice(-500)}` : ''}`,
        ),
      ),
    );
  });
}

export interface ReceivedCallback {
  path: string;
  headers: Record<string, string>;
  /** The raw body, as signed. */
  body: string;
  /** What the receiver answered; 0 while it leaves the request hanging. */
  status: number;
}

/** A filter for `until`: the status callback that reports `messageId` reaching `state` (sent only after the move). */
export function changeTo(messageId: string, state: string): (r: ReceivedCallback) => boolean {
  return (r) => {
    const { data } = JSON.parse(r.body) as { data?: { messageId?: string; state?: string } };
    return data?.messageId === messageId && data.state === state;
  };
}

/**
 * A producer's callback endpoint on `host` (127.0.0.1 unless told): records
 * every request with its raw body and answers what `answer` says (200 by
 * default), or never answers ('hang': a receiver that accepts and then says
 * nothing); `until` resolves once enough requests matching a filter arrived.
 * `port`: listen there (a receiver that comes back where one refused connections).
 */
export async function startCallbackReceiver(
  answer: (request: { path: string; webhookId: string; body: string }) => number | 'hang' = () => 200,
  options: { port?: number; host?: string } = {},
) {
  const host = options.host ?? '127.0.0.1';
  const received: ReceivedCallback[] = [];
  const arrived = new EventEmitter();
  const server = createHttpServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const path = req.url ?? '/';
      const status = answer({ path, webhookId: String(req.headers['webhook-id']), body });
      received.push({ path, headers: req.headers as Record<string, string>, body, status: status === 'hang' ? 0 : status });
      if (status !== 'hang') res.writeHead(status).end();
      arrived.emit('request');
    });
  });
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, host, resolve));
  const port = (server.address() as { port: number }).port;
  const url = `http://${host}:${port}`;
  return {
    url,
    port,
    received,
    until(count: number, match: (r: ReceivedCallback) => boolean = () => true): Promise<ReceivedCallback[]> {
      return new Promise((resolve) => {
        const check = () => {
          const hits = received.filter(match);
          if (hits.length < count) return;
          arrived.off('request', check);
          resolve(hits);
        };
        arrived.on('request', check);
        check();
      });
    },
    /** Stops listening and drops every connection, hanging ones included. */
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/**
 * The Redis bytes of each key matching `match` (MEMORY USAGE, every element
 * counted): a measure of one test's keys that the tests running beside it on
 * the same Redis do not move, as they move used_memory.
 */
export async function memoryOfKeys(redis: Redis, match: string): Promise<Array<[string, number]>> {
  const out: Array<[string, number]> = [];
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', match, 'COUNT', 1000);
    cursor = next;
    const pipeline = redis.pipeline();
    for (const k of keys) pipeline.memory('USAGE', k, 'SAMPLES', 0);
    const sizes = (await pipeline.exec()) ?? [];
    out.push(...keys.map((k, i): [string, number] => [k, Number(sizes[i]?.[1] ?? 0)]));
  } while (cursor !== '0');
  return out;
}

/**
 * Runs the heaviest test files one at a time (10,000 messages; three processes of 1,000 workers): side by
 * side on two cores they starve each other into timeouts that say nothing about the code. A lock in the
 * test run's Redis, held until released (or 15 minutes, should a file die holding it).
 */
export async function heavyTestLock(): Promise<() => Promise<void>> {
  const redis = new Redis(redisUrl());
  const key = 'rbm-test:heavy-lock';
  const me = randomBytes(8).toString('hex');
  while ((await redis.set(key, me, 'PX', 900_000, 'NX')) !== 'OK') await new Promise((r) => setTimeout(r, 250));
  return async () => {
    if ((await redis.get(key)) === me) await redis.del(key);
    redis.disconnect();
  };
}
