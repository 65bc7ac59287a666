/**
 * The history reads against the real service: Redis, the emulator over HTTP,
 * the archiver writing to the embedded archive in memory, and the HTTP app.
 * Messages go through their lifecycle (read, delivered, SMS fallback, failed),
 * the archive gets them, then: GET by ID answers the same body after the Redis
 * record is gone, a number's messages and the report are scoped to the key's
 * agents and agree with the emulator's truth, erase removes from both stores
 * (admin key only), and the CLI prints the report and exports CSV. The attack
 * rows (key A probing agent-b's history) follow test/attacks.test.ts.
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { phoneHash } from '../src/history/index.ts';
import { historyFeedKey, metricsKey } from '../src/status/store.ts';
import { rcsPhone, runCli, startHarness, waitFor, type Harness } from './helpers.ts';

const KEY_A = 'key-a-history-0123456789';
const KEY_B = 'key-b-history-0123456789';
const KEY_AB = 'key-ab-history-012345678';
const ADMIN = 'admin-history-0123456789';

const P_READ = rcsPhone(1, '321');
const P_DELIVERED = rcsPhone(2, '321');
const P_SMS = '+13215550000';
const P_FAIL = rcsPhone(3, '321');

let h: Harness;
let base: string;
const FINAL = new Set(['READ', 'DELIVERED', 'FALLBACK_SENT', 'FAILED']);

interface Sent {
  messageId: string;
  agentId: string;
  to: string;
  expect: string;
}
const sent: Sent[] = [];
let started = 0;

async function api(key: string, method: string, path: string, body?: unknown) {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return {
    status: res.status,
    body: text && res.headers.get('content-type')?.includes('json') ? JSON.parse(text) : text,
    headers: res.headers,
  };
}

async function send(key: string, agentId: string, to: string, expectState: string, extra: Record<string, unknown> = {}): Promise<Sent> {
  const r = await api(key, 'POST', '/v1/messages', { to, agentId, contentMessage: { text: 'hello' }, ...extra });
  expect(r.status).toBe(202);
  const s = { messageId: r.body.messageId as string, agentId, to, expect: expectState };
  sent.push(s);
  return s;
}

/** Every message in its final state, then the feed emptied by the archiver (it deletes what it wrote). */
async function settledAndArchived(messages: readonly Sent[]): Promise<void> {
  for (const m of messages) {
    await waitFor(
      () => h.producer.getStatus({ agentId: m.agentId, messageId: m.messageId }),
      (s) => s?.state === m.expect && FINAL.has(s.state),
    );
  }
  await waitFor(
    () => h.redis.producer.xlen(historyFeedKey(h.config.queuePrefix)),
    (n) => n === 0,
  );
  const store = await h.service.history();
  for (const m of messages) expect((await store.message(m))?.state, m.messageId).toBe(m.expect);
}

beforeAll(async () => {
  started = Date.now();
  h = await startHarness({
    name: 'history-reads',
    env: {
      RBM_AGENTS: 'agent-a:200,agent-b:200',
      API_KEYS: `${KEY_A}:agent-a,${KEY_B}:agent-b,${KEY_AB}:agent-a+agent-b`,
      ADMIN_API_KEY: ADMIN,
      RBM_WEBHOOK_CLIENT_TOKENS: 'agent-a:token-a-history,agent-b:token-b-history',
      HISTORY_DATA_DIR: 'memory://',
      DISPATCH_ATTEMPTS: '2',
    },
  });
  h.startDispatch();
  h.startInbound();
  h.startSms();
  await h.service.startArchiver();
  base = await h.startHttp();
  h.emulator.state.setPhone(P_READ, { readProbability: 1, readDelayMs: 0 });
  h.emulator.state.setPhone(P_SMS, { rcs: false });
  const faults = await fetch(`${h.emulator.url}/_emulator/faults`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ failNext: [{ kind: '400', count: 1, phone: P_FAIL }] }),
  });
  expect(faults.status).toBeLessThan(300);
  for (let i = 0; i < 3; i++) await send(KEY_A, 'agent-a', P_READ, 'READ', { messageTrafficType: 'TRANSACTION' });
  await send(KEY_B, 'agent-b', P_READ, 'READ');
  for (let i = 0; i < 2; i++) await send(KEY_A, 'agent-a', P_DELIVERED, 'DELIVERED', { messageTrafficType: 'PROMOTION' });
  await send(KEY_A, 'agent-a', P_SMS, 'FALLBACK_SENT', { fallback: { sms: { text: 'hello by SMS' } } });
  await send(KEY_A, 'agent-a', P_FAIL, 'FAILED');
  await settledAndArchived(sent);
}, 120_000);
afterAll(async () => h?.close());

