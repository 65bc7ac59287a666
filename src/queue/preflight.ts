/**
 * The start-up check of the Redis the config names, before any queue or
 * worker touches it. A Cluster node, a replica, a refused password or a port
 * that is not Redis at all otherwise show up as every send failing and
 * BullMQ's fetch loops logging an error per attempt (94,000 lines in 20 s
 * against a Cluster node); here each is one RedisCheckError whose message is
 * one line, naming the URL (password masked), what came and what to do.
 *
 * One connection of its own, no retries, every step within `timeoutMs`: a
 * Redis that does not answer stops the start in bounded time instead of
 * waiting on ioredis' reconnect loop forever.
 */
import { Cluster, Redis } from 'ioredis';
import { RedisCheckError, type RedisProblem } from '../errors.ts';
import { maskUrlPassword } from '../mask.ts';

const AUTH_ERROR = /^(WRONGPASS|NOAUTH)|invalid (username-)?password/i;

/** XAUTOCLAIM (the webhook stream's recovery of a crashed consumer's entries) came in Redis 6.2. */
export const MIN_REDIS_VERSION = '6.2.0';

export interface RedisCheck {
  /** redis_version of INFO. */
  version: string;
  /** Not fatal, to be logged once: a maxmemory-policy that may evict queue keys. */
  warnings: string[];
}

export interface RedisCheckOptions {
  /** The queue prefix: the write probe's key lives under it (and in its Cluster slot when it is a {hash tag}). */
  prefix: string;
  /** Bound of the whole check: connect, INFO and the write probe. */
  timeoutMs: number;
}

