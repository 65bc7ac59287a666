/**
 * The service's worker sets, each a runner over one kind of queue:
 *   dispatch  one rate-limited worker per RBM agent: send-message, send-event
 *   inbound   the webhook events and local deadlines: inbound-event, check-expiry
 *   sms       the SMS fallback at the provider's rate: send-sms
 *   callbacks status changes from the callback feed to the producers' URLs: deliver-callback
 */
import {
  CHECK_EXPIRY,
  DELIVER_CALLBACK,
  INBOUND_EVENT,
  inboundRetrySchedule,
  SEND_EVENT,
  SEND_MESSAGE,
  SEND_SMS,
} from '../../jobs/index.ts';
import { CALLBACK_FEED_GROUP, createFeedHandler } from '../callbacks/feed.ts';
import { CallbackParkedError } from '../callbacks/errors.ts';
import type { CallbackQueue } from '../callbacks/queue.ts';
import type { Receivers } from '../callbacks/receivers.ts';
import { backoffStrategy } from '../callbacks/schedule.ts';
import { createDeliverCallbackHandler, type DeliverCallbackDeps } from '../handlers/deliver-callback.ts';
import { concurrencyFor, type Config } from '../config.ts';
import { createCheckExpiryHandler } from '../handlers/check-expiry.ts';
import { createInboundEventHandler, type InboundEventDeps } from '../handlers/inbound-event.ts';
import { createSendEventHandler } from '../handlers/send-event.ts';
import { createSendMessageHandler } from '../handlers/send-message.ts';
import { createSendSmsHandler } from '../handlers/send-sms.ts';
import type { Logger } from '../handlers/types.ts';
import type { RequestFallback } from '../fallback/fallback.ts';
import type { DeadlinePort } from '../fallback/ports.ts';
import type { RbmClient } from '../rbm/client.ts';
import type { SmsProvider } from '../sms/index.ts';
import { callbackFeedKey, intakeStreamKey, type StatusPort } from '../status/store.ts';
import { assignAgents } from '../agents/assignment.ts';
import type { LiveAgents } from '../agents/live.ts';
import { DispatchMembership } from '../agents/membership.ts';
import { AgentWorkers } from './agent-workers.ts';
import { startFailingWorker } from './fail-queued.ts';
import { INBOUND_GROUP, startStreamConsumer } from './inbound-stream.ts';
import type { JobQueues } from './job-queues.ts';
import { startQueueWorker, type QueueWorker, type QueueWorkerOptions } from './runner.ts';

export interface WorkerSet {
  /** The workers running now (a dispatch set's follow the agent directory). */
  readonly workers: readonly QueueWorker[];
  /** True while every worker of the set runs (for /readyz). */
  running(): boolean;
  /** Finishes the jobs in hand, then stops. */
  close(): Promise<void>;
}

interface Common {
  config: Readonly<Config>;
  /** The workers' queue registry (its connection: blocking role, maxRetriesPerRequest null). */
  queues: JobQueues;
  status: StatusPort;
  log: Logger;
}

function base(c: Common): Omit<QueueWorkerOptions, 'kind' | 'handlers' | 'concurrency'> {
  const { config } = c;
  return {
    queues: c.queues,
    limiterWindowMs: config.dispatch.limiterWindowMs,
    rateLimitPauseMs: config.dispatch.rateLimitPauseMs,
    keepCompleted: config.dispatch.keepCompleted,
    keepFailedMs: config.dispatch.keepFailedMs,
    lockDurationMs: config.worker.lockDurationMs,
    stalledIntervalMs: config.worker.stalledIntervalMs,
    maxStalledCount: config.worker.maxStalledCount,
    log: c.log,
  };
}

function set(workers: QueueWorker[]): WorkerSet {
  let closed = false;
  return {
    workers,
    running: () => !closed && workers.every((w) => w.worker.isRunning()),
    close: async () => {
      closed = true;
      await Promise.all(workers.map((w) => w.close()));
    },
  };
}

export function startDispatchWorkers(
  deps: Common & {
    rbm: Pick<RbmClient, 'createMessage' | 'createEvent' | 'ready'>;
    requestFallback: RequestFallback;
    deadlines: DeadlinePort;
    /** The agents, as the directory says now: workers start, change and stop with it. */
    agents: Pick<LiveAgents, 'all' | 'onChange'>;
    /** The Redis connections this process holds (reported with its lease). */
    connections?: () => number;
  },
): WorkerSet {
  const { config, log } = deps;
  const handlers = {
    [SEND_MESSAGE]: createSendMessageHandler({
      rbm: deps.rbm,
      status: deps.status,
      requestFallback: deps.requestFallback,
      deadlines: deps.deadlines,
      graceMs: config.fallback.graceMs,
      log,
    }),
    [SEND_EVENT]: createSendEventHandler({ rbm: deps.rbm, log, typingMaxAgeMs: config.dispatch.typingMaxAgeMs }),
  };
  // This set's lease among the dispatch processes, and the agents assigned to it (src/agents/assignment.ts).
  const { maxAgents, agentReplicas } = config.dispatch;
  const membership = new DispatchMembership(deps.queues.connection, deps.queues.prefix, {
    maxAgents,
    log,
    stats: () => {
      const workers = agents.workers();
      return {
        agents: workers.length,
        running: workers.filter((w) => w.worker.isRunning()).length,
        connections: deps.connections?.() ?? 0,
      };
    },
  });
  const assigned = (agentIds: readonly string[]): ReadonlySet<string> | null => {
    const members = membership.current();
    // Before the first beat: every agent when uncapped (a lone process starts at once), none when capped.
    if (!members) return maxAgents > 0 ? new Set() : null;
    return assignAgents(agentIds, members, agentReplicas).get(membership.id) ?? new Set();
  };
  const agents: AgentWorkers = new AgentWorkers({
    agents: deps.agents,
    assigned,
    start: (agent) =>
      startQueueWorker({
        ...base(deps),
        kind: 'outbound',
        agentId: agent.agentId,
        handlers,
        concurrency: concurrencyFor(config, agent),
        ratePerSec: agent.ratePerSec,
        adaptRate: { decrease: config.dispatch.rateAdapt.decrease, increase: config.dispatch.rateAdapt.increasePerSec },
      }),
    queueOf: (agentId) => deps.queues.queue('outbound', agentId),
    startFailing: (agentId) =>
      startFailingWorker(
        {
          queues: deps.queues,
          status: deps.status,
          keepFailedMs: config.dispatch.keepFailedMs,
          lockDurationMs: config.worker.lockDurationMs,
          log,
        },
        agentId,
      ),
    log,
  });
  membership.onChange(() => agents.refresh());
  membership.start();
  let closed = false;
  return {
    get workers() {
      return agents.workers();
    },
    running: () => !closed && agents.healthy(),
    close: async () => {
      closed = true;
      // The lease first: the others take this set's agents while its jobs in hand finish.
      await membership.close();
      await agents.close();
    },
  };
}

