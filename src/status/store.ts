/**
 * Message status records in Redis: one hash per message, kept statusTtlMs
 * after its last change. Every state change goes through transition(), a Lua
 * script (lua/transition.lua) that checks the edge and writes in one step, so
 * racing workers and webhooks resolve one way. Numbers are stored masked.
 */
import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import type { SendMessagePayload } from '../../jobs/send-message.ts';
import { maskPhone } from '../mask.ts';
import { type Keyspace, type KeyspaceLike, keyspaceOf, pipelinedByLane } from '../queue/keyspace.ts';
import { SETTLED_STATES, statesLeadingTo, WAITING_STATES, type MessageState } from './states.ts';
import { TOMBSTONE_CODES, tombstoneBuckets, tombstoneField } from './tombstone-keys.ts';

// The state lists the transition script checks against: arguments, like every constant a script uses, never spliced into its text.
const WAITING_LIST = WAITING_STATES.join(' ');
const DELIVERED_FROM = statesLeadingTo('DELIVERED').join(' ');
const READ_FROM = statesLeadingTo('READ').join(' ');
const SETTLED_LIST = SETTLED_STATES.join(' ');

/**
 * Upper bounds, in seconds, of the time histograms the transition script fills
 * (enqueue → first news of delivery, enqueue → SMS sent) and /metrics serves.
 * Each bound is also its bucket's name in the metrics hash (`h|<name>|<bound>`);
 * a time past the last counts in `+Inf`.
 */
export const HISTOGRAM_BOUNDS_S = [0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600] as const;
const HISTOGRAM_BOUNDS_LIST = HISTOGRAM_BOUNDS_S.join(' ');

/** The hash of service-wide counters and histogram buckets /metrics reads. */
export function metricsKey(prefix: string): string {
  return `${prefix}:metrics`;
}

/** Adds one to a counter of the metrics hash: field `<family>|<label>`, as metrics-source.ts reads it. */
export function countMetric(redis: Pick<Redis, 'hincrby'>, prefix: string, family: string, label: string): Promise<number> {
  return redis.hincrby(metricsKey(prefix), `${family}|${label}`, 1);
}

/**
 * The change feed: a Redis stream the transition script appends every move of
 * a message with a callback URL to, in the same step as the move, so no change
 * is lost between the two. The callback feed consumer reads it.
 */
export function callbackFeedKey(prefix: string): string {
  return `${prefix}:callback-feed`;
}

/**
 * The history feed: every timeline entry of every message (a move, or an
 * event that moved nothing) with the message's facts, appended in the same
 * step; the archiver writes it to PostgreSQL and deletes what it wrote.
 */
export function historyFeedKey(prefix: string): string {
  return `${prefix}:history-feed`;
}

/**
 * The webhook intake: verified events wait here for the inbound worker (see
 * queue/inbound-stream.ts). Parked events go back here when their message settles.
 */
export function intakeStreamKey(prefix: string): string {
  return `${prefix}:webhook-events`;
}

/**
 * The settled index: refs of records in a settled state, scored by when they
 * settled; the evictor (history/evictor.ts) reads it from the oldest.
 */
export function settledIndexKey(prefix: string): string {
  return `${prefix}:settled`;
}

/** A message's record, on the lane `prefix`. */
export function statusKey(prefix: string, ref: MessageRef): string {
  return `${prefix}:status:${ref.agentId}:${ref.messageId}`;
}

/** Messages of a lane that failed for good, by when (a sorted set of `<messageId>/<agent>`). */
export function failuresKey(prefix: string): string {
  return `${prefix}:failures`;
}

/** The detail of a timeline entry that records an event which moved nothing (see replay.ts). */
export const NO_CHANGE = 'no change: already ';

/** Approximate cap of the feed: entries are deleted once turned into delivery jobs, so only a long-stopped consumer meets it. */
const CALLBACK_FEED_MAXLEN = 1_000_000;
/**
 * A cap on the history feed for an archiver that is gone for good (~150 B an
 * entry: ~1.5 GB). An archiver that runs deletes what it wrote; one that is
 * only late never meets the cap at a normal day's volume.
 */
export const HISTORY_FEED_MAXLEN = 10_000_000;

/**
 * Which message: message IDs live in their agent's namespace, as in RBM
 * itself, so one agent's ID never reveals, blocks or collides with another's.
 * Every payload that names a message (send, SMS, deadline, inbound event)
 * carries both fields and is itself a ref.
 */
