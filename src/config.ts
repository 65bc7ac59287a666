/**
 * loadConfig(env) → one frozen Config. Every environment variable the service
 * reads is parsed here and nowhere else; every bad value is reported at once,
 * naming the variable, what was expected and what came. Durations are in ms.
 */
import { MAX_LANES } from './queue/keyspace.ts';
import { isIP } from 'node:net';
import { AGENT_ID_PATTERN } from '../jobs/common.ts';
import { defaultSendMessageOptions } from '../jobs/send-message.ts';
import { defaultSendSmsOptions } from '../jobs/send-sms.ts';
import { subnetOf } from './egress/addresses.ts';
import { EgressGuard, type AllowEntry, type EgressPolicy } from './egress/guard.ts';
import { ConfigError, type Problem } from './errors.ts';

export interface AgentConfig {
  agentId: string;
  /** Requests per second RBM allows this agent (messages and events together). */
  ratePerSec: number;
}

export interface ApiKeyConfig {
  key: string;
  agents: readonly string[];
}

/** 'emulator': the Twilio-compatible SMS sink of the built-in emulator (the default in emulator mode). */
export interface SmsConfig {
  provider: 'twilio' | 'webhook' | 'log' | 'emulator';
  from: string | undefined;
  twilio: { accountSid: string; authToken: string; baseUrl: string };
  webhook: { url: string; secret: string };
  ratePerSec: number;
  attempts: number;
  backoffMs: number;
  timeoutMs: number;
  /**
   * The provider honours our idempotency key: a try whose outcome is unknown (the
   * worker died after handing the SMS over) is repeated with the same key instead
   * of ending FALLBACK_FAILED, since the provider answers a repeat with the first SMS.
   */
  idempotent: boolean;
}

export type RbmEndpoint = { kind: 'emulator' } | { kind: 'url'; url: string };

/** The HTTP server's bounds on a client (Fastify and Node's http server). */
export interface HttpTimeouts {
  /** The whole request, headers and body, must arrive within this (a slow body is cut off: 408, closed). */
  requestTimeoutMs: number;
  /** The headers must arrive within this; at most requestTimeoutMs. */
  headersTimeoutMs: number;
  /** An idle keep-alive connection is closed after this; above a load balancer's idle timeout (60 s on most). */
  keepAliveTimeoutMs: number;
  /** A connection with no traffic either way this long is closed (a client that stops reading an answer). */
  idleTimeoutMs: number;
}

export const HTTP_TIMEOUT_DEFAULTS: Readonly<HttpTimeouts> = Object.freeze({
  requestTimeoutMs: 30_000,
  headersTimeoutMs: 10_000,
  keepAliveTimeoutMs: 72_000,
  idleTimeoutMs: 120_000,
});

