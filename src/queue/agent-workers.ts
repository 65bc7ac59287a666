/**
 * The dispatch workers of a process, one per agent, kept in step with the
 * agent directory (src/agents/live.ts) while the process runs:
 *   added         its worker starts
 *   rate changed  a worker with the new rate starts, the old one finishes its jobs in hand and stops
 *   removed       queued=drain: the worker sends what is queued; queued=fail: a failing worker takes
 *                 its place (fail-queued.ts) and fails each queued message with AGENT_REMOVED
 *                 Either stops once the queue is empty and the removal is old enough that every
 *                 producer has heard of it (a message one took just before is not stranded).
 * A process started after a removal does the same for the removed agents whose queue still holds jobs.
 * With several dispatch processes, each serves only the agents assigned to it (src/agents/assignment.ts),
 * and follows the assignment as processes come and go.
 */
import type { Queue } from 'bullmq';
import type { AgentsListener, LiveAgents } from '../agents/live.ts';
import type { AgentRecord } from '../agents/record.ts';
import type { Logger } from '../handlers/types.ts';
import { throttled } from '../log-throttle.ts';
import type { QueueWorker } from './runner.ts';

/** How often a removed agent's queue is checked for emptiness. */
const DRAIN_CHECK_MS = 1000;
/** A removed agent's worker stops no sooner than this after the removal: every producer has seen it (LiveAgents polls every 250 ms). */
const REMOVAL_SETTLES_MS = 5000;

export interface AgentWorkersDeps {
  agents: Pick<LiveAgents, 'all' | 'onChange'>;
  /** Starts the worker of one agent at its rate. */
  start(agent: AgentRecord): QueueWorker;
  /** Starts a worker that fails a removed agent's queued jobs (fail-queued.ts). */
  startFailing(agentId: string): QueueWorker;
  queueOf(agentId: string): Queue;
  /** The agents this process serves among these (membership.ts, assignment.ts); null: all of them. Absent: all. */
  assigned?: (agentIds: readonly string[]) => ReadonlySet<string> | null;
  log: Logger;
  now?: () => number;
}

type Mode = 'send' | 'fail';

/** A worker not running this long after its start failed to start (its rate limit could not be set): readiness says so. */
const START_WITHIN_MS = 30_000;

interface Running {
  worker: QueueWorker;
  mode: Mode;
  ratePerSec: number;
  startedAt: number;
  /** Set while the agent is removed: the check that stops the worker once the queue is empty. */
  drain?: NodeJS.Timeout;
}

export class AgentWorkers {
  private readonly running = new Map<string, Running>();
  /** Workers being replaced or stopped: awaited by close(). */
  private readonly stopping = new Set<Promise<void>>();
  /** Removed agents not served here whose queue was checked for jobs left (once each while assigned). */
  private readonly checked = new Set<string>();
  private readonly unsubscribe: () => void;
  private readonly now: () => number;
  private closed = false;

  constructor(private readonly deps: AgentWorkersDeps) {
    this.now = deps.now ?? Date.now;
    const listener: AgentsListener = (next) => this.reconcile([...next.values()]);
    this.unsubscribe = deps.agents.onChange(listener);
    this.reconcile(deps.agents.all());
  }

  /** Reconciles again: the agents assigned to this process changed (a dispatcher came or went). */
  refresh(): void {
    this.reconcile(this.deps.agents.all());
  }

  /** The workers running now. */
  workers(): QueueWorker[] {
    return [...this.running.values()].map((r) => r.worker);
  }

  /**
   * Every worker runs, or is still starting (an agent added a moment ago sets its rate limit first):
   * readiness does not flap each time an agent is added or taken over.
   */
  healthy(): boolean {
    const now = this.now();
    return [...this.running.values()].every((r) => r.worker.worker.isRunning() || now - r.startedAt < START_WITHIN_MS);
  }

  /** Agents served now (removed ones still draining included). */
  agentIds(): string[] {
    return [...this.running.keys()];
  }

  async close(): Promise<void> {
    this.closed = true;
    this.unsubscribe();
    for (const r of this.running.values()) if (r.drain) clearInterval(r.drain);
    const workers = [...this.running.values()].map((r) => r.worker.close());
    this.running.clear();
    await Promise.all([...workers, ...this.stopping]);
  }

