/**
 * Agents at run time (#12 part 3): the directory in Redis, the admin API and
 * CLI over it, and the processes following it: an added agent takes traffic
 * within 2 s, a changed one is sent at its new settings, a removed one takes
 * no messages while its queued ones drain or fail, by the operator's flag.
 * Real Redis, the emulator over HTTP, the CLI in process.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentDirectory } from '../src/agents/directory.ts';
import { LiveAgents } from '../src/agents/live.ts';
import type { WorkerSet } from '../src/queue/workers.ts';
import { httpCall, rcsPhone, redisUrl, runCli, startHarness, uniquePrefix, waitFor, type Harness } from './helpers.ts';

const ADMIN = 'admin-key-0123456789abcdef';
const ALL_AGENTS_KEY = 'k-all-agents-0123456789';
const A_ONLY_KEY = 'k-agent-a-only-0123456789';
/** Lists an agent the service does not have (yet). */
const GHOST_KEY = 'k-agent-a-and-ghost-0123456789';

let h: Harness;
let base: string;
let dispatch: WorkerSet;
const admin = { authorization: `Bearer ${ADMIN}` };
const producer = { authorization: `Bearer ${ALL_AGENTS_KEY}` };

beforeAll(async () => {
  h = await startHarness({
    name: 'agents',
    env: {
      ADMIN_API_KEY: ADMIN,
      API_KEYS: `${ALL_AGENTS_KEY}:*,${A_ONLY_KEY}:agent-a,${GHOST_KEY}:agent-a+agent-ghost`,
      SMS_FROM: '+15550001234',
    },
  });
  base = await h.startHttp();
  dispatch = h.startDispatch();
  h.startInbound();
  h.startSms();
});
afterAll(async () => {
  await h.close();
});

const emulator = (method: string, path: string, body?: unknown) => httpCall(h.emulator.url, method, `/_emulator${path}`, body);
const send = (agentId: string, to: string, extra: Record<string, unknown> = {}) =>
  httpCall(base, 'POST', '/v1/messages', { agentId, to, contentMessage: { text: 'hello' }, ...extra }, producer);
/** The queues this process's dispatch workers serve now. */
const served = () => dispatch.workers.map((w) => w.worker.name);
const stateOf = async (id: string, agentId: string) =>
  (await httpCall(base, 'GET', `/v1/messages/${id}?agentId=${agentId}`, undefined, producer)).body;