export interface Config {
  /** HTTP port of the service (API, and later webhook and metrics). */
  port: number;
  host: string;
  http: HttpTimeouts;
  /** undefined: 127.0.0.1:6379, or a redis-server of our own when none answers. */
  redisUrl: string | undefined;
  /**
   * Redis Cluster seed nodes (REDIS_CLUSTER_NODES), each a redis:// or rediss:// URL (a bare host:port becomes
   * redis://host:port; AUTH and TLS come from the first one's URL); set, it selects cluster mode over redisUrl.
   */
  redisClusterNodes: readonly string[] | undefined;
  /** Bound of the start-up check of Redis (connect, INFO, a write): past it the process stops with REDIS_UNAVAILABLE. */
  redisStartTimeoutMs: number;
  queuePrefix: string;
  /** Lanes of the partitioned keyspace (src/queue/keyspace.ts): 16 on a cluster, 1 on one node. */
  keyspaceLanes: number;
  agents: readonly AgentConfig[];
  rbmEndpoint: RbmEndpoint;
  credentialsFile: string | undefined;
  webhookClientTokens: Readonly<Record<string, string>>;
  sms: SmsConfig;
  fallback: {
    /** The local deadline: expireTime + graceMs, then revoke and fall back if nothing came. */
    graceMs: number;
    /** Traffic types that fall back at once on TTL_EXPIRATION_REVOKE_FAILED (Google's advice for OTP); others revoke first. */
    immediateOnRevokeFailed: readonly string[];
  };
  inbound: {
    concurrency: number;
    /** Send READ for every incoming user message. */
    autoRead: boolean;
    /** Approximate cap of the inbound Redis stream consumers read. */
    streamMaxLen: number;
    /**
     * How long webhook event and message IDs are remembered for deduplication
     * (~100 bytes of Redis each; default STATUS_HOT_MS). Past it, a repeated status event is refused by
     * the state machine (already there); only a user message could reach
     * consumers twice, and RBM repeats one only when our acknowledgement was lost.
     */
    dedupeTtlMs: number;
    bodyLimitBytes: number;
  };
  /**
   * BullMQ stalled-job recovery: a crashed worker's jobs run again within about
   * lockDurationMs + stalledIntervalMs (README "Recovery after a crash"); a job
   * that stalls more than maxStalledCount times fails.
   */
  worker: { stalledIntervalMs: number; lockDurationMs: number; maxStalledCount: number };
  apiKeys: readonly ApiKeyConfig[];
  /** The key of /admin/queues (bull-board). */
  adminApiKey: string | undefined;
  emulatorPort: number;
  dispatch: {
    /** Jobs in flight per agent queue; 'auto' derives it from the agent's rate (see concurrencyFor). */
    concurrency: number | 'auto';
    attempts: number;
    backoffMs: number;
    /** 0..1: share of each backoff delay that is random. */
    backoffJitter: number;
    /** How long a job waits after a 429 without Retry-After (a queue without an adaptive rate, the SMS one, pauses that long). */
    rateLimitPauseMs: number;
    /**
     * An agent's adaptive rate (src/queue/rate-controller.ts): a 429 sets it to decrease × the accepted rate;
     * each clean second adds increasePerSec × the configured rate.
     */
    rateAdapt: { decrease: number; increasePerSec: number };
    /** BullMQ limiter window; short windows smooth the quota (see DESIGN.md). */
    limiterWindowMs: number;
    /** IS_TYPING older than this is dropped, not sent: the indicator would be a lie. */
    typingMaxAgeMs: number;
    /** READ receipts (and IS_TYPING) for one conversation within this window collapse into one; 0: off. */
    eventCoalesceWindowMs: number;
    /** The most agents one dispatch process serves (DISPATCH_MAX_AGENTS); 0: no cap. */
    maxAgents: number;
    /** How many dispatch processes serve each agent, for availability (DISPATCH_AGENT_REPLICAS). */
    agentReplicas: number;
    requestTimeoutMs: number;
    /** Fast in-request retries (connection reset, token refresh) before a job attempt fails. */
    fastRetries: number;
    keepCompleted: number;
    keepFailedMs: number;
  };
  /** Status callbacks (Standard Webhooks): off while secret is undefined. */
  callbacks: {
    /** The master secret, whsec_<base64>; each API key signs with a secret derived from it (src/callbacks/secrets.ts). */
    secret: string | undefined;
    timeoutMs: number;
    /** The retry schedule: retryBaseMs doubling up to retryMaxDelayMs, for retryForMs in all. */
    retryBaseMs: number;
    retryMaxDelayMs: number;
    retryForMs: number;
    concurrency: number;
    /** Calls in flight to one receiver (a URL origin), across all callback processes. */
    maxInFlightPerReceiver: number;
    /** Deliveries failed with no success between that open a receiver's breaker; its deliveries then wait, parked, for a probe. */
    breakerThreshold: number;
    /** The wait before the first probe; doubles after each failed probe, up to breakerMaxCooldownMs. */
    breakerCooldownMs: number;
    breakerMaxCooldownMs: number;
  };
  /**
   * Where requests to URLs users gave (status callbacks, the SMS webhook) may
   * go: CALLBACK_ALLOW_HOSTS, and loopback in emulator mode (src/egress/guard.ts).
   */
  egress: EgressPolicy;
  /** Message history in PostgreSQL (src/history/): every status change, archived from the history feed. */
  history: HistoryConfig;
  /** How long a status record, and after it its tombstone, lasts after the last change (as long as RBM may send news). */
  statusTtlMs: number;
  /** How long a settled record stays whole in Redis after its last move before it leaves for the archive (history/evictor.ts). */
  statusHotMs: number;
  shutdownTimeoutMs: number;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
}

export interface HistoryConfig {
  /** DATABASE_URL: a PostgreSQL URL; absent: the embedded PGlite under dataDir. */
  databaseUrl: string | undefined;
  dataDir: string;
  retentionDays: number;
  /** HISTORY_STORE_TEXT: keep a message's text in the archive (off: numbers and states only). */
  storeText: boolean;
  /** HISTORY_PHONE_KEY: the HMAC key of the phone-number lookups; absent: one the archive keeps itself. */
  phoneKey: string | undefined;
}

