/**
 * Injected faults of the OAuth token endpoint (POST /token): a latency for
 * every token request (a slow endpoint, for timeouts) and a failNext script
 * whose entries last `count` requests, `forMs` from when they were set, or
 * whichever ends first. `400` is Google's answer to a revoked or unknown key
 * (invalid_grant); the others are an outage.
 */

export const TokenFaultKinds = ['503', '500', 'reset', '400'] as const;
export type TokenFaultKind = (typeof TokenFaultKinds)[number];

export interface TokenFailEntry {
  kind: TokenFaultKind;
  /** Requests this entry answers. */
  count?: number;
  /** How long this entry lasts, from the PUT. */
  forMs?: number;
}

export interface TokenFaultConfig {
  latencyMs?: number;
  failNext?: TokenFailEntry[];
}

interface Armed {
  kind: TokenFaultKind;
  count: number | undefined;
  until: number | undefined;
}

export class TokenFaults {
  private latency = 0;
  private armed: Armed[] = [];

  set(config: TokenFaultConfig, now = Date.now()): void {
    this.latency = config.latencyMs ?? 0;
    this.armed = (config.failNext ?? []).map((e) => ({
      kind: e.kind,
      count: e.count,
      until: e.forMs === undefined ? undefined : now + e.forMs,
    }));
  }

  clear(): void {
    this.set({});
  }

  get latencyMs(): number {
    return this.latency;
  }

  /** What is left of the script: remaining counts and milliseconds. */
  snapshot(now = Date.now()): Required<TokenFaultConfig> {
    this.expire(now);
    return {
      latencyMs: this.latency,
      failNext: this.armed.map((a) => ({
        kind: a.kind,
        ...(a.count === undefined ? {} : { count: a.count }),
        ...(a.until === undefined ? {} : { forMs: a.until - now }),
      })),
    };
  }

  /** Consumes one request of the first live entry; undefined = answer normally. */
  pick(now = Date.now()): TokenFaultKind | undefined {
    this.expire(now);
    const entry = this.armed[0];
    if (entry === undefined) return undefined;
    if (entry.count !== undefined) {
      entry.count -= 1;
      if (entry.count <= 0) this.armed.shift();
    }
    return entry.kind;
  }

  private expire(now: number): void {
    this.armed = this.armed.filter((a) => a.until === undefined || a.until > now);
  }
}

/** Validates PUT /_emulator/token/faults; throws a TypeError naming the bad field. */
export function checkTokenFaults(input: unknown): TokenFaultConfig {
  if (typeof input !== 'object' || input === null || Array.isArray(input))
    throw new TypeError('token faults must be a JSON object {latencyMs?, failNext?}');
  const raw = input as Record<string, unknown>;
  const out: TokenFaultConfig = {};
  if (raw.latencyMs !== undefined) {
    if (typeof raw.latencyMs !== 'number' || !(raw.latencyMs >= 0))
      throw new TypeError(`latencyMs must be a number >= 0, got ${JSON.stringify(raw.latencyMs)}`);
    out.latencyMs = raw.latencyMs;
  }
  if (raw.failNext !== undefined) {
    if (!Array.isArray(raw.failNext)) throw new TypeError('failNext must be an array');
    out.failNext = raw.failNext.map((e: unknown, i) => {
      const entry = e as Partial<TokenFailEntry> | null;
      if (typeof entry !== 'object' || entry === null) throw new TypeError(`failNext[${i}] must be an object`);
      if (!TokenFaultKinds.includes(entry.kind as TokenFaultKind)) {
        throw new TypeError(`failNext[${i}].kind must be one of ${TokenFaultKinds.join(', ')}, got ${JSON.stringify(entry.kind)}`);
      }
      if (entry.count === undefined && entry.forMs === undefined) throw new TypeError(`failNext[${i}] needs count, forMs or both`);
      if (entry.count !== undefined && (typeof entry.count !== 'number' || !Number.isInteger(entry.count) || entry.count < 1)) {
        throw new TypeError(`failNext[${i}].count must be an integer >= 1, got ${JSON.stringify(entry.count)}`);
      }
      if (entry.forMs !== undefined && (typeof entry.forMs !== 'number' || !(entry.forMs > 0))) {
        throw new TypeError(`failNext[${i}].forMs must be a number > 0, got ${JSON.stringify(entry.forMs)}`);
      }
      return {
        kind: entry.kind as TokenFaultKind,
        ...(entry.count === undefined ? {} : { count: entry.count }),
        ...(entry.forMs === undefined ? {} : { forMs: entry.forMs }),
      };
    });
  }
  return out;
}