describe('the directory', () => {
  it('seeds RBM_AGENTS once, and an admin change wins over the seed at the next start', async () => {
    const prefix = uniquePrefix('agents-seed');
    const redis = new Redis(redisUrl());
    try {
      const dir = new AgentDirectory(redis, prefix);
      expect(await dir.seed([{ agentId: 'x', ratePerSec: 5 }])).toEqual(['x']);
      await dir.change('x', { ratePerSec: 9 });
      await dir.remove('x', 'drain');
      // A restart with the same RBM_AGENTS: nothing added, the change and the removal stay.
      expect(await dir.seed([{ agentId: 'x', ratePerSec: 5 }])).toEqual([]);
      const x = await dir.get('x');
      expect(x).toMatchObject({ ratePerSec: 9, removed: { queued: 'drain' } });
      // Added again: back, with its first createdAt.
      const back = await dir.add({ agentId: 'x', ratePerSec: 7 });
      expect(back.removed).toBeUndefined();
      expect(back.createdAt).toBe(x!.createdAt);
    } finally {
      await redis.del(`${prefix}:agents`);
      redis.disconnect();
    }
  });

  it('concurrent changes of one agent are each applied once or refused, never lost', async () => {
    const prefix = uniquePrefix('agents-cas');
    const redis = new Redis(redisUrl());
    try {
      const dir = new AgentDirectory(redis, prefix);
      await dir.add({ agentId: 'y', ratePerSec: 1 });
      const before = await dir.version();
      const results = await Promise.allSettled(Array.from({ length: 12 }, (_, i) => dir.change('y', { ratePerSec: 100 + i })));
      const applied = results.filter((r) => r.status === 'fulfilled');
      for (const r of results) if (r.status === 'rejected') expect((r.reason as { code: string }).code).toBe('AGENT_WRITE_CONFLICT');
      expect(applied.length).toBeGreaterThan(0);
      // Each applied write bumped the version once; the stored rate is one of those written.
      expect(await dir.version()).toBe(before + applied.length);
      expect(results.map((_, i) => 100 + i)).toContain((await dir.get('y'))!.ratePerSec);
    } finally {
      await redis.del(`${prefix}:agents`);
      redis.disconnect();
    }
  });

  it('a directory gone from Redis (restarted without its data) is written back from a process that saw it', async () => {
    const prefix = uniquePrefix('agents-restore');
    const redis = new Redis(redisUrl());
    const dir = new AgentDirectory(redis, prefix);
    const live = await LiveAgents.start(dir, { pollMs: 60_000 });
    try {
      await dir.seed([{ agentId: 'seeded', ratePerSec: 5 }]);
      await dir.add({ agentId: 'added-later', ratePerSec: 7, clientToken: 'token-of-added-later' });
      await live.refresh();
      await redis.del(dir.key);
      await live.refresh();
      expect(live.activeIds()).toEqual(['added-later', 'seeded']);
      expect((await dir.get('added-later'))?.clientToken).toBe('token-of-added-later');
    } finally {
      live.close();
      await redis.del(dir.key);
      redis.disconnect();
    }
  });

  it('another process sees an added agent within 2 s (measured)', async () => {
    const other = h.redis.worker.duplicate();
    const live = await LiveAgents.start(new AgentDirectory(other, h.config.queuePrefix));
    try {
      const t0 = Date.now();
      expect((await httpCall(base, 'POST', '/v1/admin/agents', { agentId: 'seen-elsewhere', ratePerSec: 5 }, admin)).status).toBe(201);
      await waitFor(
        async () => live.activeIds(),
        (ids) => ids.includes('seen-elsewhere'),
        2000,
      );
      expect(Date.now() - t0).toBeLessThan(2000);
    } finally {
      live.close();
      other.disconnect();
    }
  });
});

describe('the admin API', () => {
  it('is behind the admin key: an API key is FORBIDDEN, no key UNAUTHENTICATED', async () => {
    expect((await httpCall(base, 'GET', '/v1/admin/agents', undefined, producer)).body.error.code).toBe('FORBIDDEN');
    expect((await httpCall(base, 'GET', '/v1/admin/agents')).body.error.code).toBe('UNAUTHENTICATED');
    const list = await httpCall(base, 'GET', '/v1/admin/agents', undefined, admin);
    expect(list.status).toBe(200);
    expect(list.body.agents.map((a: { agentId: string }) => a.agentId)).toContain('agent-a');
  });

  it('names every bad field, never echoes a client token, and refuses a second add', async () => {
    const bad = await httpCall(
      base,
      'POST',
      '/v1/admin/agents',
      { agentId: 'bad id', ratePerSec: 0, partitions: 65, clientToken: 'short', smsFrom: 'a sender far too long', extra: 1 },
      admin,
    );
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe('PAYLOAD_INVALID');
    expect(bad.body.error.details.map((d: { path: string }) => d.path).sort()).toEqual(
      ['agentId', 'clientToken', 'extra', 'partitions', 'ratePerSec', 'smsFrom'].sort(),
    );
    expect(JSON.stringify(bad.body)).not.toContain('short');

    const token = 'a-client-token-of-agent-b';
    const added = await httpCall(base, 'POST', '/v1/admin/agents', { agentId: 'agent-b', ratePerSec: 200, clientToken: token }, admin);
    expect(added.status).toBe(201);
    expect(added.body.agent).toMatchObject({ agentId: 'agent-b', ratePerSec: 200, partitions: 1, clientToken: true });
    expect(JSON.stringify((await httpCall(base, 'GET', '/v1/admin/agents', undefined, admin)).body)).not.toContain(token);
    const again = await httpCall(base, 'POST', '/v1/admin/agents', { agentId: 'agent-b', ratePerSec: 5 }, admin);
    expect([again.status, again.body.error.code]).toEqual([409, 'AGENT_EXISTS']);
    expect((await httpCall(base, 'PATCH', '/v1/admin/agents/nobody', { ratePerSec: 5 }, admin)).status).toBe(404);
    expect((await httpCall(base, 'PATCH', '/v1/admin/agents/agent-b', {}, admin)).body.error.code).toBe('PAYLOAD_INVALID');
    expect((await httpCall(base, 'DELETE', '/v1/admin/agents/agent-b?queued=later', undefined, admin)).body.error.code).toBe(
      'PAYLOAD_INVALID',
    );
  });
});

