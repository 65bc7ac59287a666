/**
 * Message status records in Redis: one hash per message, kept statusTtlMs
 * after its last change. Every state change goes through transition(), a Lua
 * script that checks the edge and writes in one step, so racing workers and
 * webhooks resolve one way. Numbers are stored masked.
 */
import type { Redis } from 'ioredis';
import type { SendMessagePayload } from '../../jobs/send-message.ts';
import { maskPhone } from '../mask.ts';
import { statesLeadingTo, WAITING_STATES, type MessageState } from './states.ts';

// The state lists the transition script checks against, passed as arguments (never spliced into the Lua).
const WAITING_LIST = WAITING_STATES.join(' ');
const DELIVERED_FROM = statesLeadingTo('DELIVERED').join(' ');
const READ_FROM = statesLeadingTo('READ').join(' ');

/** The hash of service-wide counters and histogram buckets /metrics reads. */
export function metricsKey(prefix: string): string {
  return `${prefix}:metrics`;
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
 * The webhook intake: verified events wait here for the inbound worker (see
 * queue/inbound-stream.ts). Parked events go back here when their message settles.
 */
export function intakeStreamKey(prefix: string): string {
  return `${prefix}:webhook-events`;
}

/** The detail of a timeline entry that records an event which moved nothing (see replay.ts). */
export const NO_CHANGE = 'no change: already ';

/** Approximate cap of the feed: entries are deleted once turned into delivery jobs, so only a long-stopped consumer meets it. */
const CALLBACK_FEED_MAXLEN = 1_000_000;

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
    messageId: p.messageId, agentId: p.agentId, to: p.to, createdAt: p.enqueuedAt,
    trafficType: p.message.messageTrafficType, batchId: p.batchId, expireAt: p.expireAt, callback: p.callback,
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
  /** Keeps an event of a message in a waiting state until the message settles (see PARK). */
  park(ref: MessageRef, eventType: string, event: unknown): Promise<ParkResult>;
  field(ref: MessageRef, name: string): Promise<string | null>;
  /** Several fields in one read, in the order asked. */
  fields(ref: MessageRef, names: readonly string[]): Promise<(string | null)[]>;
  setField(ref: MessageRef, name: string, value: string): Promise<void>;
  get(ref: MessageRef): Promise<MessageStatus | null>;
}

// KEYS: one status key per message. ARGV: ttlMs, now, then 7 fields per key.
// Returns, per key, '' when created or the state it already had. Only fields
// that carry information are written (empty ones are skipped; updatedAt,
// attempts, channel and the first timeline entry are derived on read): this
// runs once per enqueued message, so every field costs throughput and memory.
const CREATE_MANY = `
local out = {}
local ttl = ARGV[1]
local now = ARGV[2]
for i, key in ipairs(KEYS) do
  if redis.call('HSETNX', key, 'state', 'QUEUED') == 0 then
    out[i] = redis.call('HGET', key, 'state')
  else
    local b = 2 + (i - 1) * 7
    local fields = {'agentId', ARGV[b + 1], 'to', ARGV[b + 2], 'createdAt', now}
    if ARGV[b + 3] ~= '' then fields[#fields + 1] = 'trafficType'; fields[#fields + 1] = ARGV[b + 3] end
    if ARGV[b + 4] ~= '' then fields[#fields + 1] = 'batchId'; fields[#fields + 1] = ARGV[b + 4] end
    if ARGV[b + 5] ~= '' then fields[#fields + 1] = 'expireAt'; fields[#fields + 1] = ARGV[b + 5] end
    if ARGV[b + 6] ~= '' then fields[#fields + 1] = 'cb'; fields[#fields + 1] = ARGV[b + 6]; fields[#fields + 1] = 'cbs'; fields[#fields + 1] = ARGV[b + 7] end
    redis.call('HSET', key, unpack(fields))
    redis.call('PEXPIRE', key, ttl)
    out[i] = ''
  end
end
return out
`;

