/**
 * A thousand agents over several dispatch processes (#12 part 2), each a real
 * child process (workers/dispatch.ts) against one Redis and the emulator:
 * every agent is served by two processes, each process holds about one Redis
 * connection per agent it serves, a process that joins takes its share
 * without the others restarting, one killed with SIGKILL has its agents
 * served again by two within 10 s, and an agent added through the admin API
 * takes traffic within 2 s.
 */
import type { ChildProcess } from 'node:child_process';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assignAgents } from '../src/agents/assignment.ts';
import { dispatchersKey, readDispatcherStats } from '../src/agents/membership.ts';
import { startEmulator, type RunningEmulator } from '../src/emulator/index.ts';
import { dropKeys, processEnv, heavyTestLock, startProcess, httpCall, rcsPhone, redisUrl, uniquePrefix, waitFor } from './helpers.ts';

const AGENTS = 1000;
const prefix = uniquePrefix('leasing');
const children: ChildProcess[] = [];
let emulator: RunningEmulator | undefined;
const API_KEY = 'k-leasing-test-0123456789';
const redis = new Redis(redisUrl());

let releaseHeavy: (() => Promise<void>) | undefined;
beforeAll(async () => {
  releaseHeavy = await heavyTestLock();
});
afterAll(async () => {
  for (const c of children) c.kill('SIGKILL');
  await emulator?.close();
  await dropKeys(prefix);
  redis.disconnect();
  await releaseHeavy?.();
});

function start(entry: string, env: Record<string, string>, ready: RegExp): { child: ChildProcess; up: Promise<void> } {
  const started = startProcess(entry, env, ready);
  children.push(started.child);
  return started;
}

/** What each live process reports, beside what the assignment says it should serve. */
async function servedVsAssigned(agentIds: readonly string[]) {
  const now = Date.now();
  const members = (await redis.zrangebyscore(dispatchersKey(prefix), now, '+inf')).map((m) => ({
    maxAgents: Number(m.slice(0, m.indexOf('|'))),
    id: m.slice(m.indexOf('|') + 1),
  }));
  const expected = assignAgents(agentIds, members, 2);
  const stats = (await readDispatcherStats(redis, prefix)).filter((s) => expected.has(s.id));
  return { members: members.length, stats, expected: [...expected].map(([id, set]) => ({ id, agents: set.size })) };
}

const matches = (v: Awaited<ReturnType<typeof servedVsAssigned>>, processes: number) =>
  v.members === processes &&
  v.stats.length === processes &&
  v.expected.every((e) => v.stats.find((s) => s.id === e.id)?.agents === e.agents);

describe('a thousand agents, leased to dispatch processes', () => {
  it('two processes serve every agent; a third takes its share; one killed is taken over within 10 s; an added agent sends within 2 s', async () => {
    emulator = await startEmulator();
    const agentIds = Array.from({ length: AGENTS }, (_, i) => `lease-${String(i).padStart(4, '0')}`);
    const { env, port } = await processEnv(emulator, prefix, {
      RBM_AGENTS: agentIds.map((a) => `${a}:5`).join(','),
      API_KEYS: `${API_KEY}:*`,
      ADMIN_API_KEY: 'admin-leasing-test-0123456789',
    });
    const api = start('workers/api.ts', env, /API listening/);
    await api.up;
    const clientsBefore = Number(/connected_clients:(\d+)/.exec(await redis.info('clients'))![1]);
    const a = start('workers/dispatch.ts', env, /dispatch worker running/);
    const b = start('workers/dispatch.ts', env, /dispatch worker running/);
    await Promise.all([a.up, b.up]);

    // Two processes, two replicas: each serves all 1,000, so every agent is served by two.
    const two = await waitFor(
      () => servedVsAssigned(agentIds),
      (v) => matches(v, 2),
      60_000,
    );
    expect(two.stats.map((s) => s.agents)).toEqual([AGENTS, AGENTS]);
    // About one connection per agent served (BullMQ's blocking fetch), plus a few of the process's own.
    for (const s of two.stats) {
      expect(s.connections).toBeGreaterThanOrEqual(AGENTS);
      expect(s.connections).toBeLessThanOrEqual(2 * AGENTS + 20);
    }
    // The server counts the same connections the processes report (once they have all connected).
    const reported = two.stats.reduce((n, s) => n + s.connections, 0);
    const clients = async () => Number(/connected_clients:(\d+)/.exec(await redis.info('clients'))![1]) - clientsBefore;
    const seen = await waitFor(clients, (n) => Math.abs(n - reported) <= 20, 30_000);
    console.info(
      `leasing: 2 processes × ${AGENTS} agents: connections reported ${two.stats.map((s) => s.connections).join(' + ')}, Redis saw +${seen}`,
    );

    // A third process joins: it takes a share, the others give theirs up, every agent is still served by two.
    const c = start('workers/dispatch.ts', env, /dispatch worker running/);
    await c.up;
    const joinedAt = Date.now();
    const three = await waitFor(
      () => servedVsAssigned(agentIds),
      (v) => matches(v, 3),
      30_000,
    );
    expect(three.stats.reduce((n, s) => n + s.agents, 0)).toBe(2 * AGENTS);
    expect(Math.min(...three.stats.map((s) => s.agents))).toBeGreaterThan(AGENTS / 3);
    console.info(`leasing: a third process took its share in ${Date.now() - joinedAt} ms: ${three.stats.map((s) => s.agents).join(', ')}`);

    // One is killed: its lease ends, the two left serve every agent again.
    c.child.kill('SIGKILL');
    const killedAt = Date.now();
    await waitFor(
      () => servedVsAssigned(agentIds),
      (v) => matches(v, 2) && v.stats.every((s) => s.agents === AGENTS && s.at > killedAt),
      10_000,
    );
    const takeover = Date.now() - killedAt;
    console.info(`leasing: a killed process's agents served again by two in ${takeover} ms`);
    expect(takeover).toBeLessThan(10_000);

    // An agent added through the admin API takes traffic within 2 s (once the takeover's workers all run:
    // measured on a settled fleet, not on one still starting a third of its workers).
    await waitFor(
      async () => (await readDispatcherStats(redis, prefix)).filter((s) => s.at > killedAt),
      (stats) => stats.length === 2 && stats.every((s) => s.running === s.agents),
      30_000,
    );
    const base = `http://127.0.0.1:${port}`;
    const addedAt = Date.now();
    const added = await httpCall(
      base,
      'POST',
      '/v1/admin/agents',
      { agentId: 'lease-new', ratePerSec: 50 },
      {
        authorization: `Bearer ${env.ADMIN_API_KEY}`,
      },
    );
    expect(added.status).toBe(201);
    const auth = { authorization: `Bearer ${API_KEY}` };
    const sent = await waitFor(
      () => httpCall(base, 'POST', '/v1/messages', { agentId: 'lease-new', to: rcsPhone(1), contentMessage: { text: 'hi' } }, auth),
      (r) => r.status === 202,
      2000,
    );
    await waitFor(
      async () => (await httpCall(base, 'GET', `/v1/messages/${sent.body.messageId}`, undefined, auth)).body.state,
      (s) => s === 'SENT' || s === 'DELIVERED' || s === 'READ',
      2000,
    );
    const tookTraffic = Date.now() - addedAt;
    console.info(`leasing: an agent added through the admin API had its first message SENT ${tookTraffic} ms after the add`);
    expect(tookTraffic).toBeLessThan(2000);
  });
});
