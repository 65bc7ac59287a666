/**
 * The composition of the service's parts from one Config: Redis connections in
 * their two roles, the RBM client, the status store, the producer and revoke,
 * the webhook intake, status callbacks, and the worker sets (dispatch,
 * inbound, SMS, callbacks) on demand.
 * Entry points, tests and benchmarks all build it here, so the wiring exists
 * once. No listen(), no signals: those belong to workers/.
 */
import type { Redis } from 'ioredis';
import type { InboundEventPayload } from '../jobs/inbound-event.ts';
import { SEND_MESSAGE } from '../jobs/send-message.ts';
import { CallbackQueue } from './callbacks/queue.ts';
import { Receivers } from './callbacks/receivers.ts';
import { CallbackRegistry } from './callbacks/registry.ts';
import { createReplay } from './callbacks/replay.ts';
import { callbackSecretFor } from './callbacks/secrets.ts';
import { createCallbackClient } from './callbacks/http.ts';
import type { Config } from './config.ts';
import { EgressGuard, type ResolveHost } from './egress/guard.ts';
import { createFallback } from './fallback/fallback.ts';
import { createRevoke } from './fallback/revoke.ts';
import { AgentDirectory } from './agents/directory.ts';
import { LiveAgents } from './agents/live.ts';
import { throttled } from './log-throttle.ts';
import type { Logger } from './logger.ts';
import { ConnectionCount, createRedis, type RedisEndpoint, whenReady } from './queue/connection.ts';
import { checkRedis, checkRedisCluster } from './queue/preflight.ts';
import { StreamInboundIntake } from './queue/inbound-stream.ts';
import { BullDeadlines, BullInboundRetries, BullSmsQueue, RedisInboundStream } from './queue/lifecycle-queues.ts';
import { startArchiver } from './history/archiver.ts';
import { startEvictor } from './history/evictor.ts';
import { openHistory, type HistoryStore } from './history/index.ts';
import { eraseSubscriber, type EraseSubscriberResult } from './history/erase.ts';
import { phoneKeyOf } from './history/settings.ts';
import { jobOptionsFrom } from './queue/job-options.ts';
import { JobQueues } from './queue/job-queues.ts';
import { MetricsSource } from './queue/metrics-source.ts';
import { Producer } from './queue/producer.ts';
import { redrive, type RedriveResult } from './queue/redrive.ts';
import { startCallbackWorker, startDispatchWorkers, startInboundWorker, startSmsWorker, type WorkerSet } from './queue/workers.ts';
import type { RbmClient } from './rbm/client.ts';
import type { TokenEvent } from './rbm/auth.ts';
import { connectRbm } from './rbm/connect.ts';
import { createSmsProvider, type SmsSettings } from './sms/index.ts';
import { BatchStore } from './status/batches.ts';
import { Tombstones } from './status/tombstones.ts';
import { Keyspace, lanesTooFew, laneNodes, laneTags } from './queue/keyspace.ts';
import { countMetric, StatusStore, statusKey, type MessageRef } from './status/store.ts';
import { newWebhookCounters, type WebhookCounters } from './webhook/receiver.ts';

/** How often an archiver drops the days past HISTORY_RETENTION_DAYS. */
const RETENTION_EVERY_MS = 3_600_000;