const DAY_MS = 86_400_000;
export const DEMO_AGENT: AgentConfig = Object.freeze({ agentId: 'demo-agent', ratePerSec: 50 });
// A Map: RBM_ENDPOINT=constructor must not find Object's.
const REGION_HOSTS = new Map([
  ['global', 'https://rcsbusinessmessaging.googleapis.com'],
  ['us', 'https://us-rcsbusinessmessaging.googleapis.com'],
  ['europe', 'https://europe-rcsbusinessmessaging.googleapis.com'],
  ['asia', 'https://asia-rcsbusinessmessaging.googleapis.com'],
]);

type Env = Readonly<Record<string, string | undefined>>;

/** Collects problems instead of throwing on the first, so a user fixes all at once. */
class EnvReader {
  readonly problems: Problem[] = [];
  constructor(private readonly env: Env) {}

  raw(name: string): string | undefined {
    const value = this.env[name];
    return value === undefined || value.trim() === '' ? undefined : value.trim();
  }

  fail(name: string, expected: string, got: string): void {
    this.problems.push({ path: name, problem: `expected ${expected}, got '${got}'` });
  }

  int(name: string, fallback: number, min: number, max: number): number {
    const value = this.raw(name);
    if (value === undefined) return fallback;
    const n = Number(value);
    if (!/^-?\d+$/.test(value) || n < min || n > max) {
      this.fail(name, `a whole number from ${min} to ${max}`, value);
      return fallback;
    }
    return n;
  }

  fraction(name: string, fallback: number): number {
    const value = this.raw(name);
    if (value === undefined) return fallback;
    const n = Number(value);
    if (!Number.isFinite(n) || n < 0 || n > 1) {
      this.fail(name, 'a number from 0 to 1', value);
      return fallback;
    }
    return n;
  }

  /** A share within [min, max], e.g. 0.9. */
  share(name: string, fallback: number, min: number, max: number): number {
    const value = this.raw(name);
    if (value === undefined) return fallback;
    const n = Number(value);
    if (!Number.isFinite(n) || n < min || n > max) {
      this.fail(name, `a number from ${min} to ${max}`, value);
      return fallback;
    }
    return n;
  }

  oneOf<T extends string>(name: string, allowed: readonly T[], fallback: T): T {
    const value = this.raw(name);
    if (value === undefined) return fallback;
    if (!(allowed as readonly string[]).includes(value)) {
      this.fail(name, `one of ${allowed.join(', ')}`, value);
      return fallback;
    }
    return value as T;
  }

  bool(name: string, fallback: boolean): boolean {
    const value = this.raw(name);
    if (value === undefined) return fallback;
    if (value === 'true' || value === '1') return true;
    if (value === 'false' || value === '0') return false;
    this.fail(name, 'true or false', value);
    return fallback;
  }

  url(name: string): string | undefined {
    const value = this.raw(name);
    if (value === undefined) return undefined;
    try {
      const url = new URL(value);
      if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error('protocol');
      return value.replace(/\/+$/, '');
    } catch {
      this.fail(name, 'an http(s) URL', value);
      return undefined;
    }
  }

  /** A postgres:// or postgresql:// URL (credentials may be in it: never echoed back). */
  postgresUrl(name: string): string | undefined {
    const value = this.raw(name);
    if (value === undefined) return undefined;
    try {
      const url = new URL(value);
      if (url.protocol === 'postgres:' || url.protocol === 'postgresql:') return value;
      this.fail(name, 'a postgres:// or postgresql:// URL', `${url.protocol}//…`);
    } catch {
      this.fail(name, 'a postgres:// or postgresql:// URL', 'something that is not a URL');
    }
    return undefined;
  }

  /** A secret of at least `minLength` characters (its value is never echoed back). */
  secret(name: string, minLength: number): string | undefined {
    const value = this.raw(name);
    if (value === undefined) return undefined;
    if (value.length < minLength) this.fail(name, `at least ${minLength} characters`, `${value.length} characters`);
    return value;
  }

  /** "a:x,b:y" → [[a, x], [b, y]]; reports items without a ':' part. */
  pairs(name: string, example: string): Array<[string, string]> {
    const value = this.raw(name);
    if (value === undefined) return [];
    const out: Array<[string, string]> = [];
    for (const item of value
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean)) {
      const at = item.indexOf(':');
      if (at <= 0 || at === item.length - 1) {
        this.fail(name, `comma-separated NAME:VALUE pairs like '${example}'`, item);
        continue;
      }
      out.push([item.slice(0, at), item.slice(at + 1)]);
    }
    return out;
  }
}

