/**
 * One scenario's world: a redis-server of its own (AOF on, its own temp dir,
 * a free port), the RBM emulator as a child process (workers/emulator.ts),
 * and the split processes (api, 2 × dispatch, inbound, sms, callbacks, and
 * the archiver writing to a fresh database of its own on the local
 * PostgreSQL, see archive.ts), each spawned as `node --import tsx
 * workers/<role>.ts` so its PID is the worker's.
 * The SMS worker's Twilio settings point at the emulator's SMS sink; the
 * emulator's webhook points at the api process.
 */
import { randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { redisAnswers } from '../../src/queue/local-redis.ts';
import { createDatabase, HISTORY_ON, type ScenarioDb } from './archive.ts';
import { spawnProc, stopProc, waitForOutput, type Proc } from './procs.ts';

export const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const TSX = import.meta.resolve('tsx');

export const AGENT = 'chaos-agent';
export const PREFIX = 'chaos';
export const API_KEY = 'chaos-api-key-0123456789';
const CLIENT_TOKEN = 'chaos-client-token';

export type Role = 'api' | 'dispatch' | 'inbound' | 'sms' | 'callbacks' | 'archiver';
const READY: Record<Role, RegExp> = {
  api: /API listening/,
  dispatch: /dispatch worker running/,
  inbound: /inbound worker running/,
  sms: /SMS worker running/,
  callbacks: /callback worker running/,
  archiver: /archiver running/,
};

export function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.once('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const a = srv.address();
      const port = typeof a === 'object' && a !== null ? a.port : 0;
      srv.close(() => res(port));
    });
  });
}

/** Polls `check` until it returns a value other than undefined; throws after `timeoutMs`. Errors count as "not yet". */
export async function waitUntil<T>(what: string, check: () => Promise<T | undefined>, timeoutMs: number, intervalMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (err) {
      lastErr = err;
    }
    if (Date.now() >= deadline) {
      throw new Error(
        `timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${what}${lastErr ? ` (last error: ${(lastErr as Error).message})` : ''}`,
      );
    }
    await sleep(intervalMs);
  }
}

export interface HttpAnswer {
  status: number;
  body: any;
}

export async function http(
  method: string,
  url: string,
  body?: unknown,
  headers: Record<string, string> = {},
  timeoutMs = 30_000,
): Promise<HttpAnswer> {
  const res = await fetch(url, {
    method,
    headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    signal: AbortSignal.timeout(timeoutMs),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text === '' ? undefined : JSON.parse(text);
  } catch {
    // not JSON: keep the text
  }
  return { status: res.status, body: parsed };
}

export type Fsync = 'everysec' | 'always';

export class RedisServer {
  proc: Proc | undefined;
  restarts = 0;
  constructor(
    readonly dir: string,
    readonly port: number,
    readonly fsync: Fsync,
  ) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    const args = [
      '--port',
      String(this.port),
      '--bind',
      '127.0.0.1',
      '--dir',
      this.dir,
      '--appendonly',
      'yes',
      '--appendfsync',
      this.fsync,
      '--save',
      '',
      '--maxmemory-policy',
      'noeviction',
      '--daemonize',
      'no',
      '--protected-mode',
      'no',
    ];
    this.proc = spawnProc({
      name: `redis${this.restarts ? `#${this.restarts}` : ''}`,
      command: 'redis-server',
      args,
      env: process.env,
      cwd: this.dir,
      logPath: join(this.dir, 'redis.log'),
    });
    await waitUntil(
      'redis-server to answer PING',
      async () => ((await redisAnswers('127.0.0.1', this.port)) ? true : undefined),
      20_000,
      50,
    );
  }

  /** SIGTERM (a clean shutdown, the AOF flushed) or SIGKILL (whatever was not yet fsynced is lost). */
  async stop(signal: 'SIGTERM' | 'SIGKILL'): Promise<void> {
    if (this.proc) await stopProc(this.proc, signal, 30_000);
  }

  async restart(): Promise<void> {
    this.restarts += 1;
    await this.start();
  }
}