export interface MessageRef {
  readonly agentId: string;
  readonly messageId: string;
}

/** A ref as one string (failures index, batch lists): a UUID never holds '/', an agent ID neither. */
export function refString(ref: MessageRef): string {
  return `${ref.messageId}/${ref.agentId}`;
}

export function parseRefString(s: string): MessageRef {
  const at = s.indexOf('/');
  return at < 0 ? { messageId: s, agentId: '' } : { messageId: s.slice(0, at), agentId: s.slice(at + 1) };
}

export interface NewStatus {
  messageId: string;
  agentId: string;
  /** Full E.164; only its masked form is stored. */
  to: string;
  trafficType?: string | undefined;
  batchId?: string | undefined;
  expireAt?: number | undefined;
  /** Where its status changes are POSTed, and whose secret signs them. */
  callback?: { url: string; scope: string } | undefined;
}

/** The record of a queued message, as its job describes it (createdAt: when it was enqueued). */
export function newStatusOf(p: SendMessagePayload): NewStatus & { createdAt: number } {
  return {
    messageId: p.messageId,
    agentId: p.agentId,
    to: p.to,
    createdAt: p.enqueuedAt,
    trafficType: p.message.messageTrafficType,
    batchId: p.batchId,
    expireAt: p.expireAt,
    callback: p.callback,
  };
}

export interface TimelineEntry {
  state: MessageState;
  at: number;
  /** What caused this entry (DELIVERED, TTL_EXPIRATION_REVOKED, DEADLINE...). */
  event?: string;
  detail?: string;
  /** The error that caused a move into a failed or retrying state. */
  error?: { code: string; message: string };
}

export interface MessageStatus {
  messageId: string;
  state: MessageState;
  agentId: string;
  to: string;
  channel: 'rcs';
  trafficType?: string;
  batchId?: string;
  expireAt?: number;
  createdAt: number;
  updatedAt: number;
  attempts: number;
  lastError?: { code: string; message: string };
  /** Where its status changes are POSTed (status callbacks). */
  callbackUrl?: string;
  timeline: TimelineEntry[];
}

/**
 * ok: the move happened; `state` is where the record is now, which is past `to` when
 * parked DELIVERED or READ events were applied in the same step.
 */
export type TransitionResult = { ok: true; from: MessageState; state: MessageState } | { ok: false; from: MessageState | null };

/** PARKED: the event waits on the record; a state: the message no longer waits, handle the event again; null: no record. */
export type ParkResult = 'PARKED' | MessageState | null;

export interface TransitionOptions {
  now?: number;
  detail?: string;
  /** What caused the move (a webhook event, a deadline...): kept in the timeline even when nothing changes. */
  event?: string;
  error?: { code: string; message: string };
  /** Count one more send attempt. */
  countAttempt?: boolean;
  /** More fields to store with the move (fallback data, provider IDs). */
  fields?: Record<string, string>;
  /** A metrics counter (a field of the metrics hash) to bump when the move happens. */
  count?: string;
  /**
   * The record to create when none exists yet. A message enqueued with a fresh
   * random ID has no record until it first moves: its job is its QUEUED state.
   */
  create?: NewStatus & { createdAt: number };
}

export interface FailureQuery {
  /** Only failures whose last error has this code. */
  code?: string;
  /** Only failures of these agents (an API key's). */
  agents?: ReadonlySet<string> | null;
  limit: number;
  /** Only failures before this time (ms epoch): the `next` of the previous page. */
  before?: number;
}

export interface FailureEntry {
  messageId: string;
  state: MessageState;
  agentId: string;
  /** Masked. */
  to: string;
  /** The last error's code: RBM_API, RBM_NETWORK, PAYLOAD_INVALID, SMS_PROVIDER, SMS_OUTCOME_UNKNOWN... */
  reason: string;
  message: string;
  failedAt: number;
}

/** What handlers need of the store: an interface, so they test with plain fakes. */
export interface StatusPort {
  transition(ref: MessageRef, to: MessageState, options?: TransitionOptions): Promise<TransitionResult>;
  /** Keeps an event of a message in a waiting state until the message settles (see lua/park.lua). */
  park(ref: MessageRef, eventType: string, event: unknown): Promise<ParkResult>;
  field(ref: MessageRef, name: string): Promise<string | null>;
  /** Several fields in one read, in the order asked. */
  fields(ref: MessageRef, names: readonly string[]): Promise<(string | null)[]>;
  setField(ref: MessageRef, name: string, value: string): Promise<void>;
  get(ref: MessageRef): Promise<MessageStatus | null>;
}