describe('an agent added at run time', () => {
  it('takes traffic within 2 s, its webhooks verify with its own client token, and a * key may send for it', async () => {
    const token = 'client-token-of-agent-new';
    // RBM signs this agent's webhooks with its token: the emulator is told, as the agent's RBM console would be.
    await emulator('PUT', '/webhook', {
      url: `${base}/webhooks/rbm`,
      clientTokens: { ...h.config.webhookClientTokens, 'agent-new': token },
      retryBaseMs: 50,
      retryMaxMs: 500,
    });
    const to = rcsPhone(101);
    const t0 = Date.now();
    expect(
      (await httpCall(base, 'POST', '/v1/admin/agents', { agentId: 'agent-new', ratePerSec: 50, clientToken: token }, admin)).status,
    ).toBe(201);
    const sent = await send('agent-new', to);
    expect(sent.status).toBe(202);
    await waitFor(
      () => stateOf(sent.body.messageId, 'agent-new'),
      (s) => s.state !== 'QUEUED' && s.state !== 'SENDING',
      2000,
    );
    expect(Date.now() - t0).toBeLessThan(2000);
    // DELIVERED came back through the webhook, signed with the agent's own token.
    const delivered = await waitFor(
      () => stateOf(sent.body.messageId, 'agent-new'),
      (s) => s.state === 'DELIVERED' || s.state === 'READ',
    );
    expect(delivered.agentId).toBe('agent-new');
    // A key limited to agent-a may not.
    expect(
      (
        await httpCall(
          base,
          'POST',
          '/v1/messages',
          { agentId: 'agent-new', to, contentMessage: { text: 'x' } },
          { authorization: `Bearer ${A_ONLY_KEY}` },
        )
      ).status,
    ).toBe(403);
  });

  it('sends its SMS fallbacks from its own sender', async () => {
    await httpCall(base, 'POST', '/v1/admin/agents', { agentId: 'agent-sms', ratePerSec: 50, smsFrom: 'ACMEBANK' }, admin);
    const to = rcsPhone(102);
    await emulator('PUT', `/phones/${encodeURIComponent(to)}`, { rcs: false });
    const sent = await send('agent-sms', to, { fallback: { sms: { text: 'Your code is 123456' } } });
    expect(sent.status).toBe(202);
    const sms = await waitFor(
      async () => (await emulator('GET', `/sms/${encodeURIComponent(to)}`)).body,
      (b) => b.count > 0,
    );
    expect(sms.messages[0].from).toBe('ACMEBANK');
  });
});