// KEYS[1] status key, KEYS[2] the failures index, KEYS[3] the metrics hash, KEYS[4] the callback feed,
// KEYS[5] the webhook intake stream. ARGV: to, now, ttlMs, options (JSON), then three space-separated
// state lists (the waiting states, the states leading to DELIVERED, those leading to READ), then the
// allowed-from states of this move. A move into FAILED or FALLBACK_FAILED enters the message in the
// index (score: when); a move out removes it. Each move counts in the metrics hash (by state and agent,
// plus o.count), and the first news of delivery and a sent SMS add to their time histograms.
// options: id (the messageId), ref (its index member, see refString), countAttempt, error {code, message},
// detail, event, fields {k: v}, create {...}.
// With create, a missing record counts as QUEUED since createdAt: a freshly queued message's status is
// its job. An event that changes nothing is kept in the timeline, unless the message is waiting (its
// event is parked, see PARK). A move out of a waiting state applies the parked events in the same step:
// DELIVERED and READ move the record here and now; any other event goes back to the intake stream,
// where the inbound worker applies it as if it had just arrived. Returns {1, from, state now} on
// success, {0, from or false} when refused or missing. A move of a message with a callback URL (field
// cb) is appended to the callback feed as the change a callback reports.
const TRANSITION = `
local o = cjson.decode(ARGV[4])
local key = KEYS[1]
local now = tonumber(ARGV[2])
local function listed(list, state) return string.find(' ' .. list .. ' ', ' ' .. state .. ' ', 1, true) ~= nil end
local cur = redis.call('HGET', key, 'state')
local created = false
if not cur then
  if type(o.create) ~= 'table' then return {0, false} end
  cur = 'QUEUED'
  created = true
end
local allowed = false
for i = 8, #ARGV do
  if ARGV[i] == cur then allowed = true break end
end
-- The timeline is a JSON array kept as text: an entry is appended by string,
-- never by decoding and re-encoding the whole array on every move.
local function append(entry)
  local timeline = redis.call('HGET', key, 'timeline')
  if not timeline then timeline = '[{"state":"QUEUED","at":' .. (redis.call('HGET', key, 'createdAt') or ARGV[2]) .. '}]' end
  redis.call('HSET', key, 'timeline', string.sub(timeline, 1, -2) .. ',' .. cjson.encode(entry) .. ']')
end
if not allowed then
  if created then return {0, false} end
  if type(o.event) == 'string' and not listed(ARGV[5], cur) then
    append({state = cur, at = now, event = o.event, detail = '${NO_CHANGE}' .. cur})
  end
  return {0, cur}
end
if created then
  local c = o.create
  local fields = {'agentId', c.agentId, 'to', c.to, 'createdAt', c.createdAt}
  for _, k in ipairs({'trafficType', 'batchId', 'expireAt', 'cb', 'cbs'}) do
    if type(c[k]) ~= 'userdata' and c[k] ~= nil and c[k] ~= '' then fields[#fields + 1] = k; fields[#fields + 1] = c[k] end
  end
  redis.call('HSET', key, unpack(fields))
end
if o.countAttempt then redis.call('HINCRBY', key, 'attempts', 1) end
if type(o.error) == 'table' then redis.call('HSET', key, 'lastErrorCode', o.error.code, 'lastError', o.error.message) end
if type(o.fields) == 'table' then
  for k, v in pairs(o.fields) do redis.call('HSET', key, k, v) end
end
-- One read for the agent and, for a message with a callback URL, what its callback needs.
local r = redis.call('HMGET', key, 'agentId', 'cb', 'cbs', 'batchId', 'createdAt')
local agent = r[1] or ''
local function observe(name)
  local ms = now - tonumber(r[5] or ARGV[2])
  local le = '+Inf'
  for _, b in ipairs({500, 1000, 2000, 5000, 10000, 30000, 60000, 120000, 300000, 600000, 1800000, 3600000}) do
    if ms <= b then le = tostring(b / 1000) break end
  end
  redis.call('HINCRBY', KEYS[3], 'h|' .. name .. '|' .. le, 1)
  redis.call('HINCRBY', KEYS[3], 'h|' .. name .. '|sum_ms', ms)
end
-- One move: the state, its timeline entry, the failures index, the callback feed, the metrics.
local function move(from, to, entry)
  redis.call('HSET', key, 'state', to, 'updatedAt', ARGV[2])
  append(entry)
  if to == 'FAILED' or to == 'FALLBACK_FAILED' then
    redis.call('ZADD', KEYS[2], ARGV[2], o.ref)
  elseif from == 'FAILED' or from == 'FALLBACK_FAILED' then
    redis.call('ZREM', KEYS[2], o.ref)
  end
  if r[2] then
    -- The same fields replay.ts rebuilds from the timeline entry.
    entry.messageId = o.id
    entry.agentId = agent
    entry.previousState = from
    if r[4] then entry.batchId = r[4] end
    redis.call('XADD', KEYS[4], 'MAXLEN', '~', '${CALLBACK_FEED_MAXLEN}', '*', 'c', cjson.encode({url = r[2], scope = r[3], data = entry}))
  end
  redis.call('HINCRBY', KEYS[3], 'state|' .. to .. '|' .. agent, 1)
  if (to == 'DELIVERED' or to == 'READ') and from ~= 'DELIVERED' and from ~= 'READ' then observe('delivered') end
  if to == 'FALLBACK_SENT' then observe('fallback') end
end
local entry = {state = ARGV[1], at = now}
if type(o.event) == 'string' then entry.event = o.event end
if type(o.detail) == 'string' then entry.detail = o.detail end
if type(o.error) == 'table' then entry.error = {code = o.error.code, message = o.error.message} end
move(cur, ARGV[1], entry)
if type(o.count) == 'string' then redis.call('HINCRBY', KEYS[3], o.count, 1) end
local state = ARGV[1]
if listed(ARGV[5], cur) and not listed(ARGV[5], state) then
  local parked = redis.call('HGET', key, 'pend')
  if parked then
    redis.call('HDEL', key, 'pend')
    local events = cjson.decode(parked)
    -- DELIVERED before READ, whatever order they came in; each applied once, here.
    for _, t in ipairs({'DELIVERED', 'READ'}) do
      for _, p in ipairs(events) do
        if p.t == t and not p.done and listed(t == 'DELIVERED' and ARGV[6] or ARGV[7], state) then
          move(state, t, {state = t, at = now, event = t})
          state = t
          p.done = true
        end
      end
    end
    for _, p in ipairs(events) do
      if not p.done then redis.call('XADD', KEYS[5], '*', 'e', p.e) end
    end
    redis.call('HINCRBY', KEYS[3], 'inbound|parkedApplied', #events)
  end
end
redis.call('PEXPIRE', key, ARGV[3])
return {1, cur, state}
`;

