/**
 * Which dispatch processes serve which agents: every process computes the
 * same answer from the same inputs (the agents, the live processes and their
 * caps), so no process hands agents out and none has to be asked.
 *
 * Rendezvous (highest random weight) hashing: each agent ranks every process
 * by a hash of the pair and is served by the first `replicas` that still have
 * room under their cap (DISPATCH_MAX_AGENTS). A process that joins or leaves
 * moves only the agents it ranks high for; the others stay where they are,
 * so a new process takes its share without the others restarting theirs.
 */

export interface Dispatcher {
  id: string;
  /** The most agents it serves; 0: no cap. */
  maxAgents: number;
}

/** 32-bit FNV-1a: fast, well spread over short strings, and the same in every process. */
function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  // A final mix (murmur3's), so pairs that differ in one character rank far apart.
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** The agents each dispatcher serves: each agent by up to `replicas` dispatchers, none over its cap. */
export function assignAgents(agentIds: readonly string[], dispatchers: readonly Dispatcher[], replicas: number): Map<string, Set<string>> {
  const served = new Map(dispatchers.map((d) => [d.id, new Set<string>()]));
  const byId = new Map(dispatchers.map((d) => [d.id, d]));
  // A fixed order, so caps fill the same way in every process.
  for (const agentId of [...agentIds].sort()) {
    const ranked = dispatchers
      .map((d) => ({ id: d.id, weight: fnv1a(`${agentId}\u0000${d.id}`) }))
      .sort((a, b) => b.weight - a.weight || (a.id < b.id ? -1 : 1));
    let taken = 0;
    for (const { id } of ranked) {
      if (taken === replicas) break;
      const set = served.get(id)!;
      const cap = byId.get(id)!.maxAgents;
      if (cap > 0 && set.size >= cap) continue;
      set.add(agentId);
      taken++;
    }
  }
  return served;
}
