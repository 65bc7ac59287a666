/**
 * One agent's adaptive rate, kept in Redis so every dispatch process obeys the
 * same one (rate-controller.ts decides; this module stores and applies).
 *
 * How it is applied: as the queue's global rate limit, the `max`/`duration`
 * fields of the queue's meta hash that Queue.setGlobalRateLimit writes. BullMQ's
 * moveToActive script reads them on every fetch, from Redis, so a change paces
 * every worker of every process from its next job on, with no polling and no
 * second limiter in the send path. (A Worker's own `limiter` option travels in
 * each process's memory instead, and its `duration` would override the meta
 * one, so agent workers run without it.)
 *
 * The state is a hash beside the queue's own keys (same hash slot under a
 * `{prefix}`): the rate, when it last moved, a version, and each process's
 * accepted and rate-limited calls over its last second. A change is a
 * compare-and-set on the version that writes the state and the limiter in one
 * script, so two processes answering the same 429 burst make one decrease.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import type { Logger } from '../handlers/types.ts';
import { limiterForRate } from './limiter.ts';
import { HOLD_MS, initialState, onClean, onThrottled, type LastSecond, type RateAdaptOptions, type RateState } from './rate-controller.ts';

/** How often an active process reports its accepts (and checks for a clean second). */
const TICK_MS = 250;
/** A report older than this is from a process that stopped sending (or died): not counted. */
const FRESH_MS = 1000;
/** ... and one older than this is deleted. */
const FORGET_MS = 60_000;

// The scripts (KEYS and ARGV in each file's header), read once, from beside this module.
const READ = readFileSync(new URL('./lua/adaptive-rate-read.lua', import.meta.url), 'utf8');
const APPLY = readFileSync(new URL('./lua/adaptive-rate-apply.lua', import.meta.url), 'utf8');

interface Stored {
  version: number;
  /** undefined: no state yet (or written by a different configuration). */
  state: RateState | undefined;
  last: LastSecond;
}

type Scripts = Redis & {
  rbmRateRead(
    key: string,
    now: number,
    id: string,
    accepted: number,
    limited: number,
    freshMs: number,
    forgetMs: number,
  ): Promise<[string, string, string, string, string, number, number]>;
  rbmRateApply(key: string, meta: string, ...args: Array<string | number>): Promise<number>;
};

/** The adaptive-rate scripts as commands of this connection (defined once per connection). */
export function withRateScripts(redis: Redis): Scripts {
  if (!('rbmRateRead' in redis)) redis.defineCommand('rbmRateRead', { numberOfKeys: 1, lua: READ });
  if (!('rbmRateApply' in redis)) redis.defineCommand('rbmRateApply', { numberOfKeys: 2, lua: APPLY });
  return redis as Scripts;
}

/** The state hash of a queue, named by BullMQ's own key rule (queue.toKey). */
export const ADAPTIVE_RATE_KEY_TYPE = 'adaptive-rate';

export interface AdaptiveRateOptions {
  redis: Redis;
  queueName: string;
  /** queue.toKey(ADAPTIVE_RATE_KEY_TYPE) and queue.toKey('meta'). */
  stateKey: string;
  metaKey: string;
  /** The configured rate. */
  ceiling: number;
  limiterWindowMs: number;
  adapt: RateAdaptOptions;
  log: Logger;
  now?: () => number;
}

