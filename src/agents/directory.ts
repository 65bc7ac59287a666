/**
 * The agent directory: every agent the service knows, in one Redis hash
 * (`<prefix>:agents`, agentId → record JSON, and `#version`, bumped by every
 * write). The admin API and the CLI write it; RBM_AGENTS seeds it; every
 * process reads it through LiveAgents (live.ts), which polls the version.
 *
 * A write is a compare-and-set on the record as read (lua/agents-put.lua):
 * two admins changing one agent at once cannot lose either change, and a
 * writer that keeps losing gives up with AGENT_WRITE_CONFLICT.
 * A removed agent keeps its record (marked `removed`): its history, its
 * messages still draining and RBM's late webhooks keep their agent, and
 * adding it again brings it back with its createdAt.
 */
import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import { AgentDirectoryError, ErrorCodes } from '../errors.ts';
import { pickLane } from '../queue/keyspace.ts';
import { changed, newRecord, parseStored, type AgentChange, type AgentRecord, type AgentToAdd, type QueuedOnRemove } from './record.ts';

const PUT = readFileSync(new URL('./lua/agents-put.lua', import.meta.url), 'utf8');
export const VERSION_FIELD = '#version';
/** Tries of one write against other writers before AGENT_WRITE_CONFLICT. */
const WRITE_TRIES = 5;

type PutRedis = Redis & { rbmAgentsPut(key: string, agentId: string, expected: string, next: string): Promise<number> };

export function agentsKey(prefix: string): string {
  return `${prefix}:agents`;
}

/** How a new agent's lane is chosen (src/queue/keyspace.ts): how many lanes there are and which node holds each. */
export interface LanePlacement {
  count: number;
  /** The node of each lane, by lane (one name for all on a single Redis). */
  nodes(): Promise<readonly string[]> | readonly string[];
}

const ONE_LANE: LanePlacement = { count: 1, nodes: () => [''] };

export interface DirectoryRead {
  version: number;
  records: AgentRecord[];
}

export class AgentDirectory {
  private readonly redis: PutRedis;
  readonly key: string;

  constructor(
    redis: Redis,
    prefix: string,
    private readonly now: () => number = Date.now,
    private readonly lanes: LanePlacement = ONE_LANE,
  ) {
    if (!('rbmAgentsPut' in redis)) redis.defineCommand('rbmAgentsPut', { numberOfKeys: 1, lua: PUT });
    this.redis = redis as PutRedis;
    this.key = agentsKey(prefix);
  }

  /** The version every write bumps: 0 before the first. */
  async version(): Promise<number> {
    return Number((await this.redis.hget(this.key, VERSION_FIELD)) ?? 0);
  }

  /** Every record (removed ones too), by agent ID; a field that does not parse is skipped. */
  async read(): Promise<DirectoryRead> {
    const all = await this.redis.hgetall(this.key);
    const records: AgentRecord[] = [];
    for (const [field, json] of Object.entries(all)) {
      if (field === VERSION_FIELD) continue;
      const record = parseStored(field, json);
      if (record) records.push(record);
    }
    records.sort((a, b) => (a.agentId < b.agentId ? -1 : a.agentId > b.agentId ? 1 : 0));
    return { version: Number(all[VERSION_FIELD] ?? 0), records };
  }

  async get(agentId: string): Promise<AgentRecord | undefined> {
    const json = await this.redis.hget(this.key, agentId);
    return json === null ? undefined : parseStored(agentId, json);
  }

  /** Adds an agent, or brings a removed one back; AGENT_EXISTS when it is there and not removed. */
  async add(input: AgentToAdd): Promise<AgentRecord> {
    const [lane] = await this.placeNew(1);
    const added = await this.write(input.agentId, (current) => {
      if (current && !current.removed) {
        throw new AgentDirectoryError(ErrorCodes.AGENT_EXISTS, input.agentId, `agent '${input.agentId}' exists: change it instead`);
      }
      return newRecord(input, this.now(), current, lane);
    });
    return added!;
  }

  /**
   * Lanes for `n` new agents, each placed as if the ones before it were there (keyspace.ts pickLane):
   * agents spread evenly over the nodes, then over the lanes of each. Two adds at once may pick the same
   * lane; that costs some evenness, never correctness (a lane is a place, not a lock).
   */
  async placeNew(n: number, known?: readonly AgentRecord[]): Promise<number[]> {
    if (this.lanes.count <= 1) return Array.from({ length: n }, () => 0);
    const [records, nodes] = await Promise.all([known ?? this.read().then((r) => r.records), this.lanes.nodes()]);
    const perLane = Array.from({ length: this.lanes.count }, () => 0);
    for (const r of records) if (!r.removed && (r.lane ?? 0) < perLane.length) perLane[r.lane ?? 0]!++;
    const out: number[] = [];
    for (let i = 0; i < n; i++) {
      const lane = pickLane(perLane, nodes);
      perLane[lane]!++;
      out.push(lane);
    }
    return out;
  }

  /** Changes an agent; undefined when there is none (or it was removed). */
  change(agentId: string, change: AgentChange): Promise<AgentRecord | undefined> {
    return this.write(agentId, (current) => (current && !current.removed ? changed(current, change, this.now()) : undefined));
  }

  /** Removes an agent (its record stays, marked); undefined when there is none. Removing a removed one changes only `queued`. */
  remove(agentId: string, queued: QueuedOnRemove): Promise<AgentRecord | undefined> {
    return this.write(agentId, (current) => {
      if (!current) return undefined;
      const now = this.now();
      return { ...current, removed: { at: current.removed?.at ?? now, queued }, updatedAt: now };
    });
  }

  /**
   * RBM_AGENTS at start: each agent the directory has never held is added; one it holds
   * (changed or removed through the admin API) is left as it is. Returns the IDs added.
   */
  async seed(agents: readonly { agentId: string; ratePerSec: number }[]): Promise<string[]> {
    const now = this.now();
    const { records } = await this.read();
    const held = new Set(records.map((r) => r.agentId));
    const fresh = agents.filter((a) => !held.has(a.agentId));
    const lanes = await this.placeNew(fresh.length, records);
    return this.restore(fresh.map((a, i) => newRecord({ ...a }, now, undefined, lanes[i])));
  }

  /** Writes each record where the directory holds none; returns the IDs written. */
  async restore(records: readonly AgentRecord[]): Promise<string[]> {
    const written = await Promise.all(records.map((r) => this.redis.rbmAgentsPut(this.key, r.agentId, '', JSON.stringify(r))));
    return records.filter((_, i) => written[i] === 1).map((r) => r.agentId);
  }

  /** Writes what `next` makes of the record as read; `next` answering undefined writes nothing (no such agent). */
  private async write(
    agentId: string,
    next: (current: AgentRecord | undefined) => AgentRecord | undefined,
  ): Promise<AgentRecord | undefined> {
    for (let i = 0; i < WRITE_TRIES; i++) {
      const json = await this.redis.hget(this.key, agentId);
      const record = next(json === null ? undefined : parseStored(agentId, json));
      if (record === undefined) return undefined;
      if ((await this.redis.rbmAgentsPut(this.key, agentId, json ?? '', JSON.stringify(record))) === 1) return record;
    }
    throw new AgentDirectoryError(
      ErrorCodes.AGENT_WRITE_CONFLICT,
      agentId,
      `agent '${agentId}' changed under this call ${WRITE_TRIES} times in a row: read it again and retry`,
    );
  }
}
