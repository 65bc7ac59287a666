/**
 * AgentWorkers (src/queue/agent-workers.ts) over fakes: which workers a
 * dispatch process runs as the directory and its assignment change. No Redis.
 */
import type { Queue } from 'bullmq';
import { describe, expect, it } from 'vitest';
import type { AgentsListener } from '../src/agents/live.ts';
import type { AgentRecord } from '../src/agents/record.ts';
import { AgentWorkers } from '../src/queue/agent-workers.ts';
import type { QueueWorker } from '../src/queue/runner.ts';

const record = (agentId: string, ratePerSec = 10, removed?: AgentRecord['removed']): AgentRecord => ({
  agentId,
  ratePerSec,
  partitions: 1,
  createdAt: 0,
  updatedAt: 0,
  ...(removed ? { removed } : {}),
});

function fixture(initial: AgentRecord[], assigned?: (ids: readonly string[]) => ReadonlySet<string> | null) {
  let records = initial;
  let listener: AgentsListener | undefined;
  let now = 1_000_000;
  const started: Array<{ agentId: string; mode: 'send' | 'fail'; rate: number; closed: boolean; running: boolean }> = [];
  const fake = (agentId: string, mode: 'send' | 'fail', rate: number): QueueWorker => {
    const entry = { agentId, mode, rate, closed: false, running: false };
    started.push(entry);
    return {
      worker: { isRunning: () => entry.running, name: agentId } as never,
      close: async () => {
        entry.closed = true;
      },
    };
  };
  const workers = new AgentWorkers({
    agents: {
      all: () => records,
      onChange: (l) => {
        listener = l;
        return () => (listener = undefined);
      },
    },
    start: (a) => fake(a.agentId, 'send', a.ratePerSec),
    startFailing: (id) => fake(id, 'fail', 0),
    queueOf: () => ({ getJobCounts: async () => ({ wait: 0 }) }) as unknown as Queue,
    ...(assigned ? { assigned } : {}),
    log: { info() {}, warn() {}, error() {}, debug() {} } as never,
    now: () => now,
  });
  const change = (next: AgentRecord[]) => {
    records = next;
    listener?.(new Map(next.map((r) => [r.agentId, r])), new Map());
  };
  return { workers, started, change, advance: (ms: number) => (now += ms) };
}

describe('AgentWorkers', () => {
  it('starts a worker per agent, replaces one whose rate changed, and stops one whose record vanished', () => {
    const f = fixture([record('a'), record('b')]);
    expect(f.workers.agentIds().sort()).toEqual(['a', 'b']);
    f.change([record('a', 20), record('b')]);
    expect(f.started.filter((s) => s.agentId === 'a').map((s) => [s.rate, s.closed])).toEqual([
      [10, true],
      [20, false],
    ]);
    f.change([record('a', 20)]);
    expect(f.workers.agentIds()).toEqual(['a']);
    expect(f.started.find((s) => s.agentId === 'b')!.closed).toBe(true);
  });

  it('a removal with queued=fail puts a failing worker in the sending one place; adding it back sends again', () => {
    const f = fixture([record('a')]);
    f.change([record('a', 10, { at: 1, queued: 'fail' })]);
    expect(f.started.map((s) => [s.mode, s.closed])).toEqual([
      ['send', true],
      ['fail', false],
    ]);
    f.change([record('a')]);
    expect(f.started.at(-1)).toMatchObject({ mode: 'send', closed: false });
    expect(f.started[1]!.closed).toBe(true);
  });

  it('serves only the agents assigned to this process, and follows a new assignment on refresh', () => {
    let mine = new Set(['a']);
    const f = fixture([record('a'), record('b'), record('c')], () => mine);
    expect(f.workers.agentIds()).toEqual(['a']);
    mine = new Set(['b', 'c']);
    f.workers.refresh();
    expect(f.workers.agentIds().sort()).toEqual(['b', 'c']);
    expect(f.started.find((s) => s.agentId === 'a')!.closed).toBe(true);
  });

  it('is healthy while a worker starts, and not once it has failed to start for 30 s', () => {
    const f = fixture([record('a')]);
    expect(f.workers.healthy()).toBe(true);
    f.advance(31_000);
    expect(f.workers.healthy()).toBe(false);
    f.started[0]!.running = true;
    expect(f.workers.healthy()).toBe(true);
  });
});
