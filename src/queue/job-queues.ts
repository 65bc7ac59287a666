/**
 * The queue registry: every BullMQ Queue of one connection, built once from
 * the job registry (jobs/index.ts), and the typed way to add, find and remove
 * jobs. A job's queue, ID and options come from its contract and the
 * options table (job-options.ts), so a caller names the job and gives its
 * payload, nothing else. One registry per connection role: the producer's
 * fails fast (an API caller gets a 503), the workers' waits out a blip.
 */
import type { Job, JobsOptions, Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { contracts, queueName, type JobKeys, type JobName, type JobPayloads, type QueueKind } from '../../jobs/index.ts';
import type { JobOptionsTable } from './job-options.ts';
import { type Keyspace, type KeyspaceLike, keyspaceOf } from './keyspace.ts';
import { settlesWithin } from './settles-within.ts';
import { sharedQueue } from './shared-queue.ts';

const CLOSE_WITHIN_MS = 3000;
/** The queue kinds that live on their agent's lane. */
const LANED: ReadonlySet<QueueKind> = new Set(['outbound', 'inbound']);

/** What a caller may add to a job's options: when it runs, its turn, and BullMQ's deduplication. */
export type AddOptions = Pick<JobsOptions, 'delay' | 'priority' | 'deduplication'> & {
  /** Fewer tries than the job's default (an inbound event whose first try was the stream's). */
  attempts?: number;
};

export interface JobToAdd<N extends JobName> {
  payload: JobPayloads[N];
  opts?: AddOptions | undefined;
}

export class JobQueues {
  private readonly queues = new Map<string, Queue>();
  /** QUEUE_PREFIX: the SMS and callback queues, and lane 0. */
  readonly prefix: string;
  /** Where each agent's queues are: its outbound queue, and the inbound queue of its lane (keyspace.ts). */
  readonly keyspace: Keyspace;

  constructor(
    /** The workers' registry has a blocking one (maxRetriesPerRequest: null), which their BullMQ Workers duplicate. */
    readonly connection: Redis,
    prefix: KeyspaceLike,
    private readonly options: JobOptionsTable,
  ) {
    this.keyspace = keyspaceOf(prefix);
    this.prefix = this.keyspace.prefix;
  }

  /**
   * The BullMQ queue of a kind (an outbound one is its agent's): for the runner, metrics and bull-board.
   * The outbound and inbound queues of an agent are on its lane (its deadlines and retried events beside
   * its records); `lane` names a lane's inbound queue (its worker); the SMS and callback queues are global.
   */
  queue(kind: QueueKind, agentId?: string, lane?: string): Queue {
    const name = queueName(kind, agentId);
    const prefix = lane ?? (LANED.has(kind) && agentId !== undefined ? this.keyspace.of(agentId) : this.prefix);
    const id = `${prefix}|${name}`;
    let queue = this.queues.get(id);
    if (!queue) {
      queue = sharedQueue(name, this.connection, prefix);
      this.queues.set(id, queue);
    }
    return queue;
  }

  add<N extends JobName>(name: N, payload: JobPayloads[N], opts?: AddOptions): Promise<void> {
    return this.addMany(name, [{ payload, opts }]);
  }

  /** Adds jobs of one name, one round trip per queue; a job whose ID a queue still holds is not added twice. */
  async addMany<N extends JobName>(name: N, list: readonly JobToAdd<N>[]): Promise<void> {
    const byQueue = new Map<Queue, Array<{ name: N; data: JobPayloads[N]; opts: JobsOptions }>>();
    for (const { payload, opts } of list) {
      const queue = this.queueOf(name, keyOf<N>(payload));
      const jobs = byQueue.get(queue) ?? [];
      jobs.push({ name, data: payload, opts: this.jobOptions(name, payload, opts) });
      byQueue.set(queue, jobs);
    }
    await Promise.all([...byQueue].map(([queue, jobs]) => queue.addBulk(jobs)));
  }

  /** A job by what its ID is made of; undefined when its queue no longer holds it. */
  async find<N extends JobName>(name: N, key: JobKeys[N]): Promise<Job<JobPayloads[N]> | undefined> {
    const id = this.idOf(name, key);
    return (await this.queueOf(name, key).getJob(id)) as Job<JobPayloads[N]> | undefined;
  }

  /** Takes a job out of its queue: 'locked' when a worker holds it (it runs now), 'absent' when there is none. */
  async remove<N extends JobName>(name: N, key: JobKeys[N]): Promise<'removed' | 'locked' | 'absent'> {
    const queue = this.queueOf(name, key);
    const id = this.idOf(name, key);
    if (!(await queue.getJob(id))) return 'absent';
    return (await queue.remove(id)) === 1 ? 'removed' : 'locked';
  }

  /** Brings delayed jobs forward now; one no longer delayed (or gone) is skipped. */
  async promote<N extends JobName>(name: N, jobIds: readonly string[]): Promise<void> {
    const kind = contracts[name].queue;
    if (kind === 'outbound') throw new Error('promote: outbound jobs are promoted through their agent');
    const backend = this.queue(kind).getBackend();
    await Promise.all(jobIds.map((id) => backend.promote(id).catch(() => undefined)));
  }

  /** Closes every queue; one that does not close in time (a connection a Redis restart left reconnecting) is let go. */
  async close(): Promise<void> {
    await Promise.all([...this.queues.values()].map((q) => settlesWithin(q.close(), CLOSE_WITHIN_MS)));
    this.queues.clear();
  }

  private queueOf<N extends JobName>(name: N, key: JobKeys[N]): Queue {
    return this.queue(contracts[name].queue, (key as { agentId?: string }).agentId);
  }

  private idOf<N extends JobName>(name: N, key: JobKeys[N]): string {
    const id = contracts[name].jobId(key);
    if (id === undefined) throw new Error(`${name} jobs are numbered by BullMQ: they cannot be found by a key`);
    return id;
  }

  private jobOptions<N extends JobName>(name: N, payload: JobPayloads[N], opts: AddOptions = {}): JobsOptions {
    const defaults = this.options[name];
    const jobId = contracts[name].jobId(keyOf<N>(payload));
    return {
      ...(jobId !== undefined ? { jobId } : {}),
      attempts: opts.attempts ?? defaults.attempts,
      backoff: { ...defaults.backoff },
      ...(opts.priority ? { priority: opts.priority } : {}),
      ...(opts.delay !== undefined ? { delay: opts.delay } : {}),
      ...(opts.deduplication ? { deduplication: opts.deduplication } : {}),
    };
  }
}

/**
 * A payload holds what its job ID is made of: each contract's key is a Pick of
 * its payload (test/jobs.test-d.ts holds every contract to it), which the
 * compiler cannot see through the mapped types.
 */
function keyOf<N extends JobName>(payload: JobPayloads[N]): JobKeys[N] {
  return payload as unknown as JobKeys[N];
}