export interface Service {
  config: Readonly<Config>;
  rbm: RbmClient;
  producer: Producer;
  /** Every BullMQ queue of the service, on the producers' (fail-fast) connection: jobs by contract, for tools and tests. */
  queues: JobQueues;
  /** The store as producers see it (fail-fast connection). */
  status: StatusStore;
  /** Revoke a message, optionally falling back to SMS. */
  revoke: ReturnType<typeof createRevoke>;
  /** Where the webhook receiver puts verified events. */
  intake: StreamInboundIntake;
  /** Where each agent's keys are (its lane): tests and tools find a message's keys through it. */
  keyspace: Keyspace;
  webhookCounters: WebhookCounters;
  /** The Redis stream user messages and events are published to. */
  inboundStreamKey: string;
  redis: { producer: Redis; worker: Redis };
  /** Each call starts one more set of workers (several dispatch sets share each agent's limiter in Redis). */
  startDispatch(): WorkerSet;
  startInbound(): WorkerSet;
  startSms(): WorkerSet;
  /** Status callbacks (needs CALLBACK_SECRET). */
  startCallbacks(): WorkerSet;
  /** The archiver: every timeline entry from the history feed to PostgreSQL (src/history/archiver.ts). */
  startArchiver(): Promise<WorkerSet>;
  /**
   * The history archive, opened on first use: DATABASE_URL, or the embedded PGlite under HISTORY_DATA_DIR.
   * An open that failed (HISTORY_UNAVAILABLE) is tried again at the next call.
   */
  history(): Promise<HistoryStore>;
  /** The key numbers are hashed with in the archive (src/history/settings.ts phoneKeyOf): the archiver's and the API's. */
  historyPhoneKey(): Promise<string>;
  /**
   * A data-protection erase of one number (E.164): its messages and timelines in the archive, and the
   * status records of those messages still in Redis; counted in the metrics hash (`history|erase`).
   */
  eraseSubscriber(e164: string): Promise<EraseSubscriberResult>;
  /**
   * Status callbacks: the URL registered per API key scope, the secret of a scope (undefined: callbacks are off),
   * replay, the guard URLs must pass, and the delivery queue.
   */
  callbacks: {
    registry: CallbackRegistry;
    queue: CallbackQueue;
    secretFor(scope: string): string | undefined;
    replay: ReturnType<typeof createReplay>;
    egress: EgressGuard;
  };
  /** Where requests to URLs users gave may go (config.egress), checked when given and at every connect. */
  egress: EgressGuard;
  /** Messages that failed for good, newest first; `code` filters by the last error's code. */
  failures: StatusStore['failures'];
  /** Re-drives failed messages (FAILED: the send again; FALLBACK_FAILED: the SMS again). */
  redrive(refs: readonly MessageRef[]): Promise<RedriveResult>;
  /** What /metrics reads at scrape time. */
  metricsSource: MetricsSource;
  /** The agent directory as this process sees it (kept fresh), and the directory itself for the admin API. */
  agents: LiveAgents;
  /** Readiness: Redis answers, and every worker set started here runs. */
  readiness(): Array<{ name: string; check: () => Promise<boolean> }>;
  /** Stops the workers (finishing jobs in hand), then everything they used. */
  close(): Promise<void>;
}

export interface ServiceDeps {
  redisUrl: string;
  rbm: { baseUrl: string; keyFile: string };
  /** Needed by startSms(). */
  sms?: SmsSettings;
  log: Logger;
  now?: () => number;
  /** Called for every user message, user event and launch event, in the inbound worker. */
  onInbound?: (event: InboundEventPayload) => Promise<void> | void;
  /** Stands in for DNS in the egress guard (tests: a name that resolves elsewhere at connect time). */
  resolveHost?: ResolveHost;
}

