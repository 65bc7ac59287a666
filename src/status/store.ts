/**
 * Message status records in Redis: one hash per message, kept statusTtlMs
 * after its last change. Every state change goes through transition(), a Lua
 * script that checks the edge and writes in one step, so racing workers and
 * webhooks resolve one way. Numbers are stored masked.
 */
import type { Redis } from 'ioredis';
import { maskPhone } from '../mask.ts';
import { statesLeadingTo, type MessageState } from './states.ts';

export interface NewStatus {
  messageId: string;
  agentId: string;
  /** Full E.164; only its masked form is stored. */
  to: string;
  trafficType?: string | undefined;
  batchId?: string | undefined;
  expireAt?: number | undefined;
}

export interface TimelineEntry {
  state: MessageState;
  at: number;
  detail?: string;
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
  timeline: TimelineEntry[];
}

export type TransitionResult = { ok: true; from: MessageState } | { ok: false; from: MessageState | null };

export interface TransitionOptions {
  now?: number;
  detail?: string;
  error?: { code: string; message: string };
  /** Count one more send attempt. */
  countAttempt?: boolean;
  /**
   * The record to create when none exists yet. A message enqueued with a fresh
   * random ID has no record until it first moves: its job is its QUEUED state.
   */
  create?: NewStatus & { createdAt: number };
}

/** What handlers need of the store: an interface, so they test with plain fakes. */
export interface StatusPort {
  transition(messageId: string, to: MessageState, options?: TransitionOptions): Promise<TransitionResult>;
}

// KEYS: one status key per message. ARGV: ttlMs, now, then 5 fields per key.
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
    local b = 2 + (i - 1) * 5
    local fields = {'agentId', ARGV[b + 1], 'to', ARGV[b + 2], 'createdAt', now}
    if ARGV[b + 3] ~= '' then fields[#fields + 1] = 'trafficType'; fields[#fields + 1] = ARGV[b + 3] end
    if ARGV[b + 4] ~= '' then fields[#fields + 1] = 'batchId'; fields[#fields + 1] = ARGV[b + 4] end
    if ARGV[b + 5] ~= '' then fields[#fields + 1] = 'expireAt'; fields[#fields + 1] = ARGV[b + 5] end
    redis.call('HSET', key, unpack(fields))
    redis.call('PEXPIRE', key, ttl)
    out[i] = ''
  end
end
return out
`;

// KEYS[1] status key. ARGV: to, now, ttlMs, countAttempt(0|1), errCode, errMessage, detail,
// then create(''|'1') and its fields agentId, to, createdAt, trafficType, batchId, expireAt,
// then the allowed-from states (ARGV[15]...). With create = '1', a missing record
// counts as QUEUED since createdAt: a freshly queued message's status is its job.
// Returns {1, from} on success, {0, from or false} when refused or missing.
const TRANSITION = `
local cur = redis.call('HGET', KEYS[1], 'state')
local created = false
if not cur then
  if ARGV[8] ~= '1' then return {0, false} end
  cur = 'QUEUED'
  created = true
end
local allowed = false
for i = 15, #ARGV do
  if ARGV[i] == cur then allowed = true break end
end
if not allowed then
  if created then return {0, false} end
  return {0, cur}
end
if created then
  local fields = {'agentId', ARGV[9], 'to', ARGV[10], 'createdAt', ARGV[11]}
  if ARGV[12] ~= '' then fields[#fields + 1] = 'trafficType'; fields[#fields + 1] = ARGV[12] end
  if ARGV[13] ~= '' then fields[#fields + 1] = 'batchId'; fields[#fields + 1] = ARGV[13] end
  if ARGV[14] ~= '' then fields[#fields + 1] = 'expireAt'; fields[#fields + 1] = ARGV[14] end
  redis.call('HSET', KEYS[1], unpack(fields))
end
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'updatedAt', ARGV[2])
if ARGV[4] == '1' then redis.call('HINCRBY', KEYS[1], 'attempts', 1) end
if ARGV[5] ~= '' then redis.call('HSET', KEYS[1], 'lastErrorCode', ARGV[5], 'lastError', ARGV[6]) end
local entry = {state = ARGV[1], at = tonumber(ARGV[2])}
if ARGV[7] ~= '' then entry.detail = ARGV[7] end
local timeline = cjson.decode(redis.call('HGET', KEYS[1], 'timeline') or '[]')
if #timeline == 0 then timeline[1] = {state = 'QUEUED', at = tonumber(redis.call('HGET', KEYS[1], 'createdAt'))} end
timeline[#timeline + 1] = entry
redis.call('HSET', KEYS[1], 'timeline', cjson.encode(timeline))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {1, cur}
`;

type ScriptRedis = Redis & {
  rbmStatusCreateMany(numKeys: number, ...args: (string | number)[]): Promise<string[]>;
  rbmStatusTransition(key: string, ...args: (string | number)[]): Promise<[number, string | null]>;
};

export class StatusStore implements StatusPort {
  private readonly redis: ScriptRedis;

  constructor(
    redis: Redis,
    private readonly options: { prefix: string; ttlMs: number },
  ) {
    if (!('rbmStatusTransition' in redis)) {
      redis.defineCommand('rbmStatusCreateMany', { lua: CREATE_MANY });
      redis.defineCommand('rbmStatusTransition', { numberOfKeys: 1, lua: TRANSITION });
    }
    this.redis = redis as ScriptRedis;
  }

  key(messageId: string): string {
    return `${this.options.prefix}:status:${messageId}`;
  }

  /**
   * Creates QUEUED records for the messages that have none. Per message:
   * null when created now, else the state the existing record is in.
   */
  async createMany(records: readonly NewStatus[], now = Date.now()): Promise<(MessageState | null)[]> {
    if (records.length === 0) return [];
    const keys = records.map((r) => this.key(r.messageId));
    const args: (string | number)[] = [this.options.ttlMs, now];
    for (const r of records) {
      args.push(r.agentId, maskPhone(r.to), r.trafficType ?? '', r.batchId ?? '', r.expireAt ?? '');
    }
    const out = await this.redis.rbmStatusCreateMany(keys.length, ...keys, ...args);
    return out.map((s) => (s === '' ? null : (s as MessageState)));
  }

  async transition(messageId: string, to: MessageState, options: TransitionOptions = {}): Promise<TransitionResult> {
    const c = options.create;
    const [ok, from] = await this.redis.rbmStatusTransition(
      this.key(messageId),
      to,
      options.now ?? Date.now(),
      this.options.ttlMs,
      options.countAttempt ? 1 : 0,
      options.error?.code ?? '',
      options.error?.message ?? '',
      options.detail ?? '',
      ...(c ? ['1', c.agentId, maskPhone(c.to), c.createdAt, c.trafficType ?? '', c.batchId ?? '', c.expireAt ?? ''] : ['', '', '', '', '', '', '']),
      ...statesLeadingTo(to),
    );
    return ok === 1 ? { ok: true, from: from as MessageState } : { ok: false, from: (from || null) as MessageState | null };
  }

  async get(messageId: string): Promise<MessageStatus | null> {
    const h = await this.redis.hgetall(this.key(messageId));
    if (!h.state) return null;
    const createdAt = Number(h.createdAt);
    return {
      messageId,
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
      // A record never moved has only its creation: QUEUED at createdAt.
      timeline: h.timeline ? (JSON.parse(h.timeline) as TimelineEntry[]) : [{ state: 'QUEUED', at: createdAt }],
    };
  }
}