export interface ClusterOptions {
  name: string;
  baseDir: string;
  fsync?: Fsync;
  agentRate: number;
  dispatchers?: number;
  env?: Record<string, string>;
  /** Runs after the emulator is up and before any service process starts (faults that must hold from the start). */
  beforeService?: (c: Cluster) => Promise<void>;
}

export class Cluster {
  readonly procs = new Map<string, Proc>();
  redis!: RedisServer;
  emulator!: Proc;
  emulatorUrl = '';
  keyFile = '';
  apiUrl = '';
  env: NodeJS.ProcessEnv = {};
  db!: Redis;
  /** The archiver's database (undefined with CHAOS_HISTORY=off). */
  history: ScenarioDb | undefined;
  /** Every messageId the API accepted (202) in this world: submit() adds them; the history column compares each. */
  readonly accepted: string[] = [];
  dir = '';
  private starts = new Map<string, number>();

  constructor(readonly opts: ClusterOptions) {}

  static async start(opts: ClusterOptions): Promise<Cluster> {
    const c = new Cluster(opts);
    try {
      await c.boot();
    } catch (err) {
      await c.close();
      throw err;
    }
    return c;
  }

  private async boot(): Promise<void> {
    const o = this.opts;
    this.dir = join(o.baseDir, o.name);
    await mkdir(this.dir, { recursive: true });
    this.redis = new RedisServer(this.dir, await freePort(), o.fsync ?? 'everysec');
    await this.redis.start();
    this.db = new Redis(this.redis.url, { maxRetriesPerRequest: 1, retryStrategy: () => 200, lazyConnect: false });
    this.db.on('error', () => {});

    const emuPort = await freePort();
    this.emulator = spawnProc({
      name: 'emulator',
      command: process.execPath,
      args: ['--import', TSX, join(ROOT, 'workers/emulator.ts')],
      env: { ...process.env, RBM_EMULATOR_PORT: String(emuPort), RBM_EMULATOR_HOST: '127.0.0.1' },
      cwd: this.dir, // its key file lands in <dir>/.data/emulator-key.json
      logPath: join(this.dir, 'emulator.log'),
    });
    const m = await waitForOutput(this.emulator, /service-account key: (\S+) /, 30_000);
    this.keyFile = m[1]!;
    this.emulatorUrl = `http://127.0.0.1:${emuPort}`;
    if (o.beforeService) await o.beforeService(this);
    if (HISTORY_ON) this.history = await createDatabase(o.name);

    const apiPort = await freePort();
    this.apiUrl = `http://127.0.0.1:${apiPort}`;
    const { REDIS_URL: _r, QUEUE_PREFIX: _q, ...inherited } = process.env;
    this.env = {
      ...inherited,
      REDIS_URL: this.redis.url,
      QUEUE_PREFIX: PREFIX,
      RBM_ENDPOINT: this.emulatorUrl,
      GOOGLE_APPLICATION_CREDENTIALS: this.keyFile,
      RBM_AGENTS: `${AGENT}:${o.agentRate}`,
      API_KEYS: `${API_KEY}:${AGENT}`,
      HOST: '127.0.0.1',
      PORT: String(apiPort),
      RBM_WEBHOOK_CLIENT_TOKENS: `${AGENT}:${CLIENT_TOKEN}`,
      // The emulator's Twilio-compatible sink: any account SID and non-empty token pass its Basic auth.
      SMS_PROVIDER: 'twilio',
      SMS_TWILIO_BASE_URL: this.emulatorUrl,
      SMS_TWILIO_ACCOUNT_SID: 'ACchaos00000000000000000000000000',
      SMS_TWILIO_AUTH_TOKEN: 'chaos-sms-token',
      SMS_FROM: '+15550000000',
      // The sink answers a repeated idempotency key with the first SMS, as the README's split setup says.
      SMS_IDEMPOTENT: 'true',
      SMS_RATE_PER_SEC: process.env.CHAOS_SMS_RATE ?? '200',
      CALLBACK_SECRET: `whsec_${randomBytes(32).toString('base64')}`,
      LOG_LEVEL: process.env.CHAOS_LOG_LEVEL ?? 'info',
      SHUTDOWN_TIMEOUT_MS: '5000',
      ...lockEnv(),
      ...(this.history ? { DATABASE_URL: this.history.url } : {}),
      ...o.env,
    };
    // Webhooks to the api process, signed with the token it knows; retries capped at 5 s apart (Google: up to 600 s) so a scenario settles in minutes.
    const hook = await this.emu('PUT', '/_emulator/webhook', {
      url: `${this.apiUrl}/webhooks/rbm`,
      clientTokens: { [AGENT]: CLIENT_TOKEN },
      retryMaxMs: 5000,
    });
    if (hook.status !== 200) throw new Error(`PUT /_emulator/webhook: ${hook.status} ${JSON.stringify(hook.body)}`);

    const roles: Array<[Role, number]> = [
      ['api', 0],
      ['inbound', 0],
      ['sms', 0],
      ['callbacks', 0],
    ];
    if (this.history) roles.push(['archiver', 0]);
    for (let i = 0; i < (o.dispatchers ?? 2); i += 1) roles.push(['dispatch', i]);
    await Promise.all(roles.map(([r, i]) => this.startRole(r, i)));
  }