describe('what a key limited to some agents learns of the others', () => {
  it('nothing: an agent it does not list is 403 whether it exists or not, and UNKNOWN_AGENT names only its own', async () => {
    const only = { authorization: `Bearer ${A_ONLY_KEY}` };
    await httpCall(base, 'POST', '/v1/admin/agents', { agentId: 'agent-other-tenant', ratePerSec: 5 }, admin);
    const body = (agentId: string) => ({ agentId, to: rcsPhone(401), contentMessage: { text: 'x' } });
    const existing = await httpCall(base, 'POST', '/v1/messages', body('agent-other-tenant'), only);
    const missing = await httpCall(base, 'POST', '/v1/messages', body('agent-nobody-has'), only);
    expect([existing.status, existing.body.error.code]).toEqual([403, 'FORBIDDEN']);
    expect([missing.status, missing.body.error.code]).toEqual([403, 'FORBIDDEN']);
    // A key listing an agent the service lacks: 400 UNKNOWN_AGENT, naming the key's agents and no one else's.
    const ghost = await httpCall(base, 'POST', '/v1/messages', body('agent-ghost'), { authorization: `Bearer ${GHOST_KEY}` });
    expect([ghost.status, ghost.body.error.code]).toEqual([400, 'UNKNOWN_AGENT']);
    expect(ghost.body.error.message).toContain('agent-a, agent-ghost');
    expect(JSON.stringify(ghost.body)).not.toContain('agent-other-tenant');
  });
});

describe('a changed agent', () => {
  it('is sent at its new rate by a new worker; the old one finishes and stops', async () => {
    await httpCall(base, 'POST', '/v1/admin/agents', { agentId: 'agent-rate', ratePerSec: 10 }, admin);
    const dispatchQueues = () => h.service.metricsSource.queues.map((q) => q.name);
    await waitFor(
      async () => dispatchQueues(),
      (names) => names.includes('rbm-outbound.agent-rate'),
      2000,
    );
    const changed = await httpCall(base, 'PATCH', '/v1/admin/agents/agent-rate', { ratePerSec: 40, smsFrom: 'NEWSENDER' }, admin);
    expect(changed.body.agent).toMatchObject({ ratePerSec: 40, smsFrom: 'NEWSENDER' });
    // The queue's limiter (the meta hash every worker obeys) carries the new rate once the new worker set it.
    const meta = h.service.queues.queue('outbound', 'agent-rate').toKey('meta');
    const window = h.config.dispatch.limiterWindowMs;
    await waitFor(
      async () => Number(await h.redis.producer.hget(meta, 'max')),
      (max) => max === Math.max(1, Math.round((40 * window) / 1000)),
      5000,
    );
    const cleared = await httpCall(base, 'PATCH', '/v1/admin/agents/agent-rate', { smsFrom: null }, admin);
    expect(cleared.body.agent.smsFrom).toBeUndefined();
  });
});