const byState = (state: string) => sent.filter((s) => s.expect === state);

describe('GET /v1/messages/:id from Redis, then from the archive', () => {
  it('answers the same body once the Redis record is gone (read, delivered, SMS fallback, failed)', async () => {
    for (const m of [byState('READ')[0]!, byState('DELIVERED')[0]!, byState('FALLBACK_SENT')[0]!, byState('FAILED')[0]!]) {
      const before = await api(KEY_A, 'GET', `/v1/messages/${m.messageId}`);
      expect(before.status).toBe(200);
      await h.redis.producer.del(h.status.key(m));
      expect(await h.status.get(m)).toBeNull();
      const after = await api(KEY_A, 'GET', `/v1/messages/${m.messageId}`);
      expect(after.status, m.expect).toBe(200);
      expect(after.body, m.expect).toEqual(before.body);
    }
    const sms = (await api(KEY_A, 'GET', `/v1/messages/${byState('FALLBACK_SENT')[0]!.messageId}`)).body;
    expect(sms).toMatchObject({ state: 'FALLBACK_SENT', channel: 'sms', fallbackReason: 'NOT_RCS', attempts: 1, to: '+1321***0000' });
    const failed = (await api(KEY_A, 'GET', `/v1/messages/${byState('FAILED')[0]!.messageId}`)).body;
    expect(failed).toMatchObject({ state: 'FAILED', channel: 'rcs', attempts: 1, lastError: { code: 'RBM_API' } });
  });

  it("an archived ID held by two of the caller's agents is 409; ?agentId= picks one; another key sees nothing", async () => {
    const id = randomUUID();
    const a = await send(KEY_A, 'agent-a', P_DELIVERED, 'DELIVERED', { messageId: id });
    const b = await send(KEY_B, 'agent-b', P_DELIVERED, 'DELIVERED', { messageId: id });
    await settledAndArchived([a, b]);
    await h.redis.producer.del(h.status.key(a), h.status.key(b));
    const both = await api(KEY_AB, 'GET', `/v1/messages/${id}`);
    expect(both.status).toBe(409);
    expect(both.body.error.code).toBe('MESSAGE_ID_AMBIGUOUS');
    expect((await api(KEY_AB, 'GET', `/v1/messages/${id}?agentId=agent-b`)).body).toMatchObject({ agentId: 'agent-b', state: 'DELIVERED' });
    expect((await api(KEY_A, 'GET', `/v1/messages/${id}`)).body).toMatchObject({ agentId: 'agent-a' });
    expect((await api(KEY_A, 'GET', `/v1/messages/${id}?agentId=agent-b`)).status).toBe(404);
    expect((await api(KEY_A, 'GET', `/v1/messages/${randomUUID()}`)).status).toBe(404);
    expect((await api(KEY_A, 'GET', '/v1/messages/not-a-uuid')).status).toBe(404);
  });
});

