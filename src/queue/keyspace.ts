/**
 * The partitioned keyspace (#12): the service's per-message keys live in
 * lanes. A lane is a whole copy of the per-message layout (status records,
 * tombstones, failures and settled indexes, metrics, the callback, history
 * and intake streams, webhook dedupe and event-ID keys, and the BullMQ
 * outbound and inbound queues) under its own prefix, which in cluster mode is
 * a hash tag: every atomic step of one message stays in one slot, and lanes
 * on different shards share the load.
 *
 * Each agent is on one lane, fixed when the directory first records it (the
 * `lane` of its record; a record without one, written before lanes, is on lane
 * 0). Lane 0's prefix is QUEUE_PREFIX itself, so the layout of one lane is the
 * layout from before lanes: a deployment with KEYSPACE_LANES=1 (the default on
 * one node) reads its old keys as they are, and a cluster given more lanes
 * keeps its old agents on lane 0 while new agents spread.
 *
 * Why lanes rather than one tag per agent: readers that merge every lane
 * (metrics, failures, the stream consumers, the evictor) cost O(lanes), a
 * constant, not O(agents): 1,000 agents do not mean 1,000 streams to block on.
 *
 * Global keys (the agent directory, dispatch leases, the SMS and callback
 * queues, callback receivers and URLs, the consumer-facing inbound stream)
 * stay under QUEUE_PREFIX.
 */
import clusterKeySlot from 'cluster-key-slot';
import type { ChainableCommander, Redis } from 'ioredis';
import { ConfigError } from '../errors.ts';

export const MAX_LANES = 256;
const SLOTS = 16384;

/** Lane prefixes of a layout: lane 0 is the prefix itself; lane n of `{rbm}` is `{rbm:Ln.s}`, its slot in the nth share of the slots. */
export function laneTags(prefix: string, count: number): string[] {
  const tags = [prefix];
  const braced = /^\{(.+)\}$/.exec(prefix);
  for (let lane = 1; lane < count; lane++) {
    if (!braced) {
      tags.push(`${prefix}:L${lane}`);
      continue;
    }
    // A salt makes the tag's slot fall in this lane's share, so lanes cover the shards evenly, whatever the split.
    const from = Math.floor((lane * SLOTS) / count);
    const to = Math.floor(((lane + 1) * SLOTS) / count);
    // CRC16 is uniform: a share of 1/count of the slots takes ~count tries; the bound only guards the loop.
    let salt = 0;
    for (; salt < 1_000_000; salt++) {
      const slot = clusterKeySlot(`{${braced[1]}:L${lane}.${salt}}`);
      if (slot >= from && slot < to) break;
    }
    if (salt === 1_000_000) throw new Error(`no tag for lane ${lane} of ${count} under ${prefix}`);
    tags.push(`{${braced[1]}:L${lane}.${salt}}`);
  }
  return tags;
}

/** The hash slot of a key (CRC16 of its tag), as a cluster places it. */
export function slotOf(key: string): number {
  return clusterKeySlot(key);
}

/**
 * The lane for a new agent: on the node that carries the fewest agents, the
 * lane there with the fewest; ties go to the lowest lane. `agentsPerLane[n]`
 * counts the agents on lane n; `nodeOfLane[n]` names the node lane n is on
 * (all the same on one Redis node).
 */
export function pickLane(agentsPerLane: readonly number[], nodeOfLane: readonly string[]): number {
  const perNode = new Map<string, number>();
  agentsPerLane.forEach((n, lane) => {
    const name = nodeOfLane[lane] ?? '';
    perNode.set(name, (perNode.get(name) ?? 0) + n);
  });
  let node = '';
  let least = Number.POSITIVE_INFINITY;
  for (const [name, n] of perNode) {
    if (n < least) {
      least = n;
      node = name;
    }
  }
  let lane = 0;
  least = Number.POSITIVE_INFINITY;
  agentsPerLane.forEach((n, i) => {
    if ((nodeOfLane[i] ?? '') === node && n < least) {
      least = n;
      lane = i;
    }
  });
  return lane;
}

/** Where an agent's keys are: lane prefixes, and each agent's lane. */
export class Keyspace {
  readonly tags: readonly string[];

