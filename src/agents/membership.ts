/**
 * The live dispatch processes, and the agents each serves (assignment.ts).
 *
 * Each dispatch set holds a lease on its membership: a member of the sorted
 * set `<prefix>:dispatchers` (`<cap>|<id>`) scored with the time its lease
 * ends, renewed every HEARTBEAT_MS for LEASE_MS. A process that dies stops
 * renewing; once its lease has ended the others drop it at their next beat
 * and take its agents over: within LEASE_MS + HEARTBEAT_MS (6 s) of its last
 * beat, and under the 10 s an agent may go unserved. A process that stops
 * cleanly gives its lease back at once. Each beat then writes what the
 * process serves (after following any change it saw) and how many Redis
 * connections it holds (`<prefix>:dispatchers:stats`), which /metrics reports.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Redis } from 'ioredis';
import type { Logger } from '../handlers/types.ts';
import { throttled } from '../log-throttle.ts';
import type { Dispatcher } from './assignment.ts';

/** A beat a second, a lease of five: a process stalled under 4 s keeps its agents, a dead one loses them within 6 s. */
export const HEARTBEAT_MS = 1000;
export const LEASE_MS = 5000;

export function dispatchersKey(prefix: string): string {
  return `${prefix}:dispatchers`;
}

export function dispatcherStatsKey(prefix: string): string {
  return `${prefix}:dispatchers:stats`;
}

export interface DispatcherStats {
  /** Agents it serves now. */
  agents: number;
  /** Of those, the ones whose worker is running (past its start: rate limit set, fetching). */
  running: number;
  /** Redis connections the process holds (ConnectionCount). */
  connections: number;
  at: number;
}

export interface MembershipOptions {
  /** DISPATCH_MAX_AGENTS; 0: no cap. */
  maxAgents: number;
  log: Logger;
  stats: () => Omit<DispatcherStats, 'at'>;
  now?: () => number;
  heartbeatMs?: number;
  leaseMs?: number;
}

export class DispatchMembership {
  readonly id = `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
  private readonly key: string;
  private readonly statsKey: string;
  private readonly member: string;
  private readonly now: () => number;
  private members: readonly Dispatcher[] | undefined;
  private readonly listeners = new Set<(members: readonly Dispatcher[]) => void>();
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly redis: Redis,
    prefix: string,
    private readonly opts: MembershipOptions,
  ) {
    this.key = dispatchersKey(prefix);
    this.statsKey = dispatcherStatsKey(prefix);
    this.member = `${opts.maxAgents}|${this.id}`;
    this.now = opts.now ?? Date.now;
  }

  /** Takes the lease now and renews it every heartbeat. */
  start(): void {
    const beat = () =>
      void this.beat().catch((err: Error) => throttled(this.opts.log).warn('dispatch lease not renewed', err, 'dispatchers'));
    beat();
    this.timer = setInterval(beat, this.opts.heartbeatMs ?? HEARTBEAT_MS);
    this.timer.unref();
  }

  /** The live dispatchers as of the last beat; undefined before the first. */
  current(): readonly Dispatcher[] | undefined {
    return this.members;
  }

  /** Called after every beat whose member list differs from the last. */
  onChange(listener: (members: readonly Dispatcher[]) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Gives the lease back: the others take its agents at their next beat. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.listeners.clear();
    await Promise.all([this.redis.zrem(this.key, this.member), this.redis.hdel(this.statsKey, this.id)]).catch(() => undefined);
  }

  private async beat(): Promise<void> {
    if (this.closed) return;
    const now = this.now();
    const [, ended, , live] = await Promise.all([
      this.redis.zadd(this.key, now + (this.opts.leaseMs ?? LEASE_MS), this.member),
      this.redis.zrangebyscore(this.key, '-inf', now),
      this.redis.zremrangebyscore(this.key, '-inf', now),
      this.redis.zrangebyscore(this.key, now, '+inf'),
    ]);
    if (ended.length > 0) {
      const ids = ended.map((m) => parseMember(m).id);
      await this.redis.hdel(this.statsKey, ...ids);
      this.opts.log.warn({ dispatchers: ids }, 'dispatch processes whose lease ended: their agents are taken over');
    }
    if (this.closed) return;
    const members = live.map(parseMember).sort((a, b) => (a.id < b.id ? -1 : 1));
    const before = this.members;
    this.members = members;
    const same = before && before.length === members.length && before.every((m, i) => m.id === members[i]!.id);
    if (!same) for (const listener of this.listeners) listener(members);
    // After the listeners: the stats say what the process serves once it followed the change.
    const stats: DispatcherStats = { ...this.opts.stats(), at: this.now() };
    await this.redis.hset(this.statsKey, this.id, JSON.stringify(stats));
  }
}

function parseMember(member: string): Dispatcher {
  const bar = member.indexOf('|');
  return { maxAgents: Number(member.slice(0, bar)) || 0, id: member.slice(bar + 1) };
}

/** Every dispatcher's stats as last written (a dead one's until its lease is seen to end). */
export async function readDispatcherStats(redis: Redis, prefix: string): Promise<Array<DispatcherStats & { id: string }>> {
  const all = await redis.hgetall(dispatcherStatsKey(prefix));
  return Object.entries(all).flatMap(([id, json]) => {
    try {
      return [{ id, ...(JSON.parse(json) as DispatcherStats) }];
    } catch {
      return [];
    }
  });
}
