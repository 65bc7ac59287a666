/**
 * The webhook path's queue: a Redis Stream read by a consumer group.
 *
 * Why not a BullMQ job per webhook: every message brings two or three
 * webhooks, and a BullMQ add alone costs ~27 µs of Redis time (measured; a
 * job's whole life ~28 commands), which held webhook intake to ~0.3 of a
 * bare route. Here intake is one small script (dedupe SET NX + XADD, ~5 µs),
 * and the consumer acknowledges and deletes each entry when handled.
 *
 * Delivery is at least once: an entry a crashed consumer held stays pending
 * and is claimed by another after `claimIdleMs` (XAUTOCLAIM). A handler that
 * must wait (the message is still being sent) hands the event to a delayed
 * BullMQ job on the inbound queue, which retries it with backoff.
 */
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import type { InboundEventPayload } from '../../jobs/inbound-event.ts';
import { classify } from '../errors.ts';
import type { Handler, Logger } from '../handlers/types.ts';
import { throttled } from '../log-throttle.ts';
import { intakeStreamKey } from '../status/store.ts';
import type { InboundIntake } from '../webhook/receiver.ts';
import { settlesWithin } from './settles-within.ts';
import { Backoff, ensureGroup, lostGroup } from './stream-group.ts';
import { type Keyspace, type KeyspaceLike, keyspaceOf } from './keyspace.ts';

/** How long a stopping consumer waits for its read loop, beyond which it is let go. */
const STOP_MARGIN_MS = 3000;

/** The consumer group of the webhook stream. */
export const INBOUND_GROUP = 'inbound';

export function webhookDedupeKey(prefix: string, agentId: string, id: string): string {
  return `${prefix}:webhook-seen:${agentId}:${id}`;
}

/** Dedupe and append in one step (KEYS and ARGV in the file's header); read once, from beside this module. */
const APPEND = readFileSync(new URL('./lua/inbound-append.lua', import.meta.url), 'utf8');

type AppendRedis = Redis & { rbmInboundAppend(dedupeKey: string, stream: string, ttl: string, event: string): Promise<number> };

/** The intake script as a command of this connection (defined once per connection). */
export function withInboundScripts(redis: Redis): AppendRedis {
  if (!('rbmInboundAppend' in redis)) redis.defineCommand('rbmInboundAppend', { numberOfKeys: 2, lua: APPEND });
  return redis as AppendRedis;
}

export class StreamInboundIntake implements InboundIntake {
  private readonly redis: AppendRedis;
  /** The intake stream and dedupe keys of each agent are on its lane (keyspace.ts), beside its messages. */
  readonly keyspace: Keyspace;

  constructor(
    redis: Redis,
    private readonly opts: { prefix: KeyspaceLike; dedupeTtlMs: number },
  ) {
    this.redis = withInboundScripts(redis);
    this.keyspace = keyspaceOf(opts.prefix);
  }

  async enqueue(event: InboundEventPayload, dedupeId: string | undefined): Promise<'queued' | 'duplicate'> {
    const lane = this.keyspace.of(event.agentId);
    const key = webhookDedupeKey(lane, event.agentId, dedupeId ?? '');
    const stream = intakeStreamKey(lane);
    const added = await this.redis.rbmInboundAppend(key, stream, dedupeId ? String(this.opts.dedupeTtlMs) : '', JSON.stringify(event));
    return added === 1 ? 'queued' : 'duplicate';
  }
}

/**
 * A consumer of a Redis stream in a consumer group (the webhook stream here,
 * the callback feed too): entries are handled `concurrency` at a time, then
 * acknowledged and deleted.
 */
export interface StreamConsumerOptions {
  stream: string;
  group: string;
  /** A connection of its own: XREADGROUP BLOCK holds it. */
  blocking: Redis;
  /** For acks and claims. */
  redis: Redis;
  handler: Handler;
  concurrency: number;
  /** An entry pending this long (its consumer died) is taken over. */
  claimIdleMs: number;
  /** Hands an event that must wait to a delayed retry (BullMQ); when it throws, the entry stays pending and is claimed again. */
  retryLater: (event: unknown, err: unknown) => Promise<void>;
  log: Logger;
}

export interface StreamConsumer {
  close(): Promise<void>;
}