  constructor(
    /** QUEUE_PREFIX: lane 0, and the global keys. */
    readonly prefix: string,
    laneCount = 1,
    /** An agent's lane (its directory record's); undefined for an agent never recorded (lane 0). */
    private readonly laneOfAgent: (agentId: string) => number | undefined = () => undefined,
  ) {
    this.tags = laneTags(prefix, laneCount);
  }

  /** The number of lanes. */
  get count(): number {
    return this.tags.length;
  }

  /**
   * An agent's lane. One recorded beyond this process's lanes (another process runs with more
   * KEYSPACE_LANES) is refused, never guessed: its keys are elsewhere, and a guess would split its data.
   */
  laneOf(agentId: string): number {
    const lane = this.laneOfAgent(agentId) ?? 0;
    if (lane >= this.tags.length) throw lanesTooFew([{ agentId, lane }], this.tags.length);
    return lane;
  }

  /** The prefix of the agent's lane. */
  of(agentId: string): string {
    return this.tags[this.laneOf(agentId)]!;
  }

  /** Items grouped by the lane of their agent, in their order within each lane. */
  byLane<T extends { agentId: string }>(items: readonly T[]): Map<string, T[]> {
    const out = new Map<string, T[]>();
    for (const item of items) {
      const tag = this.of(item.agentId);
      const list = out.get(tag);
      if (list) list.push(item);
      else out.set(tag, [item]);
    }
    return out;
  }
}

/** The refusal when agents live on lanes this process does not have (KEYSPACE_LANES was lowered, or differs). */
export function lanesTooFew(agents: ReadonlyArray<{ agentId: string; lane: number }>, count: number): ConfigError {
  const needed = Math.max(...agents.map((a) => a.lane)) + 1;
  const named = `${agents
    .slice(0, 5)
    .map((a) => `'${a.agentId}' on lane ${a.lane}`)
    .join(', ')}${agents.length > 5 ? ', …' : ''}`;
  const why = 'lanes can be added, never taken away; every process needs the same value';
  return new ConfigError([{ path: 'KEYSPACE_LANES', problem: `expected at least ${needed} (${named}: ${why}), got ${count}` }]);
}

/** What a component takes: a Keyspace, or one prefix (a single lane, as tests and the library build it). */
export type KeyspaceLike = Keyspace | string;

export function keyspaceOf(k: KeyspaceLike): Keyspace {
  return typeof k === 'string' ? new Keyspace(k) : k;
}

/**
 * Pipelines commands about many items whose keys are on different lanes:
 * one pipeline per lane (a cluster pipeline cannot span nodes), sent
 * together. `add` queues an item's commands (any number); the replies come
 * back per item, in item order.
 */
export async function pipelinedByLane<T>(
  redis: Redis,
  items: readonly T[],
  tagOf: (item: T) => string,
  add: (pipeline: ChainableCommander, item: T) => void,
): Promise<Array<Array<[Error | null, unknown]>>> {
  const groups = new Map<string, number[]>();
  items.forEach((item, i) => {
    const tag = tagOf(item);
    const list = groups.get(tag);
    if (list) list.push(i);
    else groups.set(tag, [i]);
  });
  const out: Array<Array<[Error | null, unknown]>> = items.map(() => []);
  await Promise.all(
    [...groups.values()].map(async (indexes) => {
      const pipeline = redis.pipeline();
      const sizes = indexes.map((i) => {
        const before = pipeline.length;
        add(pipeline, items[i]!);
        return pipeline.length - before;
      });
      const replies = sizes.some((n) => n > 0) ? ((await pipeline.exec()) ?? []) : [];
      let at = 0;
      indexes.forEach((i, j) => {
        out[i] = replies.slice(at, at + sizes[j]!) as Array<[Error | null, unknown]>;
        at += sizes[j]!;
      });
    }),
  );
  return out;
}

/** The node each lane is on now: a cluster's master of the lane's slot; one name for all on a single node. */
export function laneNodes(redis: Redis, tags: readonly string[]): string[] {
  const slots = (redis as unknown as { slots?: string[][] }).slots;
  if (!Array.isArray(slots)) return tags.map(() => '');
  return tags.map((tag) => slots[slotOf(tag)]?.[0] ?? '');
}
