/**
 * Redis Cluster beside one Redis node (#12), in the same run on the same
 * cores: dispatch throughput (the same messages drained on each), Redis CPU
 * time per message (INFO cpu over all masters, enqueue and send together; the
 * usec of INFO commandstats would count a script's commands twice, in
 * EVALSHA's time and in their own) with the calls per message from
 * commandstats, the spread of Redis calls over the cluster's masters with 30
 * agents, and Redis CPU while 1,000 agents sit idle.
 * The cluster is three local masters (src/queue/local-cluster.ts).
 */
import type { Cluster, Redis } from 'ioredis';
import { startLocalCluster } from '../../src/queue/local-cluster.ts';
import { benchService, deleteKeys, typicalMessage, type EmulatorProcess } from '../lib.ts';

export interface RedisCost {
  jobsPerSec: number;
  /** Redis CPU time (INFO cpu, all masters) per message, enqueue and send. */
  usPerMsg: number;
  /** Commands per message (INFO commandstats, a script's own commands included). */
  callsPerMsg: number;
}

export interface ClusterBenchResult {
  messages: number;
  single: RedisCost;
  cluster: RedisCost;
  /** cluster / single throughput, median of the rounds. */
  ratio: number;
  rounds: Array<{ single: number; cluster: number }>;
  spread: { agents: number; messages: number; callsPerMaster: number[]; maxDeviation: number };
  idle: { agents: number; seconds: number; singleCpuPct: number; clusterCpuPct: number };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

function mastersOf(redis: Redis): Redis[] {
  const cluster = redis as unknown as Partial<Cluster>;
  return typeof cluster.nodes === 'function' ? cluster.nodes('master') : [redis];
}

/** Calls over every command, per master. */
async function commandCalls(redis: Redis): Promise<number[]> {
  return Promise.all(
    mastersOf(redis).map(async (node) => {
      let calls = 0;
      for (const m of (await node.info('commandstats')).matchAll(/calls=(\d+)/g)) calls += Number(m[1]);
      return calls;
    }),
  );
}

async function cpuSeconds(redis: Redis): Promise<number> {
  let total = 0;
  for (const node of mastersOf(redis)) {
    const info = await node.info('cpu');
    total += Number(/used_cpu_sys:([\d.]+)/.exec(info)![1]) + Number(/used_cpu_user:([\d.]+)/.exec(info)![1]);
  }
  return total;
}

const resetStats = (redis: Redis) => Promise.all(mastersOf(redis).map((n) => n.config('RESETSTAT')));
/** Every key of a prefix: `{p}:*`, and its other lanes' `{p:L<n>.<salt>}:*` (src/queue/keyspace.ts). */
const dropAll = (redis: Redis, prefix: string) =>
  Promise.all(
    mastersOf(redis).map(async (n) => {
      await deleteKeys(n, `${prefix}:*`);
      if (prefix.startsWith('{')) await deleteKeys(n, `${prefix.slice(0, -1)}:L*`);
    }),
  );

/** Enqueues n messages over `agents` agents and drains them; throughput of the drain and Redis cost of both. */
async function drain(
  emu: EmulatorProcess,
  redisUrl: string,
  env: Record<string, string>,
  n: number,
  agents: number,
): Promise<RedisCost & { callsPerMaster: number[] }> {
  const agentIds = Array.from({ length: agents }, (_, i) => `bench-${i}`);
  const { service, close } = await benchService(emu, redisUrl, {
    ...env,
    RBM_AGENTS: agentIds.map((a) => `${a}:100000`).join(','),
    DISPATCH_CONCURRENCY: String(Math.max(8, Math.floor(200 / agents))),
  });
  const redis = service.redis.producer;
  await resetStats(redis);
  const cpuBefore = await cpuSeconds(redis);
  const messages = Array.from({ length: n }, (_, i) => ({ ...typicalMessage(i), agentId: agentIds[i % agents]! }));
  for (let i = 0; i < n; i += 1000) await service.producer.sendMessages(messages.slice(i, i + 1000));
  const start = Date.now();
  const d = service.startDispatch();
  let done = 0;
  await new Promise<void>((resolve) => {
    for (const { worker } of d.workers) {
      worker.on('completed', () => {
        if (++done === n) resolve();
      });
    }
  });
  const end = Date.now();
  const cpu = (await cpuSeconds(redis)) - cpuBefore;
  const perMaster = await commandCalls(redis);
  await dropAll(redis, service.config.queuePrefix);
  await close();
  const calls = perMaster.reduce((a, b) => a + b, 0);
  return { jobsPerSec: (n / (end - start)) * 1000, usPerMsg: (cpu * 1e6) / n, callsPerMsg: calls / n, callsPerMaster: perMaster };
}

/** Redis CPU (all masters) while `agents` agents are served by one dispatch process and nothing is sent. */
async function idleCpu(
  emu: EmulatorProcess,
  redisUrl: string,
  env: Record<string, string>,
  agents: number,
  seconds: number,
): Promise<number> {
  const agentIds = Array.from({ length: agents }, (_, i) => `idle-${i}`);
  const { service, close } = await benchService(emu, redisUrl, { ...env, RBM_AGENTS: agentIds.map((a) => `${a}:10`).join(',') });
  const d = service.startDispatch();
  await Promise.all(d.workers.map((w) => w.worker.waitUntilReady()));
  // Settled: every worker past its start-up (rate limits set, first blocking fetch out).
  await new Promise((r) => setTimeout(r, 5000));
  const redis = service.redis.producer;
  const before = await cpuSeconds(redis);
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const used = (await cpuSeconds(redis)) - before;
  await dropAll(redis, service.config.queuePrefix);
  await close();
  return (used / seconds) * 100;
}

export async function clusterBench(
  emu: EmulatorProcess,
  redisUrl: string,
  opts: { messages: number; rounds: number; idleAgents: number; idleSeconds: number },
): Promise<ClusterBenchResult> {
  const cluster = await startLocalCluster(3);
  const clusterEnv = { REDIS_CLUSTER_NODES: cluster.nodes.join(',') };
  try {
    const rounds: ClusterBenchResult['rounds'] = [];
    let single: RedisCost | undefined;
    let onCluster: RedisCost | undefined;
    for (let r = 0; r < opts.rounds; r++) {
      single = await drain(emu, redisUrl, { QUEUE_PREFIX: 'bench-cl-single' }, opts.messages, 1);
      onCluster = await drain(emu, redisUrl, { ...clusterEnv, QUEUE_PREFIX: '{bench-cl}' }, opts.messages, 1);
      rounds.push({ single: single.jobsPerSec, cluster: onCluster.jobsPerSec });
    }
    const spreadRun = await drain(emu, redisUrl, { ...clusterEnv, QUEUE_PREFIX: '{bench-spread}' }, opts.messages, 30);
    const mean = spreadRun.callsPerMaster.reduce((a, b) => a + b, 0) / spreadRun.callsPerMaster.length;
    const maxDeviation = Math.max(...spreadRun.callsPerMaster.map((c) => Math.abs(c - mean) / mean));
    const singleCpuPct = await idleCpu(emu, redisUrl, { QUEUE_PREFIX: 'bench-idle-single' }, opts.idleAgents, opts.idleSeconds);
    const clusterCpuPct = await idleCpu(emu, redisUrl, { ...clusterEnv, QUEUE_PREFIX: '{bench-idle}' }, opts.idleAgents, opts.idleSeconds);
    const pick = ({ jobsPerSec, usPerMsg, callsPerMsg }: RedisCost) => ({ jobsPerSec, usPerMsg, callsPerMsg });
    return {
      messages: opts.messages,
      single: { ...pick(single!), jobsPerSec: median(rounds.map((x) => x.single)) },
      cluster: { ...pick(onCluster!), jobsPerSec: median(rounds.map((x) => x.cluster)) },
      ratio: median(rounds.map((x) => x.cluster / x.single)),
      rounds,
      spread: { agents: 30, messages: opts.messages, callsPerMaster: spreadRun.callsPerMaster, maxDeviation },
      idle: { agents: opts.idleAgents, seconds: opts.idleSeconds, singleCpuPct, clusterCpuPct },
    };
  } finally {
    await cluster.stop();
  }
}
