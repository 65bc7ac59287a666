/**
 * The producer: validates what callers enqueue, fixes each message's RBM
 * messageId (and each event's eventId) once, writes the status record, and
 * adds the job to the agent's outbound queue. An idempotency key makes the ID
 * a UUIDv5 of (agent, key), so the same key returns the same ID and queues
 * nothing the second time. Bad input is refused whole: nothing is queued.
 */
import type { JobsOptions, Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { v4 as uuidv4, v5 as uuidv5 } from 'uuid';
import { validateBounded, type Problem } from '../../jobs/common.ts';
import { outboundQueueName } from '../../jobs/index.ts';
import { expirationMs } from '../../jobs/agent-message.ts';
import {
  checkInputTiming,
  priorityFor,
  SEND_MESSAGE,
  sendMessageInput,
  sendMessageJobId,
  type SendMessageInput,
  type SendMessagePayload,
} from '../../jobs/send-message.ts';
import {
  EVENT_PRIORITY,
  SEND_EVENT,
  sendEventInput,
  sendEventJobId,
  type SendEventInput,
  type SendEventPayload,
} from '../../jobs/send-event.ts';
import type { AgentConfig } from '../config.ts';
import type { UrlRefusal } from '../egress/guard.ts';
import { AmbiguousMessageIdError, ErrorCodes, MAX_LISTED_PROBLEMS, PayloadError, UnknownAgentError } from '../errors.ts';
import type { MessageState } from '../status/states.ts';
import type { BatchProgress, BatchStore } from '../status/batches.ts';
import { newStatusOf, refString, type MessageRef, type MessageStatus, type StatusStore } from '../status/store.ts';
import { DEFAULT_SCOPE } from '../callbacks/secrets.ts';
import { maskPhone } from '../mask.ts';
import { startPacer } from '../turn-budget.ts';
import { whenReady } from './connection.ts';
import { sharedQueue } from './shared-queue.ts';

/** Namespace of rbm-dispatch's UUIDv5 IDs; changing it would break every stored idempotency key. */
const ID_NAMESPACE = '6f1c3e0a-7b52-4d1e-9a38-2f5d8c4b7e91';
/** Chunks per Redis round trip, and how many round trips are in flight at once. */
const CHUNK = 500;
const PARALLEL_CHUNKS = 4;
/** How long an event's idempotency key is remembered: the retry horizon of a producer. */
const EVENT_KEY_TTL_MS = 7 * 86_400_000;
/** Callback URLs of one call checked (their hosts resolved) at once. */
const URL_CHECKS_IN_FLIGHT = 8;

export interface ProducerOptions {
  /** A fail-fast connection (enableOfflineQueue: false). */
  connection: Redis;
  prefix: string;
  agents: readonly AgentConfig[];
  status: StatusStore;
  jobDefaults: { attempts: number; backoffMs: number; backoffJitter: number; eventCoalesceWindowMs?: number };
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

/** The UUIDv5 of an idempotency key, in its kind's, agent's and scope's namespace. */
function idOf(kind: 'message' | 'event' | 'batch', agentId: string, key: string, scope: string | undefined): string {
  const agent = kind === 'batch' ? '' : `${agentId}:`;
  return uuidv5(scope === undefined ? `${kind}:${agent}${key}` : `${kind}:${agent}${scope}:${key}`, ID_NAMESPACE);
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
  private readonly queues = new Map<string, Queue>();
  private readonly now: () => number;

  private constructor(private readonly opts: ProducerOptions) {
    this.now = opts.now ?? Date.now;
  }

  static async create(opts: ProducerOptions): Promise<Producer> {
    await whenReady(opts.connection);
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
    await this.checkAll(
      inputs,
      (raw, room) => {
        const checked = validateBounded(sendMessageInput, raw, room);
        if (!checked.ok) return checked;
        const problems = checkInputTiming(checked.value, now);
        if (checked.value.callbackUrl !== undefined && !this.opts.callbacks) {
          problems.push({ path: 'callbackUrl', problem: 'status callbacks are off in this service: CALLBACK_SECRET is not configured' });
        }
        return problems.length > 0 ? { ok: false as const, problems, count: problems.length } : checked;
      },
      'message',
      options.defaultAgentId,
    );
    await this.checkCallbackUrls(inputs);
    const scope = options.callback?.scope ?? DEFAULT_SCOPE;
    const toPayload = (input: SendMessageInput): SendMessagePayload => {
      const agentId = this.agentFor(input.agentId, options.defaultAgentId);
      const { to, fallback, idempotencyKey, messageId, agentId: _a, callbackUrl, ...message } = input;
      const expireAt = expirationMs(message, now);
      const url = callbackUrl ?? options.callback?.url;
      return {
        messageId: messageId ?? (idempotencyKey ? idOf('message', agentId, idempotencyKey, options.keyScope) : uuidv4()),
        agentId,
        to,
        message: message as SendMessagePayload['message'],
        ...(fallback ? { fallback } : {}),
        enqueuedAt: now,
        ...(expireAt !== undefined ? { expireAt } : {}),
        ...(options.batchId ? { batchId: options.batchId } : {}),
        ...(url ? { callback: { url, scope } } : {}),
      };
    };

    // A message whose ID the caller fixed (idempotency key or messageId) may
    // exist already: its record is written first, and only a new one is queued.
    // A fresh random UUID cannot collide: its job alone is its QUEUED state,
    // one write per message, and the worker's first move creates the record.
    const keyed = inputs.map((input) => input.idempotencyKey !== undefined || input.messageId !== undefined);
    const results: EnqueuedMessage[] = new Array(inputs.length);
    const seen = new Set<string>();
    await inChunks(inputs.length, async (from, to) => {
      const chunk = inputs.slice(from, to).map(toPayload);
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
      await this.addJobs(fresh, (p) => ({
        name: SEND_MESSAGE,
        data: p,
        opts: this.jobOptions(sendMessageJobId(p.messageId), priorityFor(p.message.messageTrafficType)),
      }));
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
    const items = key
      ? inputs.map((m, i) =>
          m && typeof m === 'object' && m.idempotencyKey === undefined && m.messageId === undefined
            ? { ...m, idempotencyKey: `${key}:${i}` }
            : m,
        )
      : inputs;
    const results = await this.sendMessages(items, {
      batchId,
      keyScope: options.keyScope,
      defaultAgentId: options.defaultAgentId,
      ...(options.callback ? { callback: options.callback } : {}),
    });
    await this.opts.batches?.record(
      batchId,
      results.flatMap((r, i) =>
        r.duplicate ? [] : [{ messageId: r.messageId, agentId: this.agentFor(items[i]!.agentId, options.defaultAgentId) }],
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
    return this.agentFor(agentId, defaultAgentId);
  }

  async sendEvent(input: SendEventInput, options: KeyScope = {}): Promise<EnqueuedEvent> {
    const [one] = await this.sendEvents([input], options);
    return one!;
  }

  async sendEvents(inputs: readonly SendEventInput[], options: KeyScope = {}): Promise<EnqueuedEvent[]> {
    const now = this.now();
    await this.checkAll(inputs, (raw, room) => validateBounded(sendEventInput, raw, room), 'event', options.defaultAgentId);
    const payloads = inputs.map((input): SendEventPayload => {
      const agentId = this.agentFor(input.agentId, options.defaultAgentId);
      const keyed = input.eventId ?? (input.idempotencyKey ? idOf('event', agentId, input.idempotencyKey, options.keyScope) : undefined);
      return {
        eventId: keyed ?? uuidv4(),
        agentId,
        to: input.to,
        eventType: input.eventType,
        ...(input.messageId !== undefined ? { messageId: input.messageId } : {}),
        enqueuedAt: now,
      };
    });
    const keyedIds = new Set(inputs.flatMap((input, i) => (input.eventId || input.idempotencyKey ? [eventRef(payloads[i]!)] : [])));
    const results: EnqueuedEvent[] = new Array(payloads.length);
    await inChunks(payloads.length, async (from, to) => {
      const chunk = payloads.slice(from, to);
      const firstTime = await this.claimEventIds(chunk.filter((p) => keyedIds.has(eventRef(p))).map(eventRef));
      const fresh = chunk.filter((p, i) => {
        const isNew = !keyedIds.has(eventRef(p)) || firstTime.has(eventRef(p));
        firstTime.delete(eventRef(p)); // the same key twice in one call is a duplicate too
        results[from + i] = { eventId: p.eventId, duplicate: !isNew };
        return isNew;
      });
      try {
        await this.addJobs(fresh, (p) => ({
          name: SEND_EVENT,
          data: p,
          opts: { ...this.jobOptions(sendEventJobId(p.eventId), EVENT_PRIORITY), ...this.coalesce(p) },
        }));
      } catch (err) {
        // Give the keys back, so the caller's retry with the same keys is not taken for a duplicate.
        const claimed = fresh.filter((p) => keyedIds.has(eventRef(p))).map((p) => this.eventKey(eventRef(p)));
        if (claimed.length > 0) await this.opts.connection.del(...claimed).catch(() => undefined);
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
    const agents = this.opts.agents
      .map((a) => a.agentId)
      .filter((a) => (!scope.agents || scope.agents.has(a)) && (scope.agentId === undefined || scope.agentId === a));
    const holding = new Set(await this.opts.status.agentsHolding(messageId, agents));
    for (const agentId of agents) {
      if (!holding.has(agentId) && (await this.queue(agentId).getJob(sendMessageJobId(messageId)))) holding.add(agentId);
    }
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

  /**
   * The status record, or for a message still waiting with no record, QUEUED
   * read from its job. By ID alone: the one message of that ID among `scope`'s agents.
   */
  async getStatus(id: string | MessageRef, scope: LocateScope = {}): Promise<MessageStatus | null> {
    const ref = typeof id === 'string' ? await this.locateOne(id, scope) : id;
    if (!ref) return null;
    const status = await this.opts.status.get(ref);
    if (status) return status;
    const job = await this.queue(ref.agentId).getJob(sendMessageJobId(ref.messageId));
    return job ? queuedStatus(job.data as SendMessagePayload) : null;
  }

  /**
   * Takes a message that is still waiting out of its queue, for a revoke.
   * 'in-flight' when a worker holds it (it is being sent), null when no job waits.
   */
  async takeQueued(ref: MessageRef): Promise<SendMessagePayload | 'in-flight' | null> {
    if (!this.opts.agents.some((a) => a.agentId === ref.agentId)) return null;
    const queue = this.queue(ref.agentId);
    const job = await queue.getJob(sendMessageJobId(ref.messageId));
    if (!job) return null;
    // remove() refuses a job a worker holds the lock of: that one is being sent now.
    return (await queue.remove(job.id!)) === 1 ? (job.data as SendMessagePayload) : 'in-flight';
  }

  async close(): Promise<void> {
    await Promise.all([...this.queues.values()].map((q) => q.close()));
    this.queues.clear();
  }

  /**
   * Validates every item; one bad item refuses the call, naming the first
   * MAX_LISTED_PROBLEMS problems (indexed) and counting all of them. A batch
   * of 10,000 bad items is ~0.5 s of zod: the loop takes its share of each
   * turn of the event loop (see turn-budget.ts), so health checks, webhooks
   * and the workers in this process keep their turns meanwhile.
   */
  private async checkAll(
    inputs: readonly unknown[],
    check: (raw: unknown, room: number) => { ok: true } | { ok: false; problems: Problem[]; count: number },
    what: string,
    defaultAgentId?: string,
  ): Promise<void> {
    if (!Array.isArray(inputs)) throw new PayloadError(`${what} list`, [{ path: '', problem: `expected an array, got ${typeof inputs}` }]);
    const problems: Problem[] = [];
    let count = 0;
    let firstBad: number | undefined;
    const pacer = startPacer();
    try {
      for (let i = 0; i < inputs.length; i++) {
        if (pacer.due()) await pacer.nextTurn();
        const checked = check(inputs[i], MAX_LISTED_PROBLEMS - problems.length);
        if (checked.ok) continue;
        firstBad ??= i;
        count += checked.count;
        const prefix = inputs.length > 1 ? `${i}.` : '';
        for (const p of checked.problems.slice(0, MAX_LISTED_PROBLEMS - problems.length)) {
          problems.push({ path: `${prefix}${p.path}`.replace(/\.$/, ''), problem: p.problem });
        }
      }
    } finally {
      pacer.end();
    }
    if (count > 0) throw new PayloadError(what, problems, { index: inputs.length > 1 ? firstBad : undefined, count });
    // Agents are checked before anything is written, so an unknown one queues nothing either.
    for (const item of inputs) this.agentFor((item as { agentId?: string }).agentId, defaultAgentId);
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

  private agentFor(agentId: string | undefined, defaultAgentId?: string): string {
    const agents = this.opts.agents;
    if (agentId === undefined && defaultAgentId !== undefined) return this.agentFor(defaultAgentId);
    if (agentId === undefined) {
      if (agents.length === 1) return agents[0]!.agentId;
      throw new PayloadError('message', [
        {
          path: 'agentId',
          problem: `expected one of ${agents.map((a) => a.agentId).join(', ')} (several agents are configured), got nothing`,
        },
      ]);
    }
    if (!agents.some((a) => a.agentId === agentId))
      throw new UnknownAgentError(
        agentId,
        agents.map((a) => a.agentId),
      );
    return agentId;
  }

  private jobOptions(jobId: string, priority: number): JobsOptions {
    const d = this.opts.jobDefaults;
    return {
      jobId,
      ...(priority > 0 ? { priority } : {}),
      attempts: d.attempts,
      backoff: { type: 'exponential', delay: d.backoffMs, jitter: d.backoffJitter },
    };
  }

  private async addJobs<P extends { agentId: string }>(
    payloads: readonly P[],
    toJob: (p: P) => { name: string; data: P; opts: JobsOptions },
  ): Promise<void> {
    const byAgent = new Map<string, Array<{ name: string; data: P; opts: JobsOptions }>>();
    for (const p of payloads) {
      const list = byAgent.get(p.agentId) ?? [];
      list.push(toJob(p));
      byAgent.set(p.agentId, list);
    }
    await Promise.all([...byAgent].map(([agentId, jobs]) => this.queue(agentId).addBulk(jobs)));
  }

  /** SET NX per keyed event (agent and eventId, see eventRef): the set of those seen here for the first time. */
  private async claimEventIds(eventIds: readonly string[]): Promise<Set<string>> {
    if (eventIds.length === 0) return new Set();
    const pipeline = this.opts.connection.pipeline();
    for (const id of eventIds) pipeline.set(this.eventKey(id), '1', 'PX', EVENT_KEY_TTL_MS, 'NX');
    const replies = (await pipeline.exec()) ?? [];
    const fresh = new Set<string>();
    replies.forEach(([err, reply], i) => {
      if (err) throw err;
      if (reply === 'OK') fresh.add(eventIds[i]!);
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
  private coalesce(p: SendEventPayload): JobsOptions {
    const window = this.opts.jobDefaults.eventCoalesceWindowMs ?? 0;
    if (window <= 0) return {};
    const ttl = window - Math.min(100, Math.floor(window / 5));
    return { delay: window, deduplication: { id: `coalesce:${p.eventType}:${p.agentId}:${p.to}`, ttl, replace: true } };
  }

  /** Event IDs live in their agent's namespace, like message IDs: one agent's never blocks another's. */
  private eventKey(ref: string): string {
    return `${this.opts.prefix}:event-id:${ref}`;
  }

  /** The outbound queue of an agent (one per agent). */
  queueOf(agentId: string): Queue {
    return this.queue(agentId);
  }

  private queue(agentId: string): Queue {
    let queue = this.queues.get(agentId);
    if (!queue) {
      queue = sharedQueue(outboundQueueName(agentId), this.opts.connection, this.opts.prefix);
      this.queues.set(agentId, queue);
    }
    return queue;
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

function queuedStatus(p: SendMessagePayload): MessageStatus {
  return {
    messageId: p.messageId,
    state: 'QUEUED',
    agentId: p.agentId,
    to: maskPhone(p.to),
    channel: 'rcs',
    ...(p.message.messageTrafficType ? { trafficType: p.message.messageTrafficType } : {}),
    ...(p.batchId ? { batchId: p.batchId } : {}),
    ...(p.expireAt !== undefined ? { expireAt: p.expireAt } : {}),
    createdAt: p.enqueuedAt,
    updatedAt: p.enqueuedAt,
    attempts: 0,
    timeline: [{ state: 'QUEUED', at: p.enqueuedAt }],
  };
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