describe("GET /v1/messages?to= (a number's messages)", () => {
  it("lists only the key's agents' messages, newest first, masked, in pages", async () => {
    const a = await api(KEY_A, 'GET', `/v1/messages?to=${encodeURIComponent(P_READ)}`);
    expect(a.status).toBe(200);
    expect(a.body.messages.map((m: { agentId: string }) => m.agentId)).toEqual(['agent-a', 'agent-a', 'agent-a']);
    expect(a.body.messages.every((m: { to: string }) => m.to === '+1321***0017')).toBe(true);
    expect(JSON.stringify(a.body)).not.toContain(P_READ);
    const created = a.body.messages.map((m: { createdAt: number }) => m.createdAt);
    expect(created).toEqual([...created].sort((x, y) => y - x));
    expect((await api(KEY_B, 'GET', `/v1/messages?to=${encodeURIComponent(P_READ)}`)).body.messages).toHaveLength(1);
    // A bare + in a query string arrives as a space: taken as the +.
    const all = await api(KEY_AB, 'GET', `/v1/messages?to=${P_READ}`);
    expect(all.body.messages).toHaveLength(4);
    const page1 = await api(KEY_AB, 'GET', `/v1/messages?to=${encodeURIComponent(P_READ)}&limit=3`);
    expect(page1.body.messages).toHaveLength(3);
    const page2 = await api(KEY_AB, 'GET', `/v1/messages?to=${encodeURIComponent(P_READ)}&limit=3&before=${page1.body.next}`);
    expect(page2.body).toEqual({ messages: [all.body.messages[3]] });
  });

  it('refuses a bad number, limit or cursor naming the field, and a foreign agentId with 403', async () => {
    for (const [query, path] of [
      ['to=12345', 'to'],
      ['', 'to'],
      [`to=${encodeURIComponent(P_READ)}&limit=101`, 'limit'],
      [`to=${encodeURIComponent(P_READ)}&before=xyz`, 'before'],
    ] as const) {
      const r = await api(KEY_A, 'GET', `/v1/messages?${query}`);
      expect(r.status, query).toBe(400);
      expect(r.body.error.details[0].path, query).toBe(path);
    }
    const foreign = await api(KEY_A, 'GET', `/v1/messages?to=${encodeURIComponent(P_READ)}&agentId=agent-b`);
    expect(foreign.status).toBe(403);
    // An agent that does not exist answers the same: a key learns nothing of other tenants' agents.
    expect((await api(KEY_A, 'GET', `/v1/messages?to=${encodeURIComponent(P_READ)}&agentId=nope`)).status).toBe(403);
  });
});

