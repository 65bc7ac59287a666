/**
 * Injected faults of the OAuth token endpoint (POST /token): a latency for
 * every token request (a slow endpoint, for timeouts) and a failNext script
 * whose entries last `count` requests, `forMs` from when they were set, or
 * whichever ends first. `400` is Google's answer to a revoked or unknown key
 * (invalid_grant); the others are an outage.
 */
import { checkCount, checkLatencyMs, failNextEntry } from './fault-checks.ts';

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
  const latencyMs = checkLatencyMs(raw.latencyMs);
  if (latencyMs !== undefined) out.latencyMs = latencyMs;
  if (raw.failNext !== undefined) {
    if (!Array.isArray(raw.failNext)) throw new TypeError('failNext must be an array');
    out.failNext = raw.failNext.map((e: unknown, i) => {
      const entry = failNextEntry<TokenFailEntry>(e, i, TokenFaultKinds);
      if (entry.count === undefined && entry.forMs === undefined) throw new TypeError(`failNext[${i}] needs count, forMs or both`);
      if (entry.count !== undefined) checkCount(entry.count, i);
      if (entry.forMs !== undefined && (typeof entry.forMs !== 'number' || !(entry.forMs > 0))) {
        throw new TypeError(`failNext[${i}].forMs must be a number > 0, got ${JSON.stringify(entry.forMs)}`);
      }
      return {
        kind: entry.kind,
        ...(entry.count === undefined ? {} : { count: entry.count }),
        ...(entry.forMs === undefined ? {} : { forMs: entry.forMs }),
      };
    });
  }
  return out;
}