  key(role: Role, index = 0): string {
    return role === 'dispatch' ? `dispatch-${index}` : role;
  }

  proc(role: Role, index = 0): Proc {
    const p = this.procs.get(this.key(role, index));
    if (!p) throw new Error(`no process ${this.key(role, index)}`);
    return p;
  }

  /** Spawns the role's process; resolves once it says it runs. */
  async startRole(role: Role, index = 0, waitReady = true): Promise<Proc> {
    const k = this.key(role, index);
    const n = (this.starts.get(k) ?? 0) + 1;
    this.starts.set(k, n);
    const p = spawnProc({
      name: n === 1 ? k : `${k}#${n}`,
      command: process.execPath,
      args: ['--import', TSX, join(ROOT, `workers/${role}.ts`)],
      env: this.env,
      cwd: ROOT,
      logPath: join(this.dir, `${k}.log`),
    });
    this.procs.set(k, p);
    if (waitReady) await waitForOutput(p, READY[role], 180_000); // a loaded 2-core machine can take a minute to start tsx
    return p;
  }

  /** kill -9 of the role's process, waiting until it is gone. */
  async kill9(role: Role, index = 0): Promise<void> {
    await stopProc(this.proc(role, index), 'SIGKILL', 10_000);
  }

  emu(method: string, path: string, body?: unknown): Promise<HttpAnswer> {
    return http(method, `${this.emulatorUrl}${path}`, body);
  }

  api(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<HttpAnswer> {
    return http(method, `${this.apiUrl}${path}`, body, { authorization: `Bearer ${API_KEY}`, ...headers });
  }

  async counters(): Promise<{
    accepted: number;
    rateLimited: number;
    tokensIssued: number;
    tokensRefused: number;
    tokenFaults: number;
    unauthorized: number;
    smsReceived: number;
    ttlRevoked: number;
    delivered: number;
    messagesAccepted: number;
    perAgent: Record<string, { accepted: number; rateLimited: number }>;
  }> {
    const r = await this.emu('GET', '/_emulator/counters');
    return r.body;
  }

  async close(): Promise<void> {
    const all = [...this.procs.values()];
    if (this.emulator) all.push(this.emulator);
    await Promise.all(all.map((p) => stopProc(p, 'SIGKILL', 5000)));
    this.db?.disconnect();
    if (this.redis) await this.redis.stop('SIGKILL');
    await this.history?.drop();
  }
}

/** Lock and stalled settings: the service's own unless CHAOS_LOCK_MS / CHAOS_STALLED_MS name others. */
export function lockEnv(): Record<string, string> {
  const out: Record<string, string> = {};
  const lock = process.env.CHAOS_LOCK_MS ?? 'default';
  const stalled = process.env.CHAOS_STALLED_MS ?? 'default';
  if (lock !== 'default') out.WORKER_LOCK_DURATION_MS = lock;
  if (stalled !== 'default') out.WORKER_STALLED_INTERVAL_MS = stalled;
  return out;
}