describe('GET /v1/reports/deliveries', () => {
  const range = () => `from=${started - 60_000}&to=${Date.now() + 60_000}`;

  it("counts agree with the emulator's truth, per agent and per state; a key sees only its agents", async () => {
    const report = await api(KEY_AB, 'GET', `/v1/reports/deliveries?${range()}&groupBy=agent`);
    expect(report.status).toBe(200);
    for (const agentId of ['agent-a', 'agent-b']) {
      const mine = sent.filter((s) => s.agentId === agentId);
      const truth = mine.map((s) => h.emulator.state.messages.get(s.messageId));
      const smsCount = mine.filter((s) => (h.emulator.state.sms.perNumber.get(s.to) ?? []).length > 0 && s.expect === 'FALLBACK_SENT');
      const row = report.body.rows.find((r: { key: string }) => r.key === agentId);
      expect(row, agentId).toMatchObject({
        total: mine.length,
        delivered: truth.filter((t) => t?.delivered).length,
        read: truth.filter((t) => t?.read).length,
        fellBack: smsCount.length,
        failed: mine.filter((s) => s.expect === 'FAILED').length,
      });
      expect(row.deliveredRate).toBeCloseTo(row.delivered / row.total);
      expect(row.timeToDeliveredP50Ms).toBeGreaterThanOrEqual(0);
    }
    const a = await api(KEY_A, 'GET', `/v1/reports/deliveries?${range()}&groupBy=state`);
    const counts = Object.fromEntries(a.body.rows.map((r: { key: string; total: number }) => [r.key, r.total]));
    const expected: Record<string, number> = {};
    for (const s of sent.filter((x) => x.agentId === 'agent-a')) expected[s.expect] = (expected[s.expect] ?? 0) + 1;
    expect(counts).toEqual(expected);
    const b = await api(KEY_B, 'GET', `/v1/reports/deliveries?${range()}&groupBy=agent`);
    expect(b.body.rows.map((r: { key: string }) => r.key)).toEqual(['agent-b']);
    const day = await api(KEY_A, 'GET', `/v1/reports/deliveries?${range()}`);
    expect(day.body.groupBy).toBe('day');
    expect(day.body.rows.reduce((n: number, r: { total: number }) => n + r.total, 0)).toBe(
      sent.filter((s) => s.agentId === 'agent-a').length,
    );
  });

  it('refuses a foreign agentId (403), a bad time, range or groupBy (400, naming the field)', async () => {
    expect((await api(KEY_A, 'GET', `/v1/reports/deliveries?${range()}&agentId=agent-b`)).status).toBe(403);
    for (const [query, path] of [
      ['from=yesterday', 'from'],
      ['from=2024-01-01&to=2025-06-01', 'to'],
      [`${range()}&groupBy=phone`, 'groupBy'],
      [`${range()}&format=xml`, 'format'],
    ] as const) {
      const r = await api(KEY_A, 'GET', `/v1/reports/deliveries?${query}`);
      expect(r.status, query).toBe(400);
      expect(r.body.error.details[0].path, query).toBe(path);
    }
    const iso = await api(KEY_A, 'GET', `/v1/reports/deliveries?from=${new Date(started - 86_400_000).toISOString().slice(0, 10)}`);
    expect(iso.status).toBe(200);
  });

  it("?format=csv streams the range's messages of the key's agents, masked", async () => {
    const r = await api(KEY_A, 'GET', `/v1/reports/deliveries?${range()}&format=csv`);
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toMatch(/^text\/csv/);
    const lines = (r.body as string).trim().split('\r\n');
    expect(lines[0]).toMatch(/^messageId,agentId,state,/);
    expect(lines).toHaveLength(1 + sent.filter((s) => s.agentId === 'agent-a').length);
    expect(r.body).not.toContain('agent-b');
    expect(r.body).not.toContain(P_READ);
  });
});

describe('DELETE /v1/subscribers/:e164', () => {
  it('is refused with an API key (403) or no key (401); with the admin key erases the archive and Redis, audited', async () => {
    const number = P_DELIVERED;
    const mine = sent.filter((s) => s.to === number);
    expect((await api(KEY_AB, 'DELETE', `/v1/subscribers/${number}`)).status).toBe(403);
    expect((await fetch(`${base}/v1/subscribers/${number}`, { method: 'DELETE' })).status).toBe(401);
    const inRedis = (await Promise.all(mine.map((m) => h.status.get(m)))).filter((s) => s !== null).length;
    expect(inRedis).toBeGreaterThan(0);
    const erased = await api(ADMIN, 'DELETE', `/v1/subscribers/${number}`);
    expect(erased.status).toBe(200);
    expect(erased.body).toMatchObject({ to: '+1321***0027', archive: { messages: mine.length }, redis: { records: inRedis } });
    expect(erased.body.archive.events).toBeGreaterThan(mine.length);
    for (const m of mine) {
      expect(await h.status.get(m)).toBeNull();
      expect((await api(KEY_AB, 'GET', `/v1/messages/${m.messageId}?agentId=${m.agentId}`)).status).toBe(404);
    }
    expect((await api(KEY_AB, 'GET', `/v1/messages?to=${encodeURIComponent(number)}`)).body.messages).toEqual([]);
    const key = await h.service.historyPhoneKey();
    expect((await (await h.service.history()).byPhone(phoneHash(key, number), ['agent-a', 'agent-b'])).messages).toEqual([]);
    expect(await h.redis.producer.hget(metricsKey(h.config.queuePrefix), 'history|erase')).toBe('1');
    // Other numbers are untouched.
    expect((await api(KEY_AB, 'GET', `/v1/messages?to=${encodeURIComponent(P_READ)}`)).body.messages).toHaveLength(4);
    expect((await api(ADMIN, 'DELETE', '/v1/subscribers/12345')).status).toBe(400);
    for (const m of mine) sent.splice(sent.indexOf(m), 1);
  });
});