export function startStreamConsumer(opts: StreamConsumerOptions): StreamConsumer {
  const { stream, group } = opts;
  const consumer = `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
  let running = true;
  let inFlight = 0;
  /** Entry IDs being handled here: a claim of stale entries must not start one twice. */
  const handling = new Set<string>();
  let slotFreed: (() => void) | undefined;
  let idle: (() => void) | undefined;
  const backoff = new Backoff();
  // Without a listener ioredis prints each reconnect failure of this connection to stderr.
  opts.blocking.on('error', (err: Error) => throttled(opts.log).error('stream connection error', err, stream));

  async function handle(id: string, fields: string[]): Promise<void> {
    let event: unknown;
    try {
      event = JSON.parse(fields[1] ?? 'null');
      await opts.handler(event, { jobId: id, attempt: 1, maxAttempts: 1 });
    } catch (err) {
      const kind = classify(err);
      if (kind === 'permanent')
        opts.log.error({ stream, entry: id, err: (err as Error).message }, 'stream entry dropped: it cannot be processed');
      else await opts.retryLater(event, err);
    }
    // Handled, dropped for good, or handed to a retry job: done with the entry either way.
    await opts.redis.multi().xack(stream, group, id).xdel(stream, id).exec();
  }

  function start(id: string, fields: string[]): void {
    if (handling.has(id)) return;
    handling.add(id);
    inFlight++;
    void handle(id, fields)
      .catch((err: Error) => throttled(opts.log).error('stream entry left pending; it will be claimed again', err, stream))
      .finally(() => {
        handling.delete(id);
        inFlight--;
        slotFreed?.();
        if (inFlight === 0) idle?.();
      });
  }

  /**
   * The stream's lock renewal: claiming our own entries again resets their idle
   * time, so a slow handler's entry is not taken over while it still runs
   * (claimIdleMs can then be short, and a crashed consumer's entries move soon).
   */
  async function heartbeat(): Promise<void> {
    if (handling.size === 0) return;
    await opts.redis.xclaim(stream, group, consumer, 0, ...handling, 'JUSTID');
  }

  async function claimStale(): Promise<void> {
    const [, entries] = (await opts.redis.xautoclaim(stream, group, consumer, opts.claimIdleMs, '0-0', 'COUNT', 100)) as [
      string,
      Array<[string, string[]] | null>,
    ];
    for (const entry of entries) if (entry) start(entry[0], entry[1]);
  }

  /**
   * Reads until closed. A failing read or claim (a Redis that restarted without
   * our group, went read-only, or answers errors) is logged, throttled, and
   * tried again after a capped, jittered backoff: the loop neither dies, which
   * would leave the stream unread until a restart, nor spins on the error.
   * While Redis is unreachable the commands wait on the reconnecting
   * connection (maxRetriesPerRequest null) and go out when it is back.
   */
  async function loop(): Promise<void> {
    let groupReady = false;
    let lastClaim = 0;
    let failures = 0;
    while (running) {
      try {
        if (!groupReady) {
          await ensureGroup(opts.redis, stream, group);
          groupReady = true;
        }
        if (inFlight >= opts.concurrency) {
          await new Promise<void>((resolve) => (slotFreed = resolve));
          continue;
        }
        if (Date.now() - lastClaim >= opts.claimIdleMs / 2) {
          lastClaim = Date.now();
          await heartbeat();
          await claimStale();
        }
        const read = (await opts.blocking.xreadgroup(
          'GROUP',
          group,
          consumer,
          'COUNT',
          opts.concurrency - inFlight,
          'BLOCK',
          Math.min(1000, opts.claimIdleMs),
          'STREAMS',
          stream,
          '>',
        )) as Array<[string, Array<[string, string[]]>]> | null;
        failures = 0;
        for (const [, entries] of read ?? []) for (const [id, fields] of entries) start(id, fields);
      } catch (err) {
        if (!running) return;
        // A Redis that came back empty (no persistence, or flushed) has no group: make it again.
        if (lostGroup(err)) groupReady = false;
        throttled(opts.log).error('stream consumer error; retrying', err, stream);
        await backoff.wait(++failures);
      }
    }
  }

  const done = loop().catch((err: Error) => {
    if (running) opts.log.error({ stream, err: err.message }, 'stream consumer stopped');
  });

  return {
    async close() {
      running = false;
      slotFreed?.();
      backoff.wake();
      // Wake the blocked read: closing its connection ends it.
      opts.blocking.disconnect();
      // Bounded (settles-within.ts): an entry still in hand stays pending and is claimed again.
      await settlesWithin(done, STOP_MARGIN_MS);
      if (inFlight > 0) await settlesWithin(new Promise<void>((resolve) => (idle = resolve)), opts.claimIdleMs + STOP_MARGIN_MS);
    },
  };
}