export async function checkRedis(url: string, opts: RedisCheckOptions): Promise<RedisCheck> {
  const shown = maskUrlPassword(url);
  const fail = (problem: RedisProblem, what: string, expected: string, got: string, cause?: unknown) =>
    new RedisCheckError({ url: shown, problem, what, expected, got }, cause === undefined ? undefined : { cause });
  const seconds = `${opts.timeoutMs / 1000} s`;
  const unreachable = url.startsWith('rediss:')
    ? 'does not answer over TLS; start it, or fix REDIS_URL (rediss:// needs a Redis that speaks TLS)'
    : 'does not answer; start it or fix REDIS_URL';
  const redis = new Redis(url, {
    lazyConnect: true,
    connectTimeout: opts.timeoutMs,
    commandTimeout: opts.timeoutMs,
    // One try: a wrong Redis must be reported, not retried.
    retryStrategy: () => null,
    maxRetriesPerRequest: 0,
    reconnectOnError: () => false,
    // INFO is sent by us, below; ioredis' own ready check would hide what it answered.
    enableReadyCheck: false,
    disableClientInfo: true,
  });
  // Errors arrive as rejections of the calls below; without a listener ioredis would print each to stderr.
  let lastError: Error | undefined;
  // A refused AUTH (sent on connect) makes the next commands fail with NOAUTH; its own answer says more.
  let authError: Error | undefined;
  redis.on('error', (err: Error) => {
    lastError = err;
    if (!authError && /^WRONGPASS|invalid (username-)?password/i.test(err.message)) authError = err;
  });
  const credentialsGiven = hasCredentials(url);
  let connected = false;
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(
        connected
          ? fail(
              'not-redis',
              `accepted a connection but sent no Redis reply within ${seconds}; it is not Redis, or it is stuck`,
              'a reply to INFO',
              'nothing',
            )
          : fail('unreachable', unreachable, `a connection within ${seconds}`, 'no answer'),
      );
    }, opts.timeoutMs);
  });
  const step = <T>(p: Promise<T>) => Promise.race([p, deadline]);

  try {
    try {
      await step(redis.connect());
      connected = true;
    } catch (err) {
      if (err instanceof RedisCheckError) throw err;
      throw explain(lastError ?? (err as Error), false);
    }
    let info: string;
    try {
      info = await step(redis.info());
    } catch (err) {
      if (err instanceof RedisCheckError) throw err;
      throw explain(err as Error, true);
    }
    const field = (name: string) => new RegExp(`^${name}:(.*)$`, 'm').exec(info)?.[1]?.trim();

    const version = field('redis_version');
    if (version === undefined)
      throw fail('not-redis', 'answered INFO without a redis_version; it is not Redis', 'a Redis INFO reply', `'${info.slice(0, 60)}'`);
    if (field('cluster_enabled') === '1') {
      throw fail(
        'cluster',
        'is a Redis Cluster node; set REDIS_CLUSTER_NODES to its nodes (host:port,host:port) instead of REDIS_URL',
        'a standalone Redis',
        'cluster_enabled:1',
      );
    }
    if (field('role') === 'slave') {
      const primary = `${field('master_host') ?? '?'}:${field('master_port') ?? '?'}`;
      throw fail('replica', `is a read-only replica of ${primary}; point REDIS_URL at the primary`, 'role:master', 'role:slave');
    }
    if (olderThan(version, MIN_REDIS_VERSION)) {
      throw fail(
        'version',
        `is Redis ${version}; rbm-dispatch needs ${MIN_REDIS_VERSION} or later`,
        `redis_version ${MIN_REDIS_VERSION} or later`,
        version,
      );
    }
    // A write tells what INFO cannot: a proxy in front of a Cluster (MOVED/ASK), READONLY, an ACL without
    // write rights (NOPERM), a full Redis (OOM) or one that stopped writes after a failed save (MISCONF).
    try {
      await step(redis.set(`${opts.prefix}:start-check`, String(process.pid), 'PX', 10_000));
    } catch (err) {
      if (err instanceof RedisCheckError) throw err;
      throw explain(err as Error, true);
    }

    const warnings: string[] = [];
    const policy = field('maxmemory_policy');
    if (policy !== undefined && policy !== 'noeviction') {
      warnings.push(
        `Redis at ${shown} has maxmemory-policy ${policy}: when memory runs out it will evict queue and status keys; ` +
          `BullMQ needs noeviction (CONFIG SET maxmemory-policy noeviction)`,
      );
    }
    return { version, warnings };
  } finally {
    clearTimeout(timer);
    redis.disconnect();
  }

  /** Turns what ioredis reported into the problem the user must fix. */
  function explain(err: Error, afterConnect: boolean): RedisCheckError {
    const message = err.message;
    const code = (err as NodeJS.ErrnoException).code ?? '';
    if (AUTH_ERROR.test(message)) {
      return credentialsGiven
        ? fail(
            'auth',
            'refused the password; check the credentials in REDIS_URL',
            'AUTH to succeed',
            (authError ?? err).message,
            authError ?? err,
          )
        : fail('auth', 'requires a password; give it in REDIS_URL (redis://:PASSWORD@host:port)', 'AUTH to succeed', message, err);
    }
    if (/^(MOVED|ASK|CLUSTERDOWN)\b/.test(message)) {
      return fail(
        'cluster',
        'is a Redis Cluster node; set REDIS_CLUSTER_NODES to its nodes (host:port,host:port) instead of REDIS_URL',
        'a standalone Redis',
        message,
        err,
      );
    }
    if (/^READONLY\b/.test(message))
      return fail('replica', 'is read-only (a replica); point REDIS_URL at the primary', 'a write to succeed', message, err);
    if (err.name === 'ParserError' || /protocol error/i.test(message)) {
      return fail(
        'not-redis',
        'is not Redis (it answered something else); check the host and port in REDIS_URL',
        'a Redis reply',
        `a protocol error: ${message}`,
        err,
      );
    }
    if (/command timed out/i.test(message)) {
      return fail(
        'not-redis',
        `accepted a connection but sent no Redis reply within ${seconds}; it is not Redis, or it is stuck`,
        'a reply to INFO',
        'nothing',
        err,
      );
    }
    if (
      !afterConnect ||
      ['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT'].includes(code)
    ) {
      return fail('unreachable', unreachable, `a connection within ${seconds}`, code ? `${code} (${message})` : message, err);
    }
    if (/connection is closed/i.test(message)) {
      return fail(
        'not-redis',
        'closed the connection without a Redis reply; check the host, port and redis:// or rediss:// in REDIS_URL',
        'a Redis reply',
        'the connection closed',
        err,
      );
    }
    return fail('refused', 'refused what BullMQ needs (INFO and a write)', 'OK', message, err);
  }
}

function hasCredentials(url: string): boolean {
  try {
    const parsed = new URL(url);
    return parsed.password !== '' || parsed.username !== '';
  } catch {
    return false;
  }
}

/** Compares dotted versions numerically: '7.0.15' vs '6.2.0'. */
export function olderThan(version: string, min: string): boolean {
  const a = version.split('.').map((n) => Number.parseInt(n, 10) || 0);
  const b = min.split('.').map((n) => Number.parseInt(n, 10) || 0);
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return d < 0;
  }
  return false;
}

