/**
 * Callback receivers kept apart: one receiver (a callback URL's origin) that
 * fails or hangs delays only its own callbacks. State per receiver lives in
 * Redis, so every callback process obeys the same one:
 *
 *   fair order  each delivery's BullMQ priority is its receiver's depth (its
 *               deliveries not yet delivered or failed for good) when it was
 *               queued, never lower than the receiver's previous one: the
 *               queue serves the first delivery of every receiver, then the
 *               second of each, and so on, and one receiver's deliveries keep
 *               their order. A receiver with 10,000 waiting does not stand in
 *               front of one with 100.
 *   in flight   at most `maxInFlight` calls to one receiver at once (leases
 *               that expire, so a crashed process frees its slots); a
 *               delivery over the cap is parked.
 *   breaker     `threshold` deliveries whose calls failed (no answer, or not a
 *               2xx) with no success between open it; while open, its
 *               deliveries are parked, no call made. Distinct deliveries: one
 *               change the receiver refuses again and again is that change's
 *               problem (its retries end it), not the receiver's.
 *
 *      closed ──threshold failures──► open ──cooldown over──► half-open (one probe call)
 *        ▲                             ▲                          │
 *        └──────── any 2xx ────────────┼────── probe 2xx ─────────┤
 *                                      └─ probe fails: cooldown ×2 (up to maxCooldownMs)
 *
 * Parked: put back as a delayed job without using an attempt (the runner's
 * `defer`), and listed in the receiver's parked set once it is delayed. A
 * call that ends hands its slot to the oldest parked delivery and wakes
 * (promotes) it; a breaker that closes wakes `maxInFlight` of them, and each
 * of their calls the next, so a receiver that comes back gets its backlog at
 * its own pace. A parked delivery's own delay is only the fallback for a missed
 * wake-up (a crash): for the open breaker the probe time (spread), for the
 * cap how long its turn could take if every call ran to the timeout.
 *
 * Keys (beside the queue's, same hash tag under a `{prefix}`), per receiver,
 * named by a digest of its origin (user input, so never in a key or a label):
 *   <prefix>:callback-receiver:<h>          hash: breaker (open, probe, cool, last), tag, origin
 *   <prefix>:callback-receiver:<h>:jobs     set: its deliveries in the queue (the depth)
 *   <prefix>:callback-receiver:<h>:leases   zset: calls in flight, by lease expiry
 *   <prefix>:callback-receiver:<h>:parked   zset: parked deliveries, by when parked
 *   <prefix>:callback-receiver:<h>:failing  set: deliveries that failed since the last success
 *   <prefix>:callback-receivers-open        zset: receivers whose breaker is open (the metric)
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import type { Logger } from '../handlers/types.ts';
import { throttled } from '../log-throttle.ts';
import { metricsKey } from '../status/store.ts';

/** BullMQ's highest priority number (2^21 - 1); deeper backlogs share it, in FIFO order. */
export const PRIORITY_LIMIT = 2_097_151;
/** A lease outlives its call's timeout by this much: a live call never loses its slot. */
const LEASE_MARGIN_MS = 5000;
/** Kept this long after a receiver's last use beyond the retry horizon, then forgotten. */
const IDLE_TTL_MARGIN_MS = 86_400_000;
/** An open breaker nobody probed for this long (its deliveries all gave up) leaves the metric. */
const OPEN_STALE_MS = 7 * 86_400_000;

// The scripts (KEYS, ARGV and answer in each file's header), read once, from beside this module.
const PRIORITIES = readFileSync(new URL('./lua/receiver-priorities.lua', import.meta.url), 'utf8');
const ADMIT = readFileSync(new URL('./lua/receiver-admit.lua', import.meta.url), 'utf8');
const PARKED = readFileSync(new URL('./lua/receiver-parked.lua', import.meta.url), 'utf8');
const REPORT = readFileSync(new URL('./lua/receiver-report.lua', import.meta.url), 'utf8');

