/**
 * The producer: validates what callers enqueue, fixes each message's RBM
 * messageId (and each event's eventId) once, writes the status record, and
 * adds the job to the agent's outbound queue. An idempotency key makes the ID
 * a UUIDv5 of (agent, key), so the same key returns the same ID and queues
 * nothing the second time. Bad input is refused whole: nothing is queued.
 */
import type { Redis } from 'ioredis';
import { v4 as uuidv4 } from 'uuid';
import type { Problem } from '../../jobs/common.ts';
import { priorityFor, SEND_MESSAGE, type SendMessageInput, type SendMessagePayload } from '../../jobs/send-message.ts';
import { EVENT_PRIORITY, SEND_EVENT, type SendEventInput, type SendEventPayload } from '../../jobs/send-event.ts';
import type { AgentSource } from '../agents/live.ts';
import type { UrlRefusal } from '../egress/guard.ts';
import { AmbiguousMessageIdError, ErrorCodes, PayloadError } from '../errors.ts';
import type { MessageState } from '../status/states.ts';
import type { BatchProgress, BatchStore } from '../status/batches.ts';
import { newStatusOf, refString, type MessageRef, type MessageStatus, type StatusStore } from '../status/store.ts';
import { DEFAULT_SCOPE } from '../callbacks/secrets.ts';
import { whenReady } from './connection.ts';
import type { AddOptions, JobQueues } from './job-queues.ts';
import { pipelinedByLane } from './keyspace.ts';
import {
  agentFor,
  checkAll,
  eventCheck,
  eventPayload,
  idOf,
  keyedBatchItems,
  messageCheck,
  messagePayload,
  queuedStatus,
} from './outbound-input.ts';

/** Chunks per Redis round trip, and how many round trips are in flight at once. */
const CHUNK = 500;
const PARALLEL_CHUNKS = 4;
/** How long an event's idempotency key is remembered: the retry horizon of a producer. */
const EVENT_KEY_TTL_MS = 7 * 86_400_000;
/** Callback URLs of one call checked (their hosts resolved) at once. */
const URL_CHECKS_IN_FLIGHT = 8;

export interface ProducerOptions {
  /** The producer's queue registry: a fail-fast connection (enableOfflineQueue: false). */
  queues: JobQueues;
  /** The agents: those that take messages now, and every one with a record (lookups). */
  agents: AgentSource;
  status: StatusStore;
  /** READ and IS_TYPING coalescing (EVENT_COALESCE_WINDOW_MS); 0 or absent: every event is sent. */
  eventCoalesceWindowMs?: number | undefined;
  /** Where batches remember their message IDs (sendBatch). */
  batches?: BatchStore;
  /** Whether status callbacks are on (CALLBACK_SECRET is set); off, a callbackUrl is refused. */
  callbacks?: boolean;
  /** Refuses a callbackUrl that leads to a private, loopback or metadata address (src/egress/guard.ts); absent: not checked here. */
  egress?: { check(url: string): Promise<UrlRefusal | undefined> };
  now?: () => number;
}

/**
 * Whose idempotency keys these are: an API key's scope, so two producers
 * (API keys) using the same key, even for one agent, never share IDs. None:
 * the library's own namespace (and an API without keys).
 */
export interface KeyScope {
  keyScope?: string | undefined;
  /** The agent of items without agentId, when the caller may use only one (an API key of one agent). */
  defaultAgentId?: string | undefined;
}

export interface SendOptions extends KeyScope {
  batchId?: string;
  /**
   * Status callbacks for these messages: `url` for those without a callbackUrl
   * of their own (an API key's registered URL), signed with `scope`'s secret.
   */
  callback?: { scope: string; url?: string | undefined };
}

export interface EnqueuedBatch {
  batchId: string;
  messageIds: string[];
  /** Items whose ID was already known: nothing new was queued for them. */
  duplicates: number;
}

