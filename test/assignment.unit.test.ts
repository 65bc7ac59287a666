/**
 * The assignment of agents to dispatch processes (src/agents/assignment.ts):
 * every agent served by `replicas` processes, spread evenly, caps honoured,
 * and a process that joins or leaves moves only its own share.
 */
import { describe, expect, it } from 'vitest';
import { assignAgents } from '../src/agents/assignment.ts';

const agents = Array.from({ length: 1000 }, (_, i) => `agent-${i}`);
const procs = (n: number, maxAgents = 0) => Array.from({ length: n }, (_, i) => ({ id: `proc-${i}`, maxAgents }));
const servers = (m: Map<string, Set<string>>, agent: string) => [...m].filter(([, s]) => s.has(agent)).map(([id]) => id);

describe('assignAgents', () => {
  it('serves every agent by two processes, spread within 10 % of even', () => {
    const m = assignAgents(agents, procs(5), 2);
    for (const a of agents) expect(servers(m, a)).toHaveLength(2);
    for (const set of m.values()) expect(Math.abs(set.size - 400)).toBeLessThan(40);
  });

  it('is the same in every process: the input order does not matter', () => {
    const one = assignAgents(agents, procs(4), 2);
    const other = assignAgents([...agents].reverse(), [...procs(4)].reverse(), 2);
    for (const [id, set] of one) expect([...other.get(id)!].sort()).toEqual([...set].sort());
  });

  it('a process that joins takes only its own share; one that leaves gives only its own', () => {
    const before = assignAgents(agents, procs(4), 2);
    const after = assignAgents(agents, procs(5), 2);
    // Each agent keeps at least one of its servers; those that changed now have the new process.
    for (const a of agents) {
      const was = servers(before, a);
      const now = servers(after, a);
      if (was.join() !== now.join()) expect(now).toContain('proc-4');
      expect(now.filter((p) => was.includes(p)).length).toBeGreaterThanOrEqual(1);
    }
    const left = assignAgents(agents, procs(4).slice(1), 2);
    for (const a of agents) if (!servers(before, a).includes('proc-0')) expect(servers(left, a).sort()).toEqual(servers(before, a).sort());
  });

  it('honours DISPATCH_MAX_AGENTS: a capped process serves at most its cap, the rest go elsewhere', () => {
    const m = assignAgents(agents, [...procs(2, 300), { id: 'big', maxAgents: 0 }], 2);
    expect(m.get('proc-0')!.size).toBeLessThanOrEqual(300);
    expect(m.get('proc-1')!.size).toBeLessThanOrEqual(300);
    for (const a of agents) expect(servers(m, a).length).toBeGreaterThanOrEqual(1);
    // More replicas than processes: each agent by every process there is.
    const lone = assignAgents(agents.slice(0, 10), procs(1), 2);
    expect(lone.get('proc-0')!.size).toBe(10);
  });
});