type Scripts = Redis & {
  rbmCallbackPriorities(hash: string, jobs: string, ...args: Array<string | number>): Promise<number[]>;
  rbmCallbackAdmit(
    hash: string,
    leases: string,
    parked: string,
    metrics: string,
    ...args: Array<string | number>
  ): Promise<[string, ...Array<string | number>]>;
  rbmCallbackParked(hash: string, leases: string, parked: string, ...args: Array<string | number>): Promise<number>;
  rbmCallbackReport(...keysAndArgs: Array<string | number>): Promise<[string, string | number, ...string[]]>;
};

/** The receiver scripts as commands of this connection (defined once per connection). */
export function withReceiverScripts(redis: Redis): Scripts {
  if (!('rbmCallbackPriorities' in redis)) {
    redis.defineCommand('rbmCallbackPriorities', { numberOfKeys: 2, lua: PRIORITIES });
    redis.defineCommand('rbmCallbackAdmit', { numberOfKeys: 4, lua: ADMIT });
    redis.defineCommand('rbmCallbackParked', { numberOfKeys: 3, lua: PARKED });
    redis.defineCommand('rbmCallbackReport', { numberOfKeys: 7, lua: REPORT });
  }
  return redis as Scripts;
}

/** The set whose size is rbm_callback_receivers_open. */
export function openReceiversKey(prefix: string): string {
  return `${prefix}:callback-receivers-open`;
}

/** A receiver's name in keys and logs' context: a digest of its origin. */
export function receiverDigest(origin: string): string {
  return createHash('sha256').update(origin).digest('hex').slice(0, 16);
}

/** What a delivery may do now. `untilMs`: when a parked one should look again, at the latest. */
export type Admission =
  | { verdict: 'call' | 'probe' }
  | { verdict: 'open'; untilMs: number; lastFailure: string }
  | { verdict: 'busy'; untilMs: number };

/** How a call ended. `done`: the delivery leaves the queue (delivered, or failed for good). */
export interface CallResult {
  ok: boolean;
  probe: boolean;
  done: boolean;
  /** Why it failed, for the breaker's `last` and the log. */
  failure?: string;
}

/** What the deliver-callback handler needs of the receivers (plain fakes in unit tests). */
export interface ReceiverPort {
  admit(origin: string, jobId: string): Promise<Admission>;
  report(origin: string, jobId: string, result: CallResult): Promise<void>;
  /** The delivery leaves the queue without a call (it gave up while parked). */
  forget(origin: string, jobId: string): Promise<void>;
}

export interface ReceiverOptions {
  /** CALLBACK_MAX_IN_FLIGHT_PER_RECEIVER. */
  maxInFlight: number;
  /** CALLBACK_BREAKER_THRESHOLD: deliveries failed with no success between that open the breaker. */
  threshold: number;
  /** CALLBACK_BREAKER_COOLDOWN_MS: the first wait before a probe; doubles per failed probe. */
  cooldownMs: number;
  /** CALLBACK_BREAKER_MAX_COOLDOWN_MS: the longest wait before a probe, and the longest a parked delivery sleeps unwoken. */
  maxCooldownMs: number;
  /** CALLBACK_TIMEOUT_MS: how long one call may hold its slot. */
  timeoutMs: number;
  /** CALLBACK_RETRY_FOR_MS: a receiver's keys outlive its deliveries. */
  retryForMs: number;
}

export class Receivers implements ReceiverPort {
  private readonly redis: Scripts;
  private readonly leaseMs: number;
  private readonly ttlMs: number;
  private readonly metrics: string;