/**
 * Webhook events from the inbound stream (the fast path), and from the
 * inbound BullMQ queue the local deadlines and events that had to wait.
 */
export function startInboundWorker(
  deps: Common & Omit<InboundEventDeps, 'status' | 'log' | 'immediateOnRevokeFailed'> & { retryLater: (event: unknown) => Promise<void> },
): WorkerSet {
  const { config } = deps;
  const inboundEvent = createInboundEventHandler({ ...deps, immediateOnRevokeFailed: config.fallback.immediateOnRevokeFailed });
  const handlers = {
    [INBOUND_EVENT]: inboundEvent,
    [CHECK_EXPIRY]: createCheckExpiryHandler({ status: deps.status, requestFallback: deps.requestFallback, rbm: deps.rbm, log: deps.log }),
  };
  // Each lane (keyspace.ts) has its inbound queue and its intake stream: a worker and a consumer for each.
  const parts: QueueWorker[] = [];
  for (const lane of deps.queues.keyspace.tags) {
    const queueWorker = startQueueWorker({
      ...base(deps),
      kind: 'inbound',
      lane,
      handlers,
      concurrency: config.inbound.concurrency,
      backoffStrategy: backoffStrategy(inboundRetrySchedule),
    });
    const consumer = startStreamConsumer({
      stream: intakeStreamKey(lane),
      group: INBOUND_GROUP,
      blocking: deps.queues.connection.duplicate(),
      redis: deps.queues.connection,
      handler: inboundEvent,
      concurrency: config.inbound.concurrency,
      claimIdleMs: config.worker.lockDurationMs,
      retryLater: deps.retryLater,
      log: deps.log,
    });
    parts.push(queueWorker, { worker: queueWorker.worker, close: () => consumer.close() });
  }
  return set(parts);
}

export function startSmsWorker(deps: Common & { provider: SmsProvider; senderOf?: (agentId: string) => string | undefined }): WorkerSet {
  const { config } = deps;
  const handlers = {
    [SEND_SMS]: createSendSmsHandler({
      status: deps.status,
      provider: deps.provider,
      idempotent: config.sms.idempotent,
      ...(deps.senderOf ? { senderOf: deps.senderOf } : {}),
      log: deps.log,
    }),
  };
  return set([
    startQueueWorker({
      ...base(deps),
      kind: 'sms',
      handlers,
      concurrency: Math.max(4, Math.ceil(config.sms.ratePerSec * 0.5)),
      ratePerSec: config.sms.ratePerSec,
    }),
  ]);
}

/**
 * Status callbacks: the feed consumer turns each change into a delivery job;
 * the queue worker POSTs it, retrying on the callback schedule, each receiver
 * kept apart (receivers.ts): a parked delivery is listed for a wake-up once
 * the runner has delayed it.
 */
export function startCallbackWorker(
  deps: Common & Omit<DeliverCallbackDeps, 'log' | 'retryForMs' | 'receivers'> & { queue: CallbackQueue; receivers: Receivers },
): WorkerSet {
  const { config } = deps;
  const cb = config.callbacks;
  const handlers = { [DELIVER_CALLBACK]: createDeliverCallbackHandler({ ...deps, retryForMs: cb.retryForMs, log: deps.log }) };
  const queueWorker = startQueueWorker({
    ...base(deps),
    kind: 'callbacks',
    handlers,
    concurrency: cb.concurrency,
    backoffStrategy: backoffStrategy({ baseMs: cb.retryBaseMs, maxDelayMs: cb.retryMaxDelayMs, forMs: cb.retryForMs }),
    onDeferred: async (job, err) => {
      if (err instanceof CallbackParkedError) await deps.receivers.parked(err.origin, job.id);
    },
  });
  // The change feed is per lane (keyspace.ts): a consumer for each; the delivery queue is one.
  const feeds = deps.queues.keyspace.tags.map((lane) =>
    startStreamConsumer({
      stream: callbackFeedKey(lane),
      group: CALLBACK_FEED_GROUP,
      blocking: deps.queues.connection.duplicate(),
      redis: deps.queues.connection,
      handler: createFeedHandler(deps.queue),
      concurrency: cb.concurrency,
      claimIdleMs: config.worker.lockDurationMs,
      // A change that could not become a job (Redis trouble) stays pending and is claimed again.
      retryLater: async (_entry, err) => {
        throw err;
      },
      log: deps.log,
    }),
  );
  return set([queueWorker, { worker: queueWorker.worker, close: async () => void (await Promise.all(feeds.map((f) => f.close()))) }]);
}