export interface EnqueuedMessage {
  messageId: string;
  state: MessageState;
  /** True when this ID was already known: nothing new was queued. */
  duplicate: boolean;
}

export interface EnqueuedEvent {
  eventId: string;
  duplicate: boolean;
}

export interface EventShorthandOptions {
  agentId?: string;
  idempotencyKey?: string;
}

export class Producer {
  private readonly now: () => number;
  private readonly queues: JobQueues;
  private readonly redis: Redis;
  /** The agents that take messages, as of now (the directory changes at run time). */
  private get agentIds(): readonly string[] {
    return this.opts.agents.activeIds();
  }

  private constructor(private readonly opts: ProducerOptions) {
    this.now = opts.now ?? Date.now;
    this.queues = opts.queues;
    this.redis = opts.queues.connection;
  }

  static async create(opts: ProducerOptions): Promise<Producer> {
    await whenReady(opts.queues.connection);
    return new Producer(opts);
  }

  async sendMessage(input: SendMessageInput, options: SendOptions = {}): Promise<EnqueuedMessage> {
    const [one] = await this.sendMessages([input], options);
    return one!;
  }

  /**
   * Enqueues thousands per call; refuses the whole call when any item is bad.
   * Every item is validated before anything is written. The schemas never
   * transform a value, so a valid input is its own parsed form: payloads are
   * built per chunk from the inputs, which keeps the live heap small on the
   * hot path. Do not change the inputs until the call resolves.
   */
  async sendMessages(inputs: readonly SendMessageInput[], options: SendOptions = {}): Promise<EnqueuedMessage[]> {
    const now = this.now();
    await checkAll(inputs, messageCheck(now, this.opts.callbacks === true), 'message', this.agentIds, options.defaultAgentId);
    await this.checkCallbackUrls(inputs);
    const context = {
      agents: this.agentIds,
      now,
      keyScope: options.keyScope,
      defaultAgentId: options.defaultAgentId,
      batchId: options.batchId,
      callback: { scope: options.callback?.scope ?? DEFAULT_SCOPE, url: options.callback?.url },
    };

    // A message whose ID the caller fixed (idempotency key or messageId) may
    // exist already: its record is written first, and only a new one is queued.
    // A fresh random UUID cannot collide: its job alone is its QUEUED state,
    // one write per message, and the worker's first move creates the record.
    const keyed = inputs.map((input) => input.idempotencyKey !== undefined || input.messageId !== undefined);
    const results: EnqueuedMessage[] = new Array(inputs.length);
    const seen = new Set<string>();
    await inChunks(inputs.length, async (from, to) => {
      const chunk = inputs.slice(from, to).map((input) => messagePayload(input, context));
      const keyedAt = chunk.flatMap((_, i) => (keyed[from + i] ? [i] : []));
      const existing = await this.opts.status.createMany(
        keyedAt.map((i) => newStatusOf(chunk[i]!)),
        now,
      );
      const prior = new Map<number, MessageState | null>(keyedAt.map((i, k) => [i, existing[k] ?? null]));
      const fresh: SendMessagePayload[] = [];
      chunk.forEach((p, i) => {
        const state = prior.get(i) ?? null;
        const ref = refString(p);
        const repeated = keyed[from + i]! && seen.has(ref);
        if (keyed[from + i]) seen.add(ref);
        // A record still QUEUED may have lost its job (a crash between the two
        // writes): adding again is safe, BullMQ ignores a jobId it still holds.
        if (!repeated && (state === null || state === 'QUEUED')) fresh.push(p);
        results[from + i] = { messageId: p.messageId, state: state ?? 'QUEUED', duplicate: state !== null || repeated };
      });
      await this.queues.addMany(
        SEND_MESSAGE,
        fresh.map((p) => ({ payload: p, opts: { priority: priorityFor(p.message.messageTrafficType) } })),
      );
    });
    return results;
  }