/** Event types one record keeps parked at most (DELIVERED, READ, the two TTL events, and room to spare). */
const MAX_PARKED = 8;

// The scripts, one file each beside this module (resolved from this file, not the cwd), read once at import.
const CREATE_MANY = readFileSync(new URL('./lua/create-many.lua', import.meta.url), 'utf8');
const TRANSITION = readFileSync(new URL('./lua/transition.lua', import.meta.url), 'utf8');
const PARK = readFileSync(new URL('./lua/park.lua', import.meta.url), 'utf8');
const ERASE_OF_PHONE = readFileSync(new URL('./lua/erase-of-phone.lua', import.meta.url), 'utf8');

type ScriptRedis = Redis & {
  rbmStatusCreateMany(numKeys: number, ...args: (string | number | Buffer)[]): Promise<string[]>;
  rbmStatusTransition(
    key: string,
    failures: string,
    metrics: string,
    feed: string,
    intake: string,
    history: string,
    settled: string,
    ...args: (string | number)[]
  ): Promise<[number, string | null, string?]>;
  rbmStatusPark(key: string, metrics: string, ...args: (string | number)[]): Promise<string | null>;
  rbmStatusEraseOfPhone(numKeys: number, ...args: string[]): Promise<number>;
};

/** The status scripts as commands of this connection (defined once per connection); their KEYS and ARGV are in each file's header. */
export function withStatusScripts(redis: Redis): ScriptRedis {
  if (!('rbmStatusTransition' in redis)) {
    redis.defineCommand('rbmStatusCreateMany', { lua: CREATE_MANY });
    redis.defineCommand('rbmStatusTransition', { numberOfKeys: 7, lua: TRANSITION });
    redis.defineCommand('rbmStatusPark', { numberOfKeys: 2, lua: PARK });
    redis.defineCommand('rbmStatusEraseOfPhone', { lua: ERASE_OF_PHONE });
  }
  return redis as ScriptRedis;
}

export class StatusStore implements StatusPort {
  private readonly redis: ScriptRedis;
  /** Where each agent's records are (its lane); the merged readers walk every lane. */
  readonly keyspace: Keyspace;

  constructor(
    redis: Redis,
    private readonly options: { prefix: KeyspaceLike; ttlMs: number },
  ) {
    this.redis = withStatusScripts(redis);
    this.keyspace = keyspaceOf(options.prefix);
  }

  /**
   * Failed messages, newest first, optionally only those whose last error has
   * `code`, or of some agents. A page never splits failures of one
   * millisecond: it may hold a few more than `limit`, so `next` (the next
   * page's exclusive `before`) skips none.
   */
  async failures(options: FailureQuery): Promise<{ failures: FailureEntry[]; next?: number }> {
    const lanes = await Promise.all(this.keyspace.tags.map((tag) => this.failuresOfLane(tag, options)));
    if (lanes.length === 1) return lanes[0]!;
    // Each lane's page holds every failure of its own at or after its cut: the merged page cuts at the
    // limit-th newest and keeps all of that millisecond, so the next page (before the cut) skips none.
    const all = lanes.flatMap((l) => l.failures).sort((a, b) => b.failedAt - a.failedAt);
    const more = lanes.some((l) => l.next !== undefined);
    if (all.length <= options.limit) {
      const cut = all.at(-1)?.failedAt;
      return more && cut !== undefined ? { failures: all, next: cut } : { failures: all };
    }
    const cut = all[options.limit - 1]!.failedAt;
    return { failures: all.filter((f) => f.failedAt >= cut), next: cut };
  }