  constructor(
    redis: Redis,
    private readonly prefix: string,
    private readonly o: ReceiverOptions,
    /** Promotes parked (delayed) deliveries; one that is not delayed any more is skipped. */
    private readonly wake: (jobIds: string[]) => Promise<void>,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {
    this.redis = withReceiverScripts(redis);
    this.leaseMs = o.timeoutMs + LEASE_MARGIN_MS;
    this.ttlMs = o.retryForMs + IDLE_TTL_MARGIN_MS;
    this.metrics = metricsKey(prefix);
  }

  private keys(origin: string) {
    const hash = `${this.prefix}:callback-receiver:${receiverDigest(origin)}`;
    return { hash, jobs: `${hash}:jobs`, leases: `${hash}:leases`, parked: `${hash}:parked`, failing: `${hash}:failing` };
  }

  /** The BullMQ priorities of new deliveries to one receiver, in order (see "fair order"). */
  async priorities(origin: string, jobIds: readonly string[]): Promise<number[]> {
    if (jobIds.length === 0) return [];
    const k = this.keys(origin);
    return this.redis.rbmCallbackPriorities(k.hash, k.jobs, this.ttlMs, PRIORITY_LIMIT, origin, ...jobIds);
  }

  async admit(origin: string, jobId: string): Promise<Admission> {
    const k = this.keys(origin);
    const now = this.now();
    const [verdict, a, b, c] = await this.redis.rbmCallbackAdmit(
      k.hash,
      k.leases,
      k.parked,
      this.metrics,
      now,
      jobId,
      this.o.maxInFlight,
      this.leaseMs,
    );
    if (verdict === 'call' || verdict === 'probe') return { verdict };
    if (verdict === 'busy') {
      // Its turn comes after the deliveries parked before it, maxInFlight at a time; the
      // wake-up normally comes much sooner (calls answered in ms, not in the whole timeout).
      const ahead = Number(a);
      const turnMs = this.o.timeoutMs * (1 + Math.floor(ahead / this.o.maxInFlight));
      return { verdict: 'busy', untilMs: now + Math.min(turnMs, this.o.maxCooldownMs) + jitter(this.o.timeoutMs / 10) };
    }
    // Open, or half-open with a probe out: spread over half a cooldown, so that the parked
    // deliveries come back one by one rather than all at the probe time.
    const cooldown = Number(b) || this.o.cooldownMs;
    return { verdict: 'open', untilMs: Number(a) + jitter(cooldown / 2), lastFailure: String(c ?? '') };
  }

  /** After the runner delayed a parked delivery: list it for a wake-up (or wake it, if its slot came free meanwhile). */
  async parked(origin: string, jobId: string): Promise<void> {
    const k = this.keys(origin);
    const freed = await this.redis.rbmCallbackParked(
      k.hash,
      k.leases,
      k.parked,
      this.now(),
      jobId,
      this.o.maxInFlight,
      this.ttlMs,
      this.leaseMs,
    );
    if (freed === 1) await this.wake([jobId]);
  }

  async report(origin: string, jobId: string, result: CallResult): Promise<void> {
    await this.settle(origin, jobId, true, result);
  }

  async forget(origin: string, jobId: string): Promise<void> {
    await this.settle(origin, jobId, false, { ok: false, probe: false, done: true });
  }

  private async settle(origin: string, jobId: string, called: boolean, r: CallResult): Promise<void> {
    const k = this.keys(origin);
    const bit = (b: boolean) => (b ? 1 : 0);
    const [event, cooldown, ...wake] = await this.redis.rbmCallbackReport(
      k.hash,
      k.leases,
      k.parked,
      k.jobs,
      openReceiversKey(this.prefix),
      this.metrics,
      k.failing,
      this.now(),
      jobId,
      bit(called),
      bit(r.ok),
      bit(r.probe),
      bit(r.done),
      this.o.threshold,
      this.o.cooldownMs,
      this.o.maxCooldownMs,
      this.o.maxInFlight,
      this.ttlMs,
      (r.failure ?? '').slice(0, 200),
      receiverDigest(origin),
      this.leaseMs,
      OPEN_STALE_MS,
    );
    if (event === 'opened')
      this.log.warn(
        { origin, failures: this.o.threshold, cooldownMs: Number(cooldown), last: r.failure },
        'callback receiver failing: its deliveries are parked until a probe call succeeds',
      );
    else if (event === 'closed') this.log.info({ origin }, 'callback receiver answers again: its parked deliveries resume');
    else if (event === 'reopened')
      throttled(this.log).warn('callback receiver still failing', new Error(r.failure ?? 'probe failed'), origin);
    if (wake.length > 0) await this.wake(wake);
  }
}

function jitter(maxMs: number): number {
  return Math.floor(Math.random() * Math.max(1, maxMs));
}