/**
 * The start-up check in cluster mode (REDIS_CLUSTER_NODES): the nodes answer
 * as a Cluster that serves every slot, each master is Redis 6.2 or later, and
 * a write under the prefix's hash tag succeeds. One Cluster connection of its
 * own, no retries, every step within `timeoutMs`.
 */
export async function checkRedisCluster(nodes: readonly string[], opts: RedisCheckOptions): Promise<RedisCheck> {
  const shown = nodes.map(maskUrlPassword).join(',');
  const fail = (problem: RedisProblem, what: string, expected: string, got: string, cause?: unknown) =>
    new RedisCheckError({ url: shown, problem, what, expected, got }, cause === undefined ? undefined : { cause });
  const cluster = new Cluster(clusterStartupNodes(nodes), {
    lazyConnect: true,
    clusterRetryStrategy: () => null,
    enableOfflineQueue: true,
    redisOptions: { ...clusterAuth(nodes), connectTimeout: opts.timeoutMs, maxRetriesPerRequest: 0 },
  });
  let lastError: Error | undefined;
  cluster.on('error', (err: Error) => (lastError = err));
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          fail(
            'unreachable',
            `did not answer as a Redis Cluster within ${opts.timeoutMs / 1000} s`,
            'cluster_state:ok',
            lastError?.message ?? 'no answer',
          ),
        ),
      opts.timeoutMs,
    );
  });
  const step = <T>(p: Promise<T>) => Promise.race([p, deadline]);
  try {
    try {
      await step(cluster.connect());
    } catch (err) {
      if (err instanceof RedisCheckError) throw err;
      const message = (lastError ?? (err as Error)).message;
      if (/cluster support disabled|ERR This instance has cluster support disabled/i.test(message)) {
        throw fail(
          'cluster',
          'is not a Redis Cluster; unset REDIS_CLUSTER_NODES and give it as REDIS_URL',
          'cluster_enabled:1',
          message,
          err,
        );
      }
      if (AUTH_ERROR.test(message))
        throw fail('auth', 'refused the password; check the credentials in REDIS_CLUSTER_NODES', 'AUTH to succeed', message, err);
      throw fail(
        'unreachable',
        'does not answer as a Redis Cluster; start it or fix REDIS_CLUSTER_NODES',
        'cluster_state:ok',
        message,
        err,
      );
    }
    const masters = cluster.nodes('master');
    let version = '';
    const warnings: string[] = [];
    for (const node of masters) {
      const info = await step(node.info());
      const field = (name: string) => new RegExp(`^${name}:(.*)$`, 'm').exec(info)?.[1]?.trim();
      version = field('redis_version') ?? '';
      if (olderThan(version, MIN_REDIS_VERSION)) {
        throw fail(
          'version',
          `has a master at Redis ${version}; rbm-dispatch needs ${MIN_REDIS_VERSION} or later`,
          MIN_REDIS_VERSION,
          version,
        );
      }
      const policy = field('maxmemory_policy');
      if (policy !== undefined && policy !== 'noeviction') {
        warnings.push(`a Redis Cluster master of ${shown} has maxmemory-policy ${policy}: BullMQ needs noeviction`);
      }
    }
    const state = await step(masters[0]!.cluster('INFO') as Promise<string>);
    if (!/cluster_state:ok/.test(state))
      throw fail('cluster', 'does not serve every slot', 'cluster_state:ok', /cluster_state:(\w+)/.exec(state)?.[1] ?? '?');
    try {
      await step(cluster.set(`${opts.prefix}:start-check`, String(process.pid), 'PX', 10_000));
    } catch (err) {
      if (err instanceof RedisCheckError) throw err;
      throw fail('refused', 'refused a write', 'OK', (err as Error).message, err);
    }
    return { version, warnings };
  } finally {
    clearTimeout(timer);
    cluster.disconnect();
  }
}

/** The Cluster's seed nodes from REDIS_CLUSTER_NODES's URLs. */
export function clusterStartupNodes(nodes: readonly string[]): Array<{ host: string; port: number }> {
  return nodes.map((n) => {
    const u = new URL(n);
    return { host: u.hostname, port: Number(u.port) };
  });
}

/** AUTH and TLS for every node of a Cluster, from the first seed URL that names them. */
export function clusterAuth(nodes: readonly string[]): { username?: string; password?: string; tls?: object } {
  const u = new URL(nodes.find((n) => new URL(n).password !== '' || n.startsWith('rediss:')) ?? nodes[0]!);
  return {
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    ...(u.protocol === 'rediss:' ? { tls: {} } : {}),
  };
}