  /** One lane's page: its index, and its records (read under the lane itself, whatever this process knows of their agents). */
  private async failuresOfLane(lane: string, options: FailureQuery): Promise<{ failures: FailureEntry[]; next?: number }> {
    const index = failuresKey(lane);
    const out: FailureEntry[] = [];
    let max: string = options.before === undefined ? '+inf' : `(${options.before}`;
    // Index pages are read inclusively from the last score seen, skipping what was
    // read at that score: an exclusive bound would drop ties at a page's edge.
    let skip = 0;
    let boundary: number | undefined;
    for (;;) {
      const page = await this.redis.zrevrangebyscore(index, max, '-inf', 'WITHSCORES', 'LIMIT', skip, 500);
      if (page.length === 0) return boundary === undefined ? { failures: out } : { failures: out, next: boundary };
      const pipeline = this.redis.pipeline();
      for (let i = 0; i < page.length; i += 2)
        pipeline.hmget(statusKey(lane, parseRefString(page[i]!)), 'state', 'agentId', 'to', 'lastErrorCode', 'lastError');
      const rows = (await pipeline.exec()) ?? [];
      for (let i = 0; i < rows.length; i++) {
        const [state, agentId, to, code, message] = rows[i]![1] as (string | null)[];
        const failedAt = Number(page[i * 2 + 1]);
        if (boundary !== undefined && failedAt !== boundary) return { failures: out, next: boundary };
        if (!state) continue; // the record expired; the index forgets it lazily
        if (options.code && code !== options.code) continue;
        if (options.agents && !options.agents.has(agentId ?? '')) continue;
        out.push({
          messageId: parseRefString(page[i * 2]!).messageId,
          state: state as MessageState,
          agentId: agentId ?? '',
          to: to ?? '',
          reason: code ?? 'UNKNOWN',
          message: message ?? '',
          failedAt,
        });
        if (boundary === undefined && out.length === options.limit) boundary = failedAt;
      }
      const last = page[page.length - 1]!;
      let atLast = 0;
      for (let i = page.length - 1; i > 0 && page[i] === last; i -= 2) atLast++;
      skip = (max === last ? skip : 0) + atLast;
      max = last;
    }
  }

  /** The failures index of the agent's lane. */
  failuresKeyOf(agentId: string): string {
    return failuresKey(this.keyspace.of(agentId));
  }

  key(ref: MessageRef): string {
    return statusKey(this.keyspace.of(ref.agentId), ref);
  }

  /**
   * Deletes the records of these messages that are this number's (lua/erase-of-phone.lua): a
   * data-protection erase. A record of another number under one of the IDs is left. Returns how many went.
   */
  async eraseOfPhone(refs: readonly MessageRef[], e164: string): Promise<number> {
    let deleted = 0;
    // One call per lane: a script's keys share a slot.
    for (const inLane of this.keyspace.byLane(refs).values()) {
      for (let i = 0; i < inLane.length; i += 500) {
        const keys = inLane.slice(i, i + 500).map((r) => this.key(r));
        deleted += await this.redis.rbmStatusEraseOfPhone(keys.length, ...keys, e164, maskPhone(e164));
      }
    }
    return deleted;
  }

  /**
   * The agents (of those given) that hold a record under this message ID. A
   * caller that may use only some agents asks only about those, so it learns
   * nothing of the others' IDs.
   */
  async agentsHolding(messageId: string, agents: readonly string[]): Promise<string[]> {
    if (agents.length === 0) return [];
    const replies = await pipelinedByLane(
      this.redis,
      agents,
      (agentId) => this.keyspace.of(agentId),
      (p, agentId) => p.exists(this.key({ agentId, messageId })),
    );
    return agents.filter((_, i) => replies[i]?.[0]?.[1] === 1);
  }

  /**
   * Creates QUEUED records for the messages that have none (nor a tombstone:
   * they settled and left Redis). Per message: null when created now, else
   * the state the existing record (or tombstone) is in.
   */
  async createMany(records: readonly NewStatus[], now = Date.now()): Promise<(MessageState | null)[]> {
    if (records.length === 0) return [];
    const lanes = this.keyspace.byLane(records.map((r, i) => ({ agentId: r.agentId, r, i })));
    if (lanes.size === 1) return this.createInLane(records, now);
    // Agents on several lanes: one atomic call per lane (a script's keys share a slot), answers put back in order.
    const out: (MessageState | null)[] = new Array(records.length);
    await Promise.all(
      [...lanes.values()].map(async (inLane) => {
        const states = await this.createInLane(
          inLane.map((x) => x.r),
          now,
        );
        inLane.forEach((x, j) => {
          out[x.i] = states[j]!;
        });
      }),
    );
    return out;
  }

  /** createMany for records of one lane. */
  private async createInLane(records: readonly NewStatus[], now: number): Promise<(MessageState | null)[]> {
    const keys = records.map((r) => this.key(r));
    const tombs = records.flatMap((r) => tombstoneBuckets(this.keyspace.of(r.agentId), this.options.ttlMs, r, now));
    const args: (string | number | Buffer)[] = [this.options.ttlMs, now, records.length, TOMBSTONE_CODES];
    for (const r of records) {
      args.push(
        r.agentId,
        maskPhone(r.to),
        r.trafficType ?? '',
        r.batchId ?? '',
        r.expireAt ?? '',
        r.callback?.url ?? '',
        r.callback?.scope ?? '',
        tombstoneField(r.messageId) ?? '',
      );
    }
    const out = await this.redis.rbmStatusCreateMany(keys.length + tombs.length, ...keys, ...tombs, ...args);
    return out.map((s) => (s === '' ? null : (s as MessageState)));
  }