  /**
   * A batch, all or nothing, tracked under one batchId. With an idempotency
   * key the batchId is derived from it and every item without a key of its own
   * gets `<key>:<index>`, so a retried batch queues nothing twice.
   */
  async sendBatch(
    inputs: readonly SendMessageInput[],
    options: { idempotencyKey?: string } & Pick<SendOptions, 'callback' | 'keyScope' | 'defaultAgentId'> = {},
  ): Promise<EnqueuedBatch> {
    const key = options.idempotencyKey;
    const batchId = key ? idOf('batch', '', key, options.keyScope) : uuidv4();
    const items = keyedBatchItems(inputs, key);
    const results = await this.sendMessages(items, {
      batchId,
      keyScope: options.keyScope,
      defaultAgentId: options.defaultAgentId,
      ...(options.callback ? { callback: options.callback } : {}),
    });
    await this.opts.batches?.record(
      batchId,
      results.flatMap((r, i) =>
        r.duplicate ? [] : [{ messageId: r.messageId, agentId: agentFor(this.agentIds, items[i]!.agentId, options.defaultAgentId) }],
      ),
    );
    return { batchId, messageIds: results.map((r) => r.messageId), duplicates: results.filter((r) => r.duplicate).length };
  }

  /** A batch's progress; with `agents`, a batch holding messages of other agents is not shown (null, as unknown). */
  batchProgress(batchId: string, agents: ReadonlySet<string> | null = null): Promise<BatchProgress | null> {
    if (!this.opts.batches) throw new Error('this producer keeps no batches (ProducerOptions.batches)');
    return this.opts.batches.progress(batchId, agents);
  }

  /** The agent a message or event without agentId goes to; throws like an enqueue would. */
  resolveAgent(agentId: string | undefined, defaultAgentId?: string): string {
    return agentFor(this.agentIds, agentId, defaultAgentId);
  }

  async sendEvent(input: SendEventInput, options: KeyScope = {}): Promise<EnqueuedEvent> {
    const [one] = await this.sendEvents([input], options);
    return one!;
  }

  async sendEvents(inputs: readonly SendEventInput[], options: KeyScope = {}): Promise<EnqueuedEvent[]> {
    const now = this.now();
    await checkAll(inputs, eventCheck, 'event', this.agentIds, options.defaultAgentId);
    const context = { agents: this.agentIds, now, keyScope: options.keyScope, defaultAgentId: options.defaultAgentId };
    const payloads: SendEventPayload[] = inputs.map((input) => eventPayload(input, context));
    const keyedIds = new Set(inputs.flatMap((input, i) => (input.eventId || input.idempotencyKey ? [eventRef(payloads[i]!)] : [])));
    const results: EnqueuedEvent[] = new Array(payloads.length);
    await inChunks(payloads.length, async (from, to) => {
      const chunk = payloads.slice(from, to);
      const firstTime = await this.claimEventIds(chunk.filter((p) => keyedIds.has(eventRef(p))));
      const fresh = chunk.filter((p, i) => {
        const isNew = !keyedIds.has(eventRef(p)) || firstTime.has(eventRef(p));
        firstTime.delete(eventRef(p)); // the same key twice in one call is a duplicate too
        results[from + i] = { eventId: p.eventId, duplicate: !isNew };
        return isNew;
      });
      try {
        await this.queues.addMany(
          SEND_EVENT,
          fresh.map((p) => ({ payload: p, opts: { priority: EVENT_PRIORITY, ...this.coalesce(p) } })),
        );
      } catch (err) {
        // Give the keys back, so the caller's retry with the same keys is not taken for a duplicate.
        const claimed = fresh.filter((p) => keyedIds.has(eventRef(p)));
        await pipelinedByLane(
          this.redis,
          claimed,
          (p) => this.queues.keyspace.of(p.agentId),
          (pipe, p) => pipe.del(this.eventKey(p)),
        ).catch(() => undefined);
        throw err;
      }
    });
    return results;
  }