// KEYS[1] status key, KEYS[2] the metrics hash. ARGV: the waiting states (space-separated), the event's
// type, the event (the intake's JSON), the most events one record keeps parked.
// Parks an event on a message whose own step is under way; TRANSITION applies it when the message
// settles. Checked and written in one step, so no settle can slip between the two. One event of each
// type is enough (a repeat is the same fact). Returns 'PARKED', the state the message is in now when
// it is no longer waiting (the caller handles the event again), or false when there is no record.
const PARK = `
local cur = redis.call('HGET', KEYS[1], 'state')
if not cur then return false end
if not string.find(' ' .. ARGV[1] .. ' ', ' ' .. cur .. ' ', 1, true) then return cur end
local parked = redis.call('HGET', KEYS[1], 'pend')
local events = parked and cjson.decode(parked) or {}
for _, p in ipairs(events) do
  if p.t == ARGV[2] then return 'PARKED' end
end
if #events < tonumber(ARGV[4]) then
  events[#events + 1] = {t = ARGV[2], e = ARGV[3]}
  redis.call('HSET', KEYS[1], 'pend', cjson.encode(events))
  redis.call('HINCRBY', KEYS[2], 'inbound|parked', 1)
end
return 'PARKED'
`;

/** Event types one record keeps parked at most (DELIVERED, READ, the two TTL events, and room to spare). */
const MAX_PARKED = 8;

type ScriptRedis = Redis & {
  rbmStatusCreateMany(numKeys: number, ...args: (string | number)[]): Promise<string[]>;
  rbmStatusTransition(key: string, failures: string, metrics: string, feed: string, intake: string, ...args: (string | number)[]): Promise<[number, string | null, string?]>;
  rbmStatusPark(key: string, metrics: string, ...args: (string | number)[]): Promise<string | null>;
};

export class StatusStore implements StatusPort {
  private readonly redis: ScriptRedis;

  constructor(
    redis: Redis,
    private readonly options: { prefix: string; ttlMs: number },
  ) {
    if (!('rbmStatusTransition' in redis)) {
      redis.defineCommand('rbmStatusCreateMany', { lua: CREATE_MANY });
      redis.defineCommand('rbmStatusTransition', { numberOfKeys: 5, lua: TRANSITION });
      redis.defineCommand('rbmStatusPark', { numberOfKeys: 2, lua: PARK });
    }
    this.redis = redis as ScriptRedis;
  }

  /** Messages that failed for good, by when (a sorted set). */
  get failuresKey(): string {
    return `${this.options.prefix}:failures`;
  }