const TRAFFIC_TYPES = ['AUTHENTICATION', 'TRANSACTION', 'PROMOTION', 'SERVICEREQUEST', 'ACKNOWLEDGEMENT', 'UNSPECIFIED'];

function parseTrafficTypes(r: EnvReader): string[] {
  const value = r.raw('FALLBACK_ON_REVOKE_FAILED');
  if (value === undefined) return ['AUTHENTICATION'];
  if (value === 'none') return [];
  const types = value
    .split(',')
    .map((t) => t.trim())
    .filter(Boolean);
  for (const t of types)
    if (!TRAFFIC_TYPES.includes(t)) r.fail('FALLBACK_ON_REVOKE_FAILED', `traffic types from ${TRAFFIC_TYPES.join(', ')}, or none`, t);
  return types;
}

function parseSms(r: EnvReader, emulator: boolean, egress: EgressPolicy): SmsConfig {
  const provider = r.oneOf('SMS_PROVIDER', ['twilio', 'webhook', 'log', 'emulator'] as const, emulator ? 'emulator' : 'log');
  const sms: SmsConfig = {
    provider,
    from: r.raw('SMS_FROM'),
    twilio: {
      accountSid: r.raw('SMS_TWILIO_ACCOUNT_SID') ?? '',
      authToken: r.raw('SMS_TWILIO_AUTH_TOKEN') ?? '',
      baseUrl: r.url('SMS_TWILIO_BASE_URL') ?? 'https://api.twilio.com',
    },
    webhook: { url: r.url('SMS_WEBHOOK_URL') ?? '', secret: r.raw('SMS_WEBHOOK_SECRET') ?? '' },
    ratePerSec: r.int('SMS_RATE_PER_SEC', 10, 1, 10_000),
    attempts: r.int('SMS_ATTEMPTS', defaultSendSmsOptions.attempts, 1, 100),
    backoffMs: r.int('SMS_BACKOFF_MS', defaultSendSmsOptions.backoff.delay, 1, 3_600_000),
    timeoutMs: r.int('SMS_TIMEOUT_MS', 10_000, 100, 600_000),
    // The emulator's sink honours the key; a real provider only where its operator says so.
    idempotent: r.bool('SMS_IDEMPOTENT', provider === 'emulator' || provider === 'log'),
  };
  if (provider === 'twilio') {
    for (const name of ['SMS_TWILIO_ACCOUNT_SID', 'SMS_TWILIO_AUTH_TOKEN'] as const) {
      if (!r.raw(name)) r.problems.push({ path: name, problem: 'expected a value when SMS_PROVIDER is twilio, got nothing' });
    }
  }
  if (provider === 'webhook') {
    if (!sms.webhook.url)
      r.problems.push({ path: 'SMS_WEBHOOK_URL', problem: 'expected an http(s) URL when SMS_PROVIDER is webhook, got nothing' });
    else {
      // What can be judged without DNS; a name is checked again at every connect.
      const inspected = new EgressGuard(egress).inspect(sms.webhook.url);
      if ('refusal' in inspected) r.problems.push({ path: 'SMS_WEBHOOK_URL', problem: inspected.refusal.reason });
    }
    if (sms.webhook.secret.length < 16)
      r.problems.push({ path: 'SMS_WEBHOOK_SECRET', problem: 'expected a secret of at least 16 characters when SMS_PROVIDER is webhook' });
  }
  if (provider === 'emulator' && !emulator) {
    r.problems.push({ path: 'SMS_PROVIDER', problem: "expected twilio, webhook or log with a real RBM endpoint, got 'emulator'" });
  }
  return sms;
}

function parseAgents(r: EnvReader, emulator: boolean): AgentConfig[] {
  const agents: AgentConfig[] = [];
  const seen = new Set<string>();
  for (const [agentId, rate] of r.pairs('RBM_AGENTS', 'agent-a:50,agent-b:20')) {
    const ratePerSec = Number(rate);
    if (!AGENT_ID_PATTERN.test(agentId)) r.fail('RBM_AGENTS', 'agent IDs of letters, digits, - and _ (no @rbm.goog)', agentId);
    else if (!/^\d+$/.test(rate) || ratePerSec < 1 || ratePerSec > 100_000)
      r.fail('RBM_AGENTS', `a rate per second from 1 to 100000 for agent ${agentId}`, rate);
    else if (seen.has(agentId)) r.fail('RBM_AGENTS', 'each agent once', agentId);
    else {
      seen.add(agentId);
      agents.push({ agentId, ratePerSec });
    }
  }
  if (agents.length === 0 && r.raw('RBM_AGENTS') === undefined) {
    if (emulator) return [DEMO_AGENT];
    r.problems.push({
      path: 'RBM_AGENTS',
      problem: "expected at least one agent like 'my-agent:50' when a real RBM endpoint is used, got nothing",
    });
  }
  return agents;
}

