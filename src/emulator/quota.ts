/**
 * Per-agent quota as a token bucket. The capacity (burst) defaults to 200 ms of
 * traffic, so a sender pacing itself at the quota never sees a 429 while one
 * that releases a whole second's quota at once does (DESIGN: "Measured").
 */

export interface QuotaConfig {
  ratePerSec: number;
  burst?: number;
  /** Adds a Retry-After header to this agent's 429s; RBM itself documents none (spec §4.4). */
  retryAfterSec?: number;
}

export function defaultBurst(ratePerSec: number): number {
  return Math.max(1, Math.ceil(ratePerSec * 0.2));
}

export class TokenBucket {
  readonly config: Readonly<QuotaConfig>;
  readonly capacity: number;
  private readonly perMs: number;
  private tokens: number;
  private last: number;

  constructor(config: QuotaConfig, now = performance.now()) {
    this.config = { ...config };
    this.capacity = config.burst ?? defaultBurst(config.ratePerSec);
    this.perMs = config.ratePerSec / 1000;
    this.tokens = this.capacity;
    this.last = now;
  }

  /** Takes one token if there is one; false means the call is over quota. */
  take(now = performance.now()): boolean {
    const refilled = this.tokens + (now - this.last) * this.perMs;
    this.tokens = refilled > this.capacity ? this.capacity : refilled;
    this.last = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

/** Throws on a config no bucket can enforce, so a typo in a benchmark fails loudly instead of never limiting. */
export function checkQuotaConfig(input: unknown): QuotaConfig {
  const q = input as Partial<QuotaConfig> | null;
  if (typeof q !== 'object' || q === null) throw new TypeError('quota must be an object {ratePerSec, burst?, retryAfterSec?}');
  const { ratePerSec, burst, retryAfterSec } = q;
  if (typeof ratePerSec !== 'number' || !Number.isFinite(ratePerSec) || ratePerSec <= 0) {
    throw new TypeError(`quota.ratePerSec must be a positive number, got ${JSON.stringify(ratePerSec)}`);
  }
  if (burst !== undefined && (typeof burst !== 'number' || !Number.isFinite(burst) || burst < 1)) {
    throw new TypeError(`quota.burst must be a number >= 1, got ${JSON.stringify(burst)}`);
  }
  if (retryAfterSec !== undefined && (typeof retryAfterSec !== 'number' || !(retryAfterSec >= 0))) {
    throw new TypeError(`quota.retryAfterSec must be a number >= 0, got ${JSON.stringify(retryAfterSec)}`);
  }
  const out: QuotaConfig = { ratePerSec };
  if (burst !== undefined) out.burst = burst;
  if (retryAfterSec !== undefined) out.retryAfterSec = retryAfterSec;
  return out;
}