describe('a removed agent', () => {
  it('takes no messages (400 UNKNOWN_AGENT) and, with queued=fail, lists its queued ones as failures', async () => {
    await httpCall(base, 'POST', '/v1/admin/agents', { agentId: 'agent-gone', ratePerSec: 1 }, admin);
    const ids: string[] = [];
    for (let i = 0; i < 12; i++) ids.push((await send('agent-gone', rcsPhone(200 + i))).body.messageId);
    const removed = await httpCall(base, 'DELETE', '/v1/admin/agents/agent-gone?queued=fail', undefined, admin);
    expect(removed.body.agent.removed).toMatchObject({ queued: 'fail' });
    const refused = await send('agent-gone', rcsPhone(299));
    expect([refused.status, refused.body.error.code]).toEqual([400, 'UNKNOWN_AGENT']);
    // Every message ends: sent before the removal reached the worker, or FAILED with AGENT_REMOVED. None stays queued.
    const states = await waitFor(
      () => Promise.all(ids.map(async (id) => (await stateOf(id, 'agent-gone')).state as string)),
      (s) => s.every((x) => x !== 'QUEUED' && x !== 'SENDING'),
      15_000,
    );
    const failed = ids.filter((_, i) => states[i] === 'FAILED');
    expect(failed.length).toBeGreaterThanOrEqual(8);
    const listed = (await httpCall(base, 'GET', '/v1/failures?reason=AGENT_REMOVED&limit=100', undefined, producer)).body.failures;
    expect(listed.map((f: { messageId: string }) => f.messageId).sort()).toEqual([...failed].sort());
    expect((await stateOf(failed[0]!, 'agent-gone')).lastError.code).toBe('AGENT_REMOVED');
    // The queue is empty; once the removal has settled, no worker serves it.
    expect(await h.service.queues.queue('outbound', 'agent-gone').count()).toBe(0);
    // Added back, its failed messages are re-driven with their IDs, and sent.
    await httpCall(base, 'POST', '/v1/admin/agents', { agentId: 'agent-gone', ratePerSec: 50 }, admin);
    const redriven = await httpCall(base, 'POST', '/v1/failures:retry', { reason: 'AGENT_REMOVED' }, producer);
    expect(redriven.body.retried.sort()).toEqual([...failed].sort());
    expect(served()).toContain('rbm-outbound.agent-gone');
    const after = await waitFor(
      () => Promise.all(failed.map(async (id) => (await stateOf(id, 'agent-gone')).state as string)),
      (s) => s.every((x) => ['SENT', 'DELIVERED', 'READ'].includes(x)),
      15_000,
    );
    expect(after).toHaveLength(failed.length);
  });

  it('with queued=drain, sends what is queued, then its worker stops', async () => {
    await httpCall(base, 'POST', '/v1/admin/agents', { agentId: 'agent-drain', ratePerSec: 4 }, admin);
    const ids: string[] = [];
    for (let i = 0; i < 8; i++) ids.push((await send('agent-drain', rcsPhone(300 + i))).body.messageId);
    expect((await httpCall(base, 'DELETE', '/v1/admin/agents/agent-drain', undefined, admin)).body.agent.removed.queued).toBe('drain');
    expect((await send('agent-drain', rcsPhone(399))).body.error.code).toBe('UNKNOWN_AGENT');
    const states = await waitFor(
      () => Promise.all(ids.map(async (id) => (await stateOf(id, 'agent-drain')).state as string)),
      (s) => s.every((x) => x !== 'QUEUED' && x !== 'SENDING'),
      15_000,
    );
    expect(states.every((s) => ['SENT', 'DELIVERED', 'READ'].includes(s))).toBe(true);
    // Drained, and the removal settled (5 s): its worker stops; agent-a's runs on.
    await waitFor(
      async () => served(),
      (names) => !names.includes('rbm-outbound.agent-drain'),
      10_000,
    );
    expect(served()).toContain('rbm-outbound.agent-a');
  });
});

describe('the CLI', () => {
  it('agents add, list, set and remove with the admin key; an unknown agent exits 3', async () => {
    const cli = (...args: string[]) => runCli('--url', base, '--json', 'agents', '--admin-key', ADMIN, ...args);
    const added = await cli('add', 'agent-cli', '--rate', '20', '--partitions', '4', '--sms-from', 'CLISENDER');
    expect(added.code).toBe(0);
    expect(JSON.parse(added.stdout).agent).toMatchObject({ agentId: 'agent-cli', ratePerSec: 20, partitions: 4 });
    const list = await cli('list');
    expect(JSON.parse(list.stdout).agents.map((a: { agentId: string }) => a.agentId)).toContain('agent-cli');
    const set = await cli('set', 'agent-cli', '--rate', '30', '--no-sms-from');
    expect(set.code).toBe(0);
    expect(JSON.parse(set.stdout).agent).toMatchObject({ ratePerSec: 30 });
    expect(JSON.parse(set.stdout).agent.smsFrom).toBeUndefined();
    expect((await cli('remove', 'agent-cli', '--queued', 'fail')).code).toBe(0);
    expect((await cli('remove', 'no-such-agent')).code).toBe(3);
    expect((await cli('add', 'agent-x', '--rate', '0')).code).toBe(2);
    // An API key is not the admin key.
    expect((await runCli('--url', base, 'agents', '--admin-key', ALL_AGENTS_KEY, 'list')).code).toBe(1);
  });
});