  /** A READ receipt for a message the user sent (its UserMessage.messageId). */
  markRead(to: string, userMessageId: string, options: EventShorthandOptions = {}): Promise<EnqueuedEvent> {
    return this.sendEvent({ to, eventType: 'READ', messageId: userMessageId, ...options });
  }

  startTyping(to: string, options: EventShorthandOptions = {}): Promise<EnqueuedEvent> {
    return this.sendEvent({ to, eventType: 'IS_TYPING', ...options });
  }

  /**
   * The messages with this ID among the agents a caller may use (`agents`;
   * null: every configured agent), or only `agentId`'s. Message IDs live in
   * their agent's namespace (as in RBM), so one ID may name a message of
   * several agents; a caller asking only about its own agents learns nothing
   * of the others'. A message still waiting with no record is found by its job.
   */
  async locate(messageId: string, scope: LocateScope = {}): Promise<MessageRef[]> {
    // Removed agents too: their messages (draining, failed, delivered) are still theirs to look up.
    const agents = this.opts.agents
      .knownIds()
      .filter((a) => (!scope.agents || scope.agents.has(a)) && (scope.agentId === undefined || scope.agentId === a));
    const holding = new Set(await this.opts.status.agentsHolding(messageId, agents));
    // In parallel (one pipelined write on the fail-fast connection): a service of a thousand agents asks a thousand queues.
    const byJob = await Promise.all(
      agents.map((agentId) => (holding.has(agentId) ? undefined : this.queues.find(SEND_MESSAGE, { agentId, messageId }))),
    );
    agents.forEach((agentId, i) => {
      if (byJob[i]) holding.add(agentId);
    });
    return agents.filter((a) => holding.has(a)).map((agentId) => ({ agentId, messageId }));
  }

  /** The one message with this ID a caller may see; throws AmbiguousMessageIdError when several agents hold one. */
  async locateOne(messageId: string, scope: LocateScope = {}): Promise<MessageRef | null> {
    const found = await this.locate(messageId, scope);
    if (found.length > 1)
      throw new AmbiguousMessageIdError(
        messageId,
        found.map((r) => r.agentId),
      );
    return found[0] ?? null;
  }

  /** The status record alone (null when Redis holds none), not QUEUED made up from a job as getStatus does. */
  statusRecord(ref: MessageRef): Promise<MessageStatus | null> {
    return this.opts.status.get(ref);
  }

  /**
   * The status record, or for a message still waiting with no record, QUEUED
   * read from its job. By ID alone: the one message of that ID among `scope`'s agents.
   */
  async getStatus(id: string | MessageRef, scope: LocateScope = {}): Promise<MessageStatus | null> {
    const ref = typeof id === 'string' ? await this.locateOne(id, scope) : id;
    if (!ref) return null;
    const status = await this.opts.status.get(ref);
    if (status) return status;
    const job = await this.queues.find(SEND_MESSAGE, ref);
    return job ? queuedStatus(job.data) : null;
  }

  /**
   * Takes a message that is still waiting out of its queue, for a revoke.
   * 'in-flight' when a worker holds it (it is being sent), null when no job waits.
   */
  async takeQueued(ref: MessageRef): Promise<SendMessagePayload | 'in-flight' | null> {
    if (!this.agentIds.includes(ref.agentId)) return null;
    const job = await this.queues.find(SEND_MESSAGE, ref);
    if (!job) return null;
    // remove() refuses a job a worker holds the lock of: that one is being sent now.
    const taken = await this.queues.remove(SEND_MESSAGE, ref);
    return taken === 'removed' ? job.data : taken === 'locked' ? 'in-flight' : null;
  }