export class AdaptiveRate {
  /** Resolves once the queue's limiter holds this agent's rate: start workers after it, or their first fetches are unlimited. */
  readonly ready: Promise<void>;
  private readonly redis: Scripts;
  private readonly now: () => number;
  private readonly id = randomBytes(6).toString('hex');
  private readonly acceptedHere = new SlidingSecond();
  private readonly limitedHere = new SlidingSecond();
  /** Whether the last report had anything in it: once it reported nothing, an idle process stops reporting. */
  private reportedSome = false;
  private holdUntil = 0;
  private decreasing: Promise<void> | undefined;
  private ticking = false;
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly o: AdaptiveRateOptions) {
    this.redis = withRateScripts(o.redis);
    this.now = o.now ?? Date.now;
    this.ready = this.init();
    this.timer = setInterval(() => void this.tick(), TICK_MS);
    this.timer.unref();
  }

  /** A send RBM answered without a 429 (counted here, reported to Redis each tick). */
  accepted(): void {
    this.acceptedHere.add(this.now());
  }

  /** A 429 without Retry-After. Never throws: a Redis hiccup here must not fail the job. */
  throttled(): Promise<void> {
    this.limitedHere.add(this.now());
    if (this.now() < this.holdUntil) return Promise.resolve();
    this.decreasing ??= this.decrease()
      .catch((err: Error) => this.o.log.warn({ queue: this.o.queueName, err: err.message }, 'could not lower the rate'))
      .finally(() => (this.decreasing = undefined));
    return this.decreasing;
  }

  close(): void {
    clearInterval(this.timer);
  }

  private async read(): Promise<Stored> {
    const now = Math.floor(this.now());
    const acceptedHere = this.acceptedHere.total(now);
    const limitedHere = this.limitedHere.total(now);
    this.reportedSome = acceptedHere + limitedHere > 0;
    const [v, ceiling, rate, decreasedAt, increasedAt, accepted, limited] = await this.redis.rbmRateRead(
      this.o.stateKey,
      now,
      this.id,
      acceptedHere,
      limitedHere,
      FRESH_MS,
      FORGET_MS,
    );
    const state =
      rate === '' || Number(ceiling) !== this.o.ceiling
        ? undefined
        : { ceiling: Number(ceiling), rate: Number(rate), decreasedAt: Number(decreasedAt), increasedAt: Number(increasedAt) };
    return { version: Number(v), state, last: { accepted, limited } };
  }

  private async apply(version: number, s: RateState): Promise<boolean> {
    const { max, duration } = limiterForRate(s.rate, this.o.limiterWindowMs);
    const done = await this.redis.rbmRateApply(
      this.o.stateKey,
      this.o.metaKey,
      version,
      s.ceiling,
      s.rate,
      s.decreasedAt,
      s.increasedAt,
      max,
      duration,
    );
    return done === 1;
  }

  /**
   * A state from another configured rate is replaced (the operator changed
   * RBM_AGENTS); one for this rate is kept, so a restart does not forget a
   * quota learnt a minute ago, and written again so the limiter matches it.
   */
  private async init(): Promise<void> {
    for (;;) {
      const { version, state } = await this.read();
      if (await this.apply(version, state ?? initialState(this.o.ceiling))) return;
    }
  }

  private async decrease(): Promise<void> {
    await this.ready;
    for (let tries = 0; tries < 5; tries++) {
      const now = this.now();
      const { version, state, last } = await this.read();
      const current = state ?? initialState(this.o.ceiling);
      const next = onThrottled(current, now, last, this.o.adapt);
      if (!next) {
        // Another process already answered this burst.
        this.holdUntil = current.decreasedAt + HOLD_MS;
        return;
      }
      if (await this.apply(version, next)) {
        this.holdUntil = now + HOLD_MS;
        this.o.log.warn(
          { queue: this.o.queueName, from: round(current.rate), to: round(next.rate), lastSecond: last },
          'upstream answered 429: lowering the rate',
        );
        return;
      }
    }
  }

  /** Reports this process's accepts and, after a clean second, raises the rate. Idle (nothing to report): no Redis call. */
  private async tick(): Promise<void> {
    const now = this.now();
    if (this.ticking || (!this.reportedSome && this.acceptedHere.total(now) + this.limitedHere.total(now) === 0)) return;
    this.ticking = true;
    try {
      await this.ready;
      const { version, state, last } = await this.read();
      if (!state) return;
      const next = onClean(state, this.now(), last, this.o.adapt);
      // A lost compare-and-set means another process just changed the rate: its change stands.
      if (next && (await this.apply(version, next))) {
        this.o.log.debug({ queue: this.o.queueName, from: round(state.rate), to: round(next.rate) }, 'clean second: raising the rate');
      }
    } catch (err) {
      this.o.log.warn({ queue: this.o.queueName, err: (err as Error).message }, 'could not update the rate');
    } finally {
      this.ticking = false;
    }
  }
}

const round = (n: number) => Math.round(n * 10) / 10;

/** Events over the last second, in 50 ms buckets: exact to a bucket, whatever the rate. */
class SlidingSecond {
  private static readonly BUCKET_MS = 50;
  private static readonly N = 1000 / SlidingSecond.BUCKET_MS;
  private readonly counts = new Uint32Array(SlidingSecond.N);
  private readonly ids = new Float64Array(SlidingSecond.N).fill(-1);

  add(now: number): void {
    const id = Math.floor(now / SlidingSecond.BUCKET_MS);
    const i = id % SlidingSecond.N;
    if (this.ids[i] !== id) {
      this.ids[i] = id;
      this.counts[i] = 0;
    }
    this.counts[i]! += 1;
  }

  total(now: number): number {
    const cur = Math.floor(now / SlidingSecond.BUCKET_MS);
    let sum = 0;
    for (let i = 0; i < SlidingSecond.N; i++) if (this.ids[i]! > cur - SlidingSecond.N && this.ids[i]! <= cur) sum += this.counts[i]!;
    return sum;
  }
}

/** The effective rate stored for a queue (for /metrics); undefined until a dispatcher has served it. */
export async function readEffectiveRate(redis: Redis, stateKey: string): Promise<number | undefined> {
  const rate = await redis.hget(stateKey, 'rate');
  return rate === null ? undefined : Number(rate);
}