function parseEndpoint(r: EnvReader, credentialsFile: string | undefined): RbmEndpoint {
  const value = r.raw('RBM_ENDPOINT');
  if (value === undefined) {
    return credentialsFile ? { kind: 'url', url: REGION_HOSTS.get('global')! } : { kind: 'emulator' };
  }
  if (value === 'emulator') return { kind: 'emulator' };
  const region = REGION_HOSTS.get(value);
  if (region) return { kind: 'url', url: region };
  try {
    const url = new URL(value);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error('protocol');
    return { kind: 'url', url: value.replace(/\/+$/, '') };
  } catch {
    r.fail('RBM_ENDPOINT', 'global, us, europe, asia, emulator or an http(s) base URL', value);
    return { kind: 'emulator' };
  }
}

function parseRedisUrl(r: EnvReader): string | undefined {
  const value = r.raw('REDIS_URL');
  if (value === undefined) return undefined;
  try {
    const url = new URL(value);
    if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') throw new Error('protocol');
    return value;
  } catch {
    r.fail('REDIS_URL', 'a redis:// or rediss:// URL', value);
    return undefined;
  }
}

function parseClusterNodes(r: EnvReader): string[] | undefined {
  const value = r.raw('REDIS_CLUSTER_NODES');
  if (value === undefined) return undefined;
  const expected = 'host:port or redis(s)://[user:password@]host:port, separated by commas';
  const nodes: string[] = [];
  for (const item of value.split(',').map((v) => v.trim())) {
    const url = /^[A-Za-z0-9.-]+:\d{1,5}$/.test(item) ? `redis://${item}` : item;
    try {
      const parsed = new URL(url);
      if ((parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') || !parsed.hostname || !parsed.port) throw new Error('form');
      nodes.push(url);
    } catch {
      // The password, if any, is not echoed.
      r.fail('REDIS_CLUSTER_NODES', expected, item.replace(/\/\/[^@/]*@/, '//***@'));
    }
  }
  return nodes.length > 0 ? nodes : undefined;
}

function parseApiKeys(r: EnvReader): ApiKeyConfig[] {
  return r.pairs('API_KEYS', 'KEY:agent-a+agent-b').map(([key, agents]) => {
    if (key.length < 16) r.fail('API_KEYS', 'keys of at least 16 characters', `${key.slice(0, 3)}…`);
    return { key, agents: agents.split('+').filter(Boolean) };
  });
}

function parseConcurrency(r: EnvReader, value: string): number {
  const n = Number(value);
  if (/^\d+$/.test(value) && n >= 1 && n <= 5000) return n;
  r.fail('DISPATCH_CONCURRENCY', "'auto' or a whole number from 1 to 5000", value);
  return 50;
}

/** Standard Webhooks secrets are 'whsec_' and 24 to 64 random bytes in base64. */
function parseCallbackSecret(r: EnvReader): string | undefined {
  const value = r.raw('CALLBACK_SECRET');
  if (value === undefined) return undefined;
  const body = value.startsWith('whsec_') ? value.slice(6) : '';
  const bytes = /^[A-Za-z0-9+/]+={0,2}$/.test(body) ? Buffer.from(body, 'base64').length : 0;
  if (bytes < 24 || bytes > 64) {
    r.problems.push({
      path: 'CALLBACK_SECRET',
      problem:
        `expected 'whsec_' and 24 to 64 bytes in base64 (openssl rand -base64 32), ` +
        `got ${bytes === 0 ? 'something else' : `${bytes} bytes`}`,
    });
    return undefined;
  }
  return value;
}

/**
 * CALLBACK_ALLOW_HOSTS: "10.0.0.0/8,fd00::/8,192.168.1.20,hooks.internal".
 * Addresses are a /32 or /128; names are matched as the URL spells them.
 */
function parseAllowHosts(r: EnvReader): AllowEntry[] {
  const value = r.raw('CALLBACK_ALLOW_HOSTS');
  if (value === undefined) return [];
  const entries: AllowEntry[] = [];
  for (const item of value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const bare = item.startsWith('[') && item.endsWith(']') ? item.slice(1, -1) : item;
    if (bare.includes('/') || isIP(bare) !== 0) {
      const subnet = subnetOf(bare);
      if (subnet) entries.push({ kind: 'subnet', ...subnet });
      else
        r.fail(
          'CALLBACK_ALLOW_HOSTS',
          'CIDRs like 10.0.0.0/8 or fd00::/8 (prefix up to 32 for IPv4, 128 for IPv6), addresses or host names',
          item,
        );
      continue;
    }
    // A name must be one the URL parser keeps as it is: '0x7f000001' or '127.1' are addresses in disguise.
    let host: string | undefined;
    try {
      host = new URL(`http://${bare}/`).hostname;
    } catch {
      host = undefined;
    }
    if (host === undefined || host !== bare.toLowerCase() || isIP(host) !== 0 || !/^[a-z0-9_.-]+$/.test(host)) {
      r.fail(
        'CALLBACK_ALLOW_HOSTS',
        'CIDRs, addresses or host names like hooks.internal (an address spelled otherwise than a.b.c.d is not a name)',
        item,
      );
      continue;
    }
    entries.push({ kind: 'host', name: host });
  }
  return entries;
}

function parseWebhookTokens(r: EnvReader): Record<string, string> {
  const value = r.raw('RBM_WEBHOOK_CLIENT_TOKENS');
  if (value === undefined) return {};
  // One bare token (no ':') serves every agent.
  if (!value.includes(':')) return { '*': value };
  return Object.fromEntries(r.pairs('RBM_WEBHOOK_CLIENT_TOKENS', 'agent-a:TOKEN,agent-b:TOKEN'));
}

export function loadConfig(env: Env): Readonly<Config> {
  const r = new EnvReader(env);
  const credentialsFile = r.raw('GOOGLE_APPLICATION_CREDENTIALS');
  const rbmEndpoint = parseEndpoint(r, credentialsFile);
  if (rbmEndpoint.kind === 'url' && !credentialsFile) {
    r.problems.push({
      path: 'GOOGLE_APPLICATION_CREDENTIALS',
      problem: `expected a service-account key file when RBM_ENDPOINT is a real endpoint (${rbmEndpoint.url}), got nothing`,
    });
  }
  const redisClusterNodes = parseClusterNodes(r);
  // In a cluster every key must share a hash slot with the keys its scripts touch: the prefix is a hash tag.
  const queuePrefix = r.raw('QUEUE_PREFIX') ?? (redisClusterNodes ? '{rbm}' : 'rbm');
  if (!/^(\{[A-Za-z0-9_.-]+\}|[A-Za-z0-9_.-]+)$/.test(queuePrefix))
    r.fail('QUEUE_PREFIX', "letters, digits, '_', '.', '-', optionally in braces like {rbm}", queuePrefix);
  else if (redisClusterNodes && !queuePrefix.startsWith('{'))
    r.fail('QUEUE_PREFIX', 'a prefix in braces like {rbm} when REDIS_CLUSTER_NODES is set (a Redis Cluster hash tag)', queuePrefix);
  const concurrencyRaw = r.raw('DISPATCH_CONCURRENCY');
  const egress: EgressPolicy = { allow: parseAllowHosts(r), allowLoopback: rbmEndpoint.kind === 'emulator' };
  // Read first: webhook dedupe lasts as long as the hot window by default.
  const statusHotMs = r.int('STATUS_HOT_MS', DAY_MS, 1000, 365 * DAY_MS);

  const config: Config = {
    port: r.int('PORT', 3000, 0, 65_535),
    host: r.raw('HOST') ?? '127.0.0.1',
    http: {
      requestTimeoutMs: r.int('HTTP_REQUEST_TIMEOUT_MS', HTTP_TIMEOUT_DEFAULTS.requestTimeoutMs, 100, 3_600_000),
      headersTimeoutMs: r.int('HTTP_HEADERS_TIMEOUT_MS', HTTP_TIMEOUT_DEFAULTS.headersTimeoutMs, 100, 3_600_000),
      keepAliveTimeoutMs: r.int('HTTP_KEEP_ALIVE_TIMEOUT_MS', HTTP_TIMEOUT_DEFAULTS.keepAliveTimeoutMs, 100, 3_600_000),
      idleTimeoutMs: r.int('HTTP_IDLE_TIMEOUT_MS', HTTP_TIMEOUT_DEFAULTS.idleTimeoutMs, 1000, 3_600_000),
    },
    redisUrl: parseRedisUrl(r),
    redisClusterNodes,
    redisStartTimeoutMs: r.int('REDIS_START_TIMEOUT_MS', 5000, 100, 120_000),
    queuePrefix,
    // One node gains nothing from lanes (every lane on the same node) and keeps its pre-lane keys; a cluster spreads over them.
    keyspaceLanes: r.int('KEYSPACE_LANES', redisClusterNodes ? 16 : 1, 1, MAX_LANES),
    agents: parseAgents(r, rbmEndpoint.kind === 'emulator'),
    rbmEndpoint,
    credentialsFile,
    webhookClientTokens: parseWebhookTokens(r),
    sms: parseSms(r, rbmEndpoint.kind === 'emulator', egress),
    fallback: {
      graceMs: r.int('FALLBACK_GRACE_MS', 15_000, 0, 86_400_000),
      immediateOnRevokeFailed: parseTrafficTypes(r),
    },
    inbound: {
      concurrency: r.int('INBOUND_CONCURRENCY', 50, 1, 5000),
      autoRead: r.bool('INBOUND_AUTO_READ', false),
      streamMaxLen: r.int('INBOUND_STREAM_MAXLEN', 100_000, 100, 100_000_000),
      dedupeTtlMs: r.int('WEBHOOK_DEDUPE_TTL_MS', statusHotMs, 1000, 90 * DAY_MS),
      bodyLimitBytes: r.int('WEBHOOK_BODY_LIMIT_BYTES', 1024 * 1024, 1024, 64 * 1024 * 1024),
    },
    worker: {
      stalledIntervalMs: r.int('WORKER_STALLED_INTERVAL_MS', 3000, 100, 3_600_000),
      lockDurationMs: r.int('WORKER_LOCK_DURATION_MS', 5000, 100, 3_600_000),
      maxStalledCount: r.int('WORKER_MAX_STALLED_COUNT', 20, 0, 1000),
    },
    apiKeys: parseApiKeys(r),
    adminApiKey: r.raw('ADMIN_API_KEY'),
    emulatorPort: r.int('RBM_EMULATOR_PORT', 3001, 0, 65_535),
    dispatch: {
      concurrency: concurrencyRaw === undefined || concurrencyRaw === 'auto' ? 'auto' : parseConcurrency(r, concurrencyRaw),
      attempts: r.int('DISPATCH_ATTEMPTS', defaultSendMessageOptions.attempts, 1, 100),
      backoffMs: r.int('DISPATCH_BACKOFF_MS', defaultSendMessageOptions.backoff.delay, 1, 3_600_000),
      backoffJitter: r.fraction('DISPATCH_BACKOFF_JITTER', defaultSendMessageOptions.backoff.jitter),
      rateLimitPauseMs: r.int('RBM_RATE_LIMIT_PAUSE_MS', 1000, 1, 3_600_000),
      limiterWindowMs: r.int('LIMITER_WINDOW_MS', 100, 10, 60_000),
      rateAdapt: {
        decrease: r.share('RATE_ADAPT_DECREASE', 0.9, 0.1, 0.99),
        increasePerSec: r.share('RATE_ADAPT_INCREASE_PER_SEC', 0.02, 0.001, 1),
      },
      typingMaxAgeMs: r.int('TYPING_MAX_AGE_MS', 15_000, 0, 3_600_000),
      eventCoalesceWindowMs: r.int('EVENT_COALESCE_WINDOW_MS', 500, 0, 60_000),
      maxAgents: r.int('DISPATCH_MAX_AGENTS', 0, 1, 100_000),
      agentReplicas: r.int('DISPATCH_AGENT_REPLICAS', 2, 1, 10),
      requestTimeoutMs: r.int('RBM_REQUEST_TIMEOUT_MS', 10_000, 100, 600_000),
      fastRetries: r.int('RBM_FAST_RETRIES', 2, 0, 10),
      keepCompleted: r.int('JOB_KEEP_COMPLETED', 1000, 0, 1_000_000),
      keepFailedMs: r.int('JOB_KEEP_FAILED_MS', 7 * DAY_MS, 0, 90 * DAY_MS),
    },
    callbacks: {
      secret: parseCallbackSecret(r),
      timeoutMs: r.int('CALLBACK_TIMEOUT_MS', 10_000, 100, 60_000),
      retryBaseMs: r.int('CALLBACK_RETRY_BASE_MS', 5000, 10, 3_600_000),
      retryMaxDelayMs: r.int('CALLBACK_RETRY_MAX_DELAY_MS', 3_600_000, 10, DAY_MS),
      retryForMs: r.int('CALLBACK_RETRY_FOR_MS', DAY_MS, 0, 7 * DAY_MS),
      concurrency: r.int('CALLBACK_CONCURRENCY', 50, 1, 5000),
      maxInFlightPerReceiver: r.int('CALLBACK_MAX_IN_FLIGHT_PER_RECEIVER', 10, 1, 5000),
      breakerThreshold: r.int('CALLBACK_BREAKER_THRESHOLD', 5, 1, 1000),
      breakerCooldownMs: r.int('CALLBACK_BREAKER_COOLDOWN_MS', 5000, 10, 3_600_000),
      breakerMaxCooldownMs: r.int('CALLBACK_BREAKER_MAX_COOLDOWN_MS', 300_000, 10, DAY_MS),
    },
    egress,
    history: {
      databaseUrl: r.postgresUrl('DATABASE_URL'),
      dataDir: r.raw('HISTORY_DATA_DIR') ?? '.data/history',
      retentionDays: r.int('HISTORY_RETENTION_DAYS', 90, 1, 3650),
      storeText: r.bool('HISTORY_STORE_TEXT', false),
      phoneKey: r.secret('HISTORY_PHONE_KEY', 16),
    },
    statusTtlMs: r.int('STATUS_TTL_MS', 30 * DAY_MS, 60_000, 365 * DAY_MS),
    statusHotMs,
    shutdownTimeoutMs: r.int('SHUTDOWN_TIMEOUT_MS', 30_000, 0, 600_000),
    logLevel: r.oneOf('LOG_LEVEL', ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const, 'info'),
  };
  // A record past its TTL is gone from Redis whether archived or not: the hot window must end before.
  if (config.statusHotMs > config.statusTtlMs) {
    r.problems.push({
      path: 'STATUS_HOT_MS',
      problem: `expected at most STATUS_TTL_MS (${config.statusTtlMs}), got ${config.statusHotMs}`,
    });
  }
  // Node refuses a server whose headers may take longer than the whole request.
  if (config.http.headersTimeoutMs > config.http.requestTimeoutMs) {
    r.problems.push({
      path: 'HTTP_HEADERS_TIMEOUT_MS',
      problem: `expected at most HTTP_REQUEST_TIMEOUT_MS (${config.http.requestTimeoutMs}), got ${config.http.headersTimeoutMs}`,
    });
  }
  const cb = config.callbacks;
  if (cb.breakerMaxCooldownMs < cb.breakerCooldownMs) {
    r.problems.push({
      path: 'CALLBACK_BREAKER_MAX_COOLDOWN_MS',
      problem: `expected at least CALLBACK_BREAKER_COOLDOWN_MS (${cb.breakerCooldownMs}), got ${cb.breakerMaxCooldownMs}`,
    });
  }
  if (config.adminApiKey !== undefined && config.adminApiKey.length < 16) {
    r.problems.push({ path: 'ADMIN_API_KEY', problem: `expected at least 16 characters, got ${config.adminApiKey.length}` });
  }
  // Agents come and go at run time (the agent directory): a key may name one not in RBM_AGENTS, or '*' for every agent.
  for (const k of config.apiKeys) {
    for (const a of k.agents) {
      if (a !== '*' && !AGENT_ID_PATTERN.test(a)) r.fail('API_KEYS', 'agent IDs of letters, digits, - and _, or * for every agent', a);
    }
  }
  if (r.problems.length > 0) throw new ConfigError(r.problems);
  return deepFreeze(config);
}

/**
 * Jobs in flight for one agent. RBM answers in tens of ms, so a rate R needs
 * at least R × RTT requests in flight; we assume a 100 ms round trip and
 * double it for headroom, never below 8 (DESIGN.md "Concurrency covers the round trip").
 */
/**
 * 'auto': rate × 0.2 s (Little's law over RBM's round trip), within 8–500.
 * The cap is there because every job in flight holds a lock that the worker
 * must renew within WORKER_LOCK_DURATION_MS: a thousand in one process that
 * falls behind (CPU starved, GC) lose their locks together and run again,
 * which burns throughput. Beyond ~2,500/s per agent, add dispatch processes.
 */
export const AUTO_CONCURRENCY_MAX = 500;
export function concurrencyFor(config: Pick<Config, 'dispatch'>, agent: AgentConfig): number {
  if (config.dispatch.concurrency !== 'auto') return config.dispatch.concurrency;
  return Math.min(AUTO_CONCURRENCY_MAX, Math.max(8, Math.ceil(agent.ratePerSec * 0.2)));
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