describe('rbm-dispatch report', () => {
  it('prints the table and exports CSV to a file and to stdout', async () => {
    const common = ['--url', base, '--api-key', KEY_A];
    const range = ['--from', String(started - 60_000), '--to', String(Date.now() + 60_000)];
    const table = await runCli(...common, 'report', ...range, '--group-by', 'state');
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).toMatch(/^state from /);
    expect(table.stdout).toMatch(/\nREAD\s+3\s+3\s+3\s+0\s+0\s+100\.0%/);
    const json = await runCli(...common, '--json', 'report', ...range, '--group-by', 'agent');
    expect(JSON.parse(json.stdout).rows.map((r: { key: string }) => r.key)).toEqual(['agent-a']);
    const dir = await mkdtemp(join(tmpdir(), 'rbm-report-'));
    try {
      const file = join(dir, 'out.csv');
      const exported = await runCli(...common, 'report', ...range, '--csv', file);
      expect(exported.code, exported.stderr).toBe(0);
      const csv = await readFile(file, 'utf8');
      expect(csv.split('\r\n')[0]).toMatch(/^messageId,agentId,state/);
      expect(csv.trim().split('\r\n')).toHaveLength(1 + sent.filter((s) => s.agentId === 'agent-a').length);
      const stdout = await runCli(...common, 'report', ...range, '--csv', '-');
      expect(stdout.stdout).toBe(csv);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    const refused = await runCli(...common, 'report', ...range, '--agent', 'agent-b');
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/may not read agent/);
  });
});

describe('an archive that does not answer', () => {
  it('is a 503 HISTORY_UNAVAILABLE on every history read, never a 500; a message Redis holds still answers', async () => {
    const { buildApi } = await import('../src/api/app.ts');
    const { HistoryError } = await import('../src/history/index.ts');
    const down = () =>
      Promise.reject(new HistoryError('HISTORY_UNAVAILABLE', 'the history database at postgres://db does not answer (ECONNREFUSED)'));
    const held = { agentId: 'agent-a', messageId: randomUUID() };
    const producer = {
      locateOne: async (id: string) => (id === held.messageId ? held : null),
      statusRecord: async () => ({
        ...held,
        state: 'SENT',
        to: '+1222***4444',
        channel: 'rcs',
        createdAt: 1,
        updatedAt: 2,
        attempts: 1,
        timeline: [],
      }),
      getStatus: async () => null,
    };
    const app = buildApi({
      producer: producer as never,
      history: { store: down, phoneKey: down, agentIds: () => ['agent-a'] },
      apiKeys: [],
      openWithoutKeys: true,
      logger: false,
    });
    for (const url of [
      `/v1/messages/${randomUUID()}`,
      `/v1/messages?to=${encodeURIComponent(P_READ)}`,
      '/v1/reports/deliveries',
      '/v1/reports/deliveries?format=csv',
    ]) {
      const r = await app.inject({ method: 'GET', url });
      expect(r.statusCode, url).toBe(503);
      expect(r.json().error.code, url).toBe('HISTORY_UNAVAILABLE');
    }
    expect((await app.inject({ method: 'GET', url: `/v1/messages/${held.messageId}` })).json()).toMatchObject({ state: 'SENT' });
    await app.close();
  });
});