  /**
   * Every distinct callbackUrl through the egress guard (its host resolved,
   * bounded): one refused refuses the call, each item named. After the shape
   * checks, so a malformed body never waits on DNS.
   */
  private async checkCallbackUrls(inputs: readonly SendMessageInput[]): Promise<void> {
    const egress = this.opts.egress;
    if (!egress) return;
    const urls = [...new Set(inputs.flatMap((m) => (m.callbackUrl === undefined ? [] : [m.callbackUrl])))];
    const refused = new Map<string, UrlRefusal>();
    let next = 0;
    const worker = async () => {
      while (next < urls.length) {
        const url = urls[next++]!;
        const refusal = await egress.check(url);
        if (refusal) refused.set(url, refusal);
      }
    };
    await Promise.all(Array.from({ length: Math.min(URL_CHECKS_IN_FLIGHT, urls.length) }, worker));
    if (refused.size === 0) return;
    const problems: Problem[] = [];
    let firstBad: number | undefined;
    inputs.forEach((m, i) => {
      const refusal = m.callbackUrl === undefined ? undefined : refused.get(m.callbackUrl);
      if (!refusal) return;
      firstBad ??= i;
      problems.push({ path: inputs.length > 1 ? `${i}.callbackUrl` : 'callbackUrl', problem: refusal.reason });
    });
    // Forbidden says more than "could not resolve now": it wins when a batch has both.
    const code = [...refused.values()].some((r) => r.code === ErrorCodes.URL_FORBIDDEN)
      ? ErrorCodes.URL_FORBIDDEN
      : ErrorCodes.URL_UNRESOLVABLE;
    throw new PayloadError('message', problems, { index: inputs.length > 1 ? firstBad : undefined, code });
  }

  /** SET NX per keyed event (agent and eventId, see eventRef): the set of those seen here for the first time. */
  private async claimEventIds(events: readonly SendEventPayload[]): Promise<Set<string>> {
    if (events.length === 0) return new Set();
    const replies = await pipelinedByLane(
      this.redis,
      events,
      (p) => this.queues.keyspace.of(p.agentId),
      (pipe, p) => pipe.set(this.eventKey(p), '1', 'PX', EVENT_KEY_TTL_MS, 'NX'),
    );
    const fresh = new Set<string>();
    replies.forEach(([[err, reply] = [null, null]], i) => {
      if (err) throw err;
      if (reply === 'OK') fresh.add(eventRef(events[i]!));
    });
    return fresh;
  }

  /**
   * READ coalescing: a conversation's READ (or IS_TYPING) waits the window;
   * one arriving meanwhile replaces it (BullMQ deduplication in replace
   * mode), so a burst sends one event, for the newest message. The dedupe key
   * ends a little before the job can run: a READ that comes while the last
   * one is being sent is queued, never dropped.
   */
  private coalesce(p: SendEventPayload): AddOptions {
    const window = this.opts.eventCoalesceWindowMs ?? 0;
    if (window <= 0) return {};
    const ttl = window - Math.min(100, Math.floor(window / 5));
    return { delay: window, deduplication: { id: `coalesce:${p.eventType}:${p.agentId}:${p.to}`, ttl, replace: true } };
  }

  /** Event IDs live in their agent's namespace, like message IDs: one agent's never blocks another's. */
  private eventKey(p: Pick<SendEventPayload, 'agentId' | 'eventId'>): string {
    return `${this.queues.keyspace.of(p.agentId)}:event-id:${eventRef(p)}`;
  }
}

/** Which agents a lookup by message ID may look at: a caller's (null: all), or one. */
export interface LocateScope {
  agents?: ReadonlySet<string> | null;
  agentId?: string | undefined;
}

/** An outbound event's claim key: its agent and eventId. */
function eventRef(p: Pick<SendEventPayload, 'agentId' | 'eventId'>): string {
  return `${p.agentId}:${p.eventId}`;
}

/** Runs work over [0, total) in CHUNK-sized slices, PARALLEL_CHUNKS at a time. */
async function inChunks(total: number, work: (from: number, to: number) => Promise<void>): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < total) {
      const from = next;
      next += CHUNK;
      await work(from, Math.min(total, from + CHUNK));
    }
  };
  await Promise.all(Array.from({ length: Math.min(PARALLEL_CHUNKS, Math.ceil(total / CHUNK)) }, lane));
}