export async function createService(config: Readonly<Config>, deps: ServiceDeps): Promise<Service> {
  const { log } = deps;
  // Before any queue touches it: a wrong Redis stops the start with one clear error, not a flood of failing fetches.
  const check = { prefix: config.queuePrefix, timeoutMs: config.redisStartTimeoutMs };
  const clusterNodes = config.redisClusterNodes;
  const redisCheck = clusterNodes ? await checkRedisCluster(clusterNodes, check) : await checkRedis(deps.redisUrl, check);
  // REDIS_CLUSTER_NODES selects a Cluster; REDIS_URL (or the Redis npm start found or started) is used otherwise.
  const endpoint: RedisEndpoint = clusterNodes ? { clusterNodes } : deps.redisUrl;
  for (const warning of redisCheck.warnings) log.warn(warning);
  // Token requests and RBM's 401s are counted in the metrics hash; none happens before the first call, when Redis is set.
  let countToken = (_event: TokenEvent): void => {};
  const rbm = await connectRbm(config, deps.rbm, { log, onTokenEvent: (event) => countToken(event) });
  // Every connection of the process, duplicates included, counted: a dispatch process reports it with its lease.
  const connections = new ConnectionCount();
  const producerRedis = connections.track(createRedis(endpoint, 'producer', log));
  const workerRedis = connections.track(createRedis(endpoint, 'worker', log));
  await whenReady(workerRedis);
  // A lost count must not fail a send: the counter is best effort.
  countToken = (event) => void countMetric(workerRedis, config.queuePrefix, 'token', event).catch(() => {});
  const egress = new EgressGuard(config.egress, deps.resolveHost ? { resolve: deps.resolveHost } : {});
  // The agents: RBM_AGENTS seeds the directory; from then on it is what the admin API says, read by every process.
  // Read first: each agent's lane (its place in the keyspace) is on its record.
  await whenReady(producerRedis);
  const laneTagList = laneTags(config.queuePrefix, config.keyspaceLanes);
  const directory = new AgentDirectory(producerRedis, config.queuePrefix, deps.now, {
    count: config.keyspaceLanes,
    nodes: () => laneNodes(producerRedis, laneTagList),
  });
  const seeded = await directory.seed(config.agents);
  if (seeded.length > 0) log.info({ agents: seeded }, 'agent directory: agents of RBM_AGENTS added');
  const agents = await LiveAgents.start(directory, { log });
  const beyond = agents.all().filter((a) => (a.lane ?? 0) >= config.keyspaceLanes);
  if (beyond.length > 0) {
    agents.close();
    await Promise.all([producerRedis.quit(), workerRedis.quit(), rbm.close()]).catch(() => undefined);
    throw lanesTooFew(
      beyond.map((a) => ({ agentId: a.agentId, lane: a.lane ?? 0 })),
      config.keyspaceLanes,
    );
  }
  const keyspace = new Keyspace(config.queuePrefix, config.keyspaceLanes, (agentId) => agents.get(agentId)?.lane);
  const storeOptions = { prefix: keyspace, ttlMs: config.statusTtlMs };
  const status = new StatusStore(producerRedis, storeOptions);
  // Workers write through the waiting connection: a Redis blip delays a job, it does not fail it.
  const workerStatus = new StatusStore(workerRedis, storeOptions);
  // What stays of a settled message after it left Redis (history/evictor.ts).
  const tombstones = new Tombstones(producerRedis, storeOptions);
  const workerTombstones = new Tombstones(workerRedis, storeOptions);
  // One registry of queues per connection role: producers fail fast, workers wait out a blip.
  const jobOptions = jobOptionsFrom(config);
  const producerQueues = new JobQueues(producerRedis, keyspace, jobOptions);
  const workerQueues = new JobQueues(workerRedis, keyspace, jobOptions);
  const producer = await Producer.create({
    queues: producerQueues,
    agents,
    status,
    batches: new BatchStore(producerRedis, {
      prefix: config.queuePrefix,
      ttlMs: config.statusTtlMs,
      statusKey: (ref) => status.key(ref),
      laneOf: (ref) => keyspace.of(ref.agentId),
      tombstones,
    }),
    eventCoalesceWindowMs: config.dispatch.eventCoalesceWindowMs,
    callbacks: config.callbacks.secret !== undefined,
    egress,
    ...(deps.now ? { now: deps.now } : {}),
  });
  const smsQueue = new BullSmsQueue(workerQueues);
  const deadlines = new BullDeadlines(workerQueues, deps.now);
  const requestFallback = createFallback({ status: workerStatus, sms: smsQueue, ...(deps.now ? { now: deps.now } : {}) });
  const intake = new StreamInboundIntake(producerRedis, { prefix: keyspace, dedupeTtlMs: config.inbound.dedupeTtlMs });
  const inboundRetries = new BullInboundRetries(workerQueues);
  const stream = new RedisInboundStream(workerRedis, config.queuePrefix, config.inbound.streamMaxLen, deps.onInbound);
  const cb = config.callbacks;
  // Each needs the other: the queue asks the receivers for priorities, the receivers wake parked jobs of the queue.
  const receivers = new Receivers(
    workerRedis,
    config.queuePrefix,
    {
      maxInFlight: cb.maxInFlightPerReceiver,
      threshold: cb.breakerThreshold,
      cooldownMs: cb.breakerCooldownMs,
      maxCooldownMs: cb.breakerMaxCooldownMs,
      timeoutMs: cb.timeoutMs,
      retryForMs: cb.retryForMs,
    },
    (jobIds): Promise<void> => callbackQueue.wake(jobIds),
    log,
  );
  const callbackQueue: CallbackQueue = new CallbackQueue(workerQueues, receivers);
  const secretFor = (scope: string) => (cb.secret === undefined ? undefined : callbackSecretFor(cb.secret, scope));
  const metricsSource = new MetricsSource(producerRedis, producerQueues, () => agents.knownIds());
  const common = { config, queues: workerQueues, status: workerStatus, log };

  const sets: WorkerSet[] = [];
  const providers: Array<{ close(): Promise<void> }> = [];
  const started = (s: WorkerSet) => {
    sets.push(s);
    return s;
  };
  let historyStore: Promise<HistoryStore> | undefined;
  const history = (): Promise<HistoryStore> => {
    if (historyStore) return historyStore;
    const opening = openHistory({
      url: config.history.databaseUrl,
      dataDir: config.history.dataDir,
      storeText: config.history.storeText,
      retentionDays: config.history.retentionDays,
      log,
    });
    historyStore = opening;
    // A failed open is not kept: the next call (the next request) tries again.
    opening.catch(() => {
      if (historyStore === opening) historyStore = undefined;
    });
    return opening;
  };
  let phoneKey: Promise<string> | undefined;
  const historyPhoneKey = (): Promise<string> => {
    if (phoneKey) return phoneKey;
    const reading = history().then((store) => phoneKeyOf(config.history.phoneKey, store.db));
    phoneKey = reading;
    reading.catch(() => {
      if (phoneKey === reading) phoneKey = undefined;
    });
    return reading;
  };
  let closing: Promise<void> | undefined;
  return {
    config,
    rbm,
    producer,
    queues: producerQueues,
    status,
    revoke: createRevoke({ status, producer, rbm, requestFallback: createFallback({ status, sms: smsQueue }), deadlines }),
    intake,
    keyspace,
    webhookCounters: newWebhookCounters(),
    inboundStreamKey: stream.key,
    redis: { producer: producerRedis, worker: workerRedis },
    startDispatch: () =>
      started(startDispatchWorkers({ ...common, rbm, requestFallback, deadlines, agents, connections: () => connections.value })),
    startInbound: () =>
      started(
        startInboundWorker({
          ...common,
          rbm,
          requestFallback,
          deadlines,
          consumers: stream,
          retryLater: (event) => inboundRetries.retryLater(event),
          ...(config.inbound.autoRead
            ? { markRead: (to: string, id: string, agentId: string) => producer.markRead(to, id, { agentId }) }
            : {}),
          count: async (name) => void (await countMetric(workerRedis, config.queuePrefix, 'inbound', name)),
          tombstones: workerTombstones,
          heldByOtherAgent: async (ref) =>
            (
              await workerStatus.agentsHolding(
                ref.messageId,
                agents.knownIds().filter((a) => a !== ref.agentId),
              )
            ).length > 0,
        }),
      ),
    startSms() {
      if (!deps.sms) throw new Error('startSms needs SMS settings (ServiceDeps.sms)');
      const provider = createSmsProvider(deps.sms, { log, egress });
      providers.push(provider);
      return started(startSmsWorker({ ...common, provider, senderOf: (agentId) => agents.get(agentId)?.smsFrom }));
    },
    startCallbacks() {
      if (cb.secret === undefined) throw new Error('status callbacks need CALLBACK_SECRET (whsec_ and 24 to 64 random bytes in base64)');
      const client = createCallbackClient(cb.timeoutMs, egress);
      providers.push(client);
      return started(
        startCallbackWorker({
          ...common,
          queue: callbackQueue,
          receivers,
          secretFor: (scope) => secretFor(scope)!,
          post: client.post,
          count: async (outcome) => void (await countMetric(workerRedis, config.queuePrefix, 'callback', outcome)),
        }),
      );
    },
    history,
    historyPhoneKey,
    async eraseSubscriber(e164) {
      // A finished send job keeps the full number in its payload (JOB_KEEP_COMPLETED, JOB_KEEP_FAILED_MS): it goes too.
      // A job still waiting or running is left: it is a send in progress, archived again as it moves.
      const eraseOfPhone = async (refs: readonly MessageRef[], to: string): Promise<number> => {
        const records = (await status.eraseOfPhone(refs, to)) + (await tombstones.erase(refs));
        for (const ref of refs) {
          const job = await producerQueues.find(SEND_MESSAGE, ref);
          const state = job && job.data.to === to ? await job.getState() : undefined;
          if (state === 'completed' || state === 'failed') await producerQueues.remove(SEND_MESSAGE, ref);
        }
        return records;
      };
      const result = await eraseSubscriber(
        {
          store: await history(),
          phoneKey: await historyPhoneKey(),
          agentIds: agents.knownIds(),
          status: { eraseOfPhone },
        },
        e164,
      );
      await countMetric(producerRedis, config.queuePrefix, 'history', 'erase');
      return result;
    },
    async startArchiver() {
      const store = await history();
      const phoneKey = await historyPhoneKey();
      // Each lane has its history feed and settled index (queue/keyspace.ts): an archiver and an evictor for each.
      const consumers = keyspace.tags.map((lane) =>
        startArchiver({
          redis: workerRedis,
          blocking: workerRedis.duplicate(),
          prefix: lane,
          store,
          phoneKey,
          claimIdleMs: config.worker.lockDurationMs,
          log,
        }),
      );
      // Settled records leave Redis after the hot window, once archived: the archiver's watermark says when.
      const evictors = keyspace.tags.map((lane) =>
        startEvictor({
          redis: workerRedis,
          prefix: lane,
          hotMs: config.statusHotMs,
          ttlMs: config.statusTtlMs,
          // The lane's own: a record in its settled index is on it, whatever this process knows of the agent yet.
          statusKey: (ref) => statusKey(lane, ref),
          log,
          ...(deps.now ? { now: deps.now } : {}),
        }),
      );
      // Retention: whole days dropped at start and hourly (cheap; several archivers take turns under a lock).
      const retain = () =>
        store
          .enforceRetention(Date.now(), config.history.retentionDays)
          .then(({ droppedDays }) => droppedDays.length > 0 && log.info({ droppedDays }, 'history: days past retention dropped'))
          .catch((err: Error) => throttled(log).warn('history retention failed; tried again within the hour', err, 'history'));
      void retain();
      const retention = setInterval(retain, RETENTION_EVERY_MS);
      retention.unref();
      let stopped = false;
      return started({
        workers: [],
        running: () => !stopped,
        close: async () => {
          stopped = true;
          clearInterval(retention);
          await Promise.all([...consumers, ...evictors].map((c) => c.close()));
        },
      });
    },
    callbacks: {
      registry: new CallbackRegistry(producerRedis, config.queuePrefix),
      queue: callbackQueue,
      secretFor,
      replay: createReplay({ status, queue: callbackQueue, ...(deps.now ? { now: deps.now } : {}) }),
      egress,
    },
    egress,
    metricsSource,
    agents,
    failures: (options) => status.failures(options),
    redrive: (refs) => redrive({ status, queues: producerQueues }, refs),
    readiness: () => [
      { name: 'redis', check: async () => (await producerRedis.ping()) === 'PONG' },
      { name: 'workers', check: async () => sets.every((s) => s.running()) },
    ],
    close() {
      closing ??= (async () => {
        agents.close();
        await Promise.all(sets.map((s) => s.close()));
        await Promise.all([producerQueues.close(), workerQueues.close(), ...providers.map((p) => p.close())]);
        // Opened or still opening: closed once it is, so a half-open embedded database is not left behind.
        await historyStore?.then((h) => h.close()).catch(() => undefined);
        await rbm.close();
        await Promise.all([producerRedis.quit(), workerRedis.quit()]);
      })();
      return closing;
    },
  };
}