  async transition(ref: MessageRef, to: MessageState, options: TransitionOptions = {}): Promise<TransitionResult> {
    const c = options.create;
    const lua = {
      id: ref.messageId,
      ref: refString(ref),
      ...(options.countAttempt ? { countAttempt: true } : {}),
      ...(options.error ? { error: options.error } : {}),
      ...(options.detail ? { detail: options.detail } : {}),
      ...(options.event ? { event: options.event } : {}),
      ...(options.fields ? { fields: options.fields } : {}),
      ...(options.count ? { count: options.count } : {}),
      ...(c
        ? {
            create: {
              agentId: c.agentId,
              to: maskPhone(c.to),
              createdAt: c.createdAt,
              trafficType: c.trafficType ?? '',
              batchId: c.batchId ?? '',
              expireAt: c.expireAt ?? '',
              ...(c.callback ? { cb: c.callback.url, cbs: c.callback.scope } : {}),
            },
          }
        : {}),
    };
    const lane = this.keyspace.of(ref.agentId);
    const [ok, from, state] = await this.redis.rbmStatusTransition(
      this.key(ref),
      failuresKey(lane),
      metricsKey(lane),
      callbackFeedKey(lane),
      intakeStreamKey(lane),
      historyFeedKey(lane),
      settledIndexKey(lane),
      to,
      options.now ?? Date.now(),
      this.options.ttlMs,
      JSON.stringify(lua),
      WAITING_LIST,
      DELIVERED_FROM,
      READ_FROM,
      NO_CHANGE,
      CALLBACK_FEED_MAXLEN,
      HISTOGRAM_BOUNDS_LIST,
      HISTORY_FEED_MAXLEN,
      SETTLED_LIST,
      ...statesLeadingTo(to),
    );
    return ok === 1
      ? { ok: true, from: from as MessageState, state: (state ?? to) as MessageState }
      : { ok: false, from: (from || null) as MessageState | null };
  }

  async park(ref: MessageRef, eventType: string, event: unknown): Promise<ParkResult> {
    const r = await this.redis.rbmStatusPark(
      this.key(ref),
      metricsKey(this.keyspace.of(ref.agentId)),
      WAITING_LIST,
      eventType,
      JSON.stringify(event),
      MAX_PARKED,
    );
    return (r || null) as ParkResult;
  }

  /** A field stored with a move (see TransitionOptions.fields). */
  async field(ref: MessageRef, name: string): Promise<string | null> {
    return this.redis.hget(this.key(ref), name);
  }

  async fields(ref: MessageRef, names: readonly string[]): Promise<(string | null)[]> {
    return names.length === 0 ? [] : this.redis.hmget(this.key(ref), ...names);
  }

  /** Sets a bookkeeping field of an existing record, without a move or a timeline entry. */
  async setField(ref: MessageRef, name: string, value: string): Promise<void> {
    await this.redis.hset(this.key(ref), name, value);
  }

  async get(ref: MessageRef): Promise<MessageStatus | null> {
    const h = await this.redis.hgetall(this.key(ref));
    if (!h.state) return null;
    const createdAt = Number(h.createdAt);
    return {
      messageId: ref.messageId,
      state: h.state as MessageState,
      agentId: h.agentId ?? '',
      to: h.to ?? '',
      channel: 'rcs',
      ...(h.trafficType ? { trafficType: h.trafficType } : {}),
      ...(h.batchId ? { batchId: h.batchId } : {}),
      ...(h.expireAt ? { expireAt: Number(h.expireAt) } : {}),
      createdAt,
      updatedAt: h.updatedAt ? Number(h.updatedAt) : createdAt,
      attempts: Number(h.attempts ?? 0),
      ...(h.lastErrorCode ? { lastError: { code: h.lastErrorCode, message: h.lastError ?? '' } } : {}),
      ...(h.cb ? { callbackUrl: h.cb } : {}),
      // A record never moved has only its creation: QUEUED at createdAt.
      timeline: h.timeline ? (JSON.parse(h.timeline) as TimelineEntry[]) : [{ state: 'QUEUED', at: createdAt }],
    };
  }
}