  private reconcile(all: readonly AgentRecord[]): void {
    if (this.closed) return;
    const assigned = this.deps.assigned?.(all.map((r) => r.agentId)) ?? null;
    const records = assigned ? all.filter((r) => assigned.has(r.agentId)) : all;
    for (const id of [...this.checked]) if (assigned && !assigned.has(id)) this.checked.delete(id);
    const seen = new Set<string>();
    for (const agent of records) {
      seen.add(agent.agentId);
      try {
        this.reconcileOne(agent);
      } catch (err) {
        // One agent this process cannot serve (its lane beyond KEYSPACE_LANES here) does not stop the others.
        throttled(this.deps.log).error('cannot serve an agent', err as Error, agent.agentId);
      }
    }
    // An agent no longer ours (another process took it), or a record that vanished: its worker stops.
    for (const agentId of [...this.running.keys()]) if (!seen.has(agentId)) this.stop(agentId);
  }

  private reconcileOne(agent: AgentRecord): void {
    const current = this.running.get(agent.agentId);
    if (!agent.removed) {
      this.checked.delete(agent.agentId);
      if (current?.drain) clearInterval(current.drain);
      if (!current || current.mode !== 'send' || current.ratePerSec !== agent.ratePerSec) this.begin(agent, 'send', current);
      else delete current.drain;
      return;
    }
    const mode: Mode = agent.removed.queued === 'fail' ? 'fail' : 'send';
    if (current) {
      if (current.mode !== mode) this.begin(agent, mode, current);
      const running = this.running.get(agent.agentId)!;
      running.drain ??= this.watchDrain(agent);
    } else if (!this.checked.has(agent.agentId)) {
      // Newly ours (at start, or taken over): jobs a removed agent left get a worker until its queue is empty.
      this.checked.add(agent.agentId);
      void this.drainIfQueued(agent, mode);
    }
  }

  /** Starts the agent's worker in `mode`; a worker it replaces finishes its jobs in hand and stops. */
  private begin(agent: AgentRecord, mode: Mode, replaced?: Running): Running {
    const worker = mode === 'send' ? this.deps.start(agent) : this.deps.startFailing(agent.agentId);
    const running: Running = { worker, mode, ratePerSec: agent.ratePerSec, startedAt: this.now() };
    this.running.set(agent.agentId, running);
    if (replaced) {
      if (replaced.drain) clearInterval(replaced.drain);
      this.track(replaced.worker.close());
    }
    return running;
  }

  private stop(agentId: string): void {
    const current = this.running.get(agentId);
    if (!current) return;
    if (current.drain) clearInterval(current.drain);
    this.running.delete(agentId);
    this.track(current.worker.close());
  }

  private track(closing: Promise<void>): void {
    this.stopping.add(closing);
    void closing.finally(() => this.stopping.delete(closing));
  }

  private watchDrain(agent: AgentRecord): NodeJS.Timeout {
    const { agentId } = agent;
    const timer = setInterval(() => {
      if (this.now() - (agent.removed?.at ?? 0) < REMOVAL_SETTLES_MS) return;
      void this.isEmpty(agentId)
        .then((empty) => {
          if (!empty || this.running.get(agentId)?.drain !== timer) return;
          this.deps.log.info({ agentId }, 'removed agent: its queue is empty, its worker stops');
          this.stop(agentId);
        })
        .catch((err: Error) => throttled(this.deps.log).warn('could not check a removed agent queue', err, agentId));
    }, DRAIN_CHECK_MS);
    timer.unref();
    return timer;
  }

  /** A removed agent newly ours whose queue still holds jobs gets a worker until it is empty. */
  private async drainIfQueued(agent: AgentRecord, mode: Mode): Promise<void> {
    try {
      if (this.closed || (await this.isEmpty(agent.agentId)) || this.running.has(agent.agentId)) return;
      const running = this.begin(agent, mode);
      running.drain = this.watchDrain(agent);
    } catch (err) {
      throttled(this.deps.log).warn('could not check a removed agent queue', err as Error, agent.agentId);
    }
  }

  private async isEmpty(agentId: string): Promise<boolean> {
    const counts = await this.deps.queueOf(agentId).getJobCounts('wait', 'prioritized', 'delayed', 'active');
    return Object.values(counts).every((n) => n === 0);
  }
}