  /**
   * Failed messages, newest first, optionally only those whose last error has
   * `code`, or of some agents. A page never splits failures of one
   * millisecond: it may hold a few more than `limit`, so `next` (the next
   * page's exclusive `before`) skips none.
   */
  async failures(options: FailureQuery): Promise<{ failures: FailureEntry[]; next?: number }> {
    const out: FailureEntry[] = [];
    let max: string = options.before === undefined ? '+inf' : `(${options.before}`;
    // Index pages are read inclusively from the last score seen, skipping what was
    // read at that score: an exclusive bound would drop ties at a page's edge.
    let skip = 0;
    let boundary: number | undefined;
    for (;;) {
      const page = await this.redis.zrevrangebyscore(this.failuresKey, max, '-inf', 'WITHSCORES', 'LIMIT', skip, 500);
      if (page.length === 0) return boundary === undefined ? { failures: out } : { failures: out, next: boundary };
      const pipeline = this.redis.pipeline();
      for (let i = 0; i < page.length; i += 2) pipeline.hmget(this.key(parseRefString(page[i]!)), 'state', 'agentId', 'to', 'lastErrorCode', 'lastError');
      const rows = (await pipeline.exec()) ?? [];
      for (let i = 0; i < rows.length; i++) {
        const [state, agentId, to, code, message] = rows[i]![1] as (string | null)[];
        const failedAt = Number(page[i * 2 + 1]);
        if (boundary !== undefined && failedAt !== boundary) return { failures: out, next: boundary };
        if (!state) continue; // the record expired; the index forgets it lazily
        if (options.code && code !== options.code) continue;
        if (options.agents && !options.agents.has(agentId ?? '')) continue;
        out.push({ messageId: parseRefString(page[i * 2]!).messageId, state: state as MessageState, agentId: agentId ?? '', to: to ?? '', reason: code ?? 'UNKNOWN', message: message ?? '', failedAt });
        if (boundary === undefined && out.length === options.limit) boundary = failedAt;
      }
      const last = page[page.length - 1]!;
      let atLast = 0;
      for (let i = page.length - 1; i > 0 && page[i] === last; i -= 2) atLast++;
      skip = (max === last ? skip : 0) + atLast;
      max = last;
    }
  }

  key(ref: MessageRef): string {
    return `${this.options.prefix}:status:${ref.agentId}:${ref.messageId}`;
  }

  /**
   * The agents (of those given) that hold a record under this message ID. A
   * caller that may use only some agents asks only about those, so it learns
   * nothing of the others' IDs.
   */
  async agentsHolding(messageId: string, agents: readonly string[]): Promise<string[]> {
    if (agents.length === 0) return [];
    const pipeline = this.redis.pipeline();
    for (const agentId of agents) pipeline.exists(this.key({ agentId, messageId }));
    const replies = (await pipeline.exec()) ?? [];
    return agents.filter((_, i) => replies[i]?.[1] === 1);
  }

  /**
   * Creates QUEUED records for the messages that have none. Per message:
   * null when created now, else the state the existing record is in.
   */
  async createMany(records: readonly NewStatus[], now = Date.now()): Promise<(MessageState | null)[]> {
    if (records.length === 0) return [];
    const keys = records.map((r) => this.key(r));
    const args: (string | number)[] = [this.options.ttlMs, now];
    for (const r of records) {
      args.push(r.agentId, maskPhone(r.to), r.trafficType ?? '', r.batchId ?? '', r.expireAt ?? '', r.callback?.url ?? '', r.callback?.scope ?? '');
    }
    const out = await this.redis.rbmStatusCreateMany(keys.length, ...keys, ...args);
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
              agentId: c.agentId, to: maskPhone(c.to), createdAt: c.createdAt, trafficType: c.trafficType ?? '', batchId: c.batchId ?? '', expireAt: c.expireAt ?? '',
              ...(c.callback ? { cb: c.callback.url, cbs: c.callback.scope } : {}),
            },
          }
        : {}),
    };
    const [ok, from, state] = await this.redis.rbmStatusTransition(
      this.key(ref),
      this.failuresKey,
      metricsKey(this.options.prefix),
      callbackFeedKey(this.options.prefix),
      intakeStreamKey(this.options.prefix),
      to,
      options.now ?? Date.now(),
      this.options.ttlMs,
      JSON.stringify(lua),
      WAITING_LIST,
      DELIVERED_FROM,
      READ_FROM,
      ...statesLeadingTo(to),
    );
    return ok === 1 ? { ok: true, from: from as MessageState, state: (state ?? to) as MessageState } : { ok: false, from: (from || null) as MessageState | null };
  }

  async park(ref: MessageRef, eventType: string, event: unknown): Promise<ParkResult> {
    const r = await this.redis.rbmStatusPark(this.key(ref), metricsKey(this.options.prefix), WAITING_LIST, eventType, JSON.stringify(event), MAX_PARKED);
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
