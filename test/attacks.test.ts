/**
 * Attacks by someone who holds one tenant's credentials: two agents, two API
 * keys (key A may use agent-a only, key B agent-b only), a client token per
 * agent. Each row is one attack; it asserts what the attacker learned and what
 * changed for the other tenant (nothing), against the real service: Redis,
 * the HTTP app, the workers and the emulator over HTTP.
 */
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendMessageJobId } from '../jobs/send-message.ts';
import { sendSmsJobId, SMS_QUEUE } from '../jobs/index.ts';
import { metricsKey } from '../src/status/store.ts';
import { signWebhookData } from '../src/webhook/signature.ts';
import { rcsPhone, startHarness, waitFor, type Harness } from './helpers.ts';

const KEY_A = 'key-a-0123456789abcdef';
const KEY_B = 'key-b-0123456789abcdef';
const TOKEN_A = 'client-token-agent-a';
const TOKEN_B = 'client-token-agent-b';

let h: Harness;
let base: string;

beforeAll(async () => {
  h = await startHarness({
    name: 'attacks',
    env: {
      RBM_AGENTS: 'agent-a:200,agent-b:200',
      API_KEYS: `${KEY_A}:agent-a,${KEY_B}:agent-b`,
      RBM_WEBHOOK_CLIENT_TOKENS: `agent-a:${TOKEN_A},agent-b:${TOKEN_B}`,
      // The local deadline far away: a message stays SENT until an event (real or forged) moves it.
      FALLBACK_GRACE_MS: '600000',
      CALLBACK_SECRET: `whsec_${Buffer.alloc(32, 7).toString('base64')}`,
      // Short, so a slow client's connection is seen closed within the test.
      HTTP_REQUEST_TIMEOUT_MS: '1500',
      HTTP_HEADERS_TIMEOUT_MS: '1000',
    },
  });
  h.startDispatch();
  h.startInbound();
  h.startSms();
  base = await h.startHttp();
});
afterAll(async () => h?.close());

async function api(key: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

/** A webhook signed with one agent's client token, as RBM would send it. */
async function webhook(token: string, payload: Record<string, unknown>): Promise<number> {
  const data = Buffer.from(JSON.stringify(payload));
  const res = await fetch(`${base}/webhooks/rbm`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-goog-signature': signWebhookData(token, data) },
    body: JSON.stringify({
      message: { data: data.toString('base64'), messageId: `env-${Math.random()}`, attributes: {} },
      subscription: 's',
    }),
  });
  return res.status;
}

const counter = async (name: string) => Number((await h.redis.producer.hget(metricsKey(h.config.queuePrefix), name)) ?? 0);
const control = async (path: string) => (await fetch(`${h.emulator.url}/_emulator${path}`)).json() as Promise<any>;
const state = async (key: string, id: string) => (await api(key, 'GET', `/v1/messages/${id}`)).body?.state as string | undefined;

let phones = 0;
/** A message of agent-b (key B) to a phone that never delivers: it stays SENT until an event moves it. */
async function victimMessage(extra: Record<string, unknown> = {}) {
  const to = rcsPhone(700 + phones++, '777');
  h.emulator.state.setPhone(to, { online: false });
  const sent = await api(KEY_B, 'POST', '/v1/messages', {
    to,
    agentId: 'agent-b',
    contentMessage: { text: 'your code is 123456' },
    ttl: '3600s',
    fallback: { sms: { text: 'code 123456' } },
    ...extra,
  });
  expect(sent.status).toBe(202);
  // The send job writes SENT before it completes.
  expect(await h.outcome('agent-b', sendMessageJobId(sent.body.messageId))).toMatchObject({ outcome: 'SENT' });
  expect(await state(KEY_B, sent.body.messageId)).toBe('SENT');
  return { to, messageId: sent.body.messageId as string };
}

const uuid = () => crypto.randomUUID();

describe("attacks with one tenant's credentials", () => {
  it("1. a DELIVERED signed with agent A's token naming B's message changes nothing; B's real event still counts", async () => {
    const { to, messageId } = await victimMessage();
    const before = await counter('inbound|agentMismatch');
    expect(
      await webhook(TOKEN_A, { senderPhoneNumber: to, eventType: 'DELIVERED', eventId: uuid(), messageId, agentId: 'agent-a@rbm.goog' }),
    ).toBe(200);
    await waitFor(
      () => counter('inbound|agentMismatch'),
      (n) => n === before + 1,
    );
    expect(await state(KEY_B, messageId)).toBe('SENT');
    // Google's real event for B is applied.
    expect(
      await webhook(TOKEN_B, { senderPhoneNumber: to, eventType: 'DELIVERED', eventId: uuid(), messageId, agentId: 'agent-b@rbm.goog' }),
    ).toBe(200);
    await waitFor(
      () => state(KEY_B, messageId),
      (s) => s === 'DELIVERED',
    );
  });

  it("2. a TTL_EXPIRATION_REVOKED signed with A's token naming B's message sends no SMS; B's real one sends exactly one", async () => {
    const { to, messageId } = await victimMessage();
    const before = await counter('inbound|agentMismatch');
    expect(
      await webhook(TOKEN_A, {
        phoneNumber: to,
        eventType: 'TTL_EXPIRATION_REVOKED',
        eventId: uuid(),
        messageId,
        agentId: 'agent-a@rbm.goog',
      }),
    ).toBe(200);
    await waitFor(
      () => counter('inbound|agentMismatch'),
      (n) => n === before + 1,
    );
    expect(await state(KEY_B, messageId)).toBe('SENT');
    expect((await control(`/sms/${encodeURIComponent(to)}`)).count).toBe(0);
    expect(
      await webhook(TOKEN_B, {
        phoneNumber: to,
        eventType: 'TTL_EXPIRATION_REVOKED',
        eventId: uuid(),
        messageId,
        agentId: 'agent-b@rbm.goog',
      }),
    ).toBe(200);
    // The SMS job writes FALLBACK_SENT before it completes.
    expect(await h.outcomeOn(SMS_QUEUE, sendSmsJobId(messageId, 'agent-b'))).toMatchObject({ outcome: 'FALLBACK_SENT' });
    expect(await state(KEY_B, messageId)).toBe('FALLBACK_SENT');
    expect((await control(`/sms/${encodeURIComponent(to)}`)).count).toBe(1);
  });

  it("3. a body signed with A's token that claims agent B is refused (401): B's token verifies B's events", async () => {
    const { to, messageId } = await victimMessage();
    expect(
      await webhook(TOKEN_A, { senderPhoneNumber: to, eventType: 'DELIVERED', eventId: uuid(), messageId, agentId: 'agent-b@rbm.goog' }),
    ).toBe(401);
    expect(await state(KEY_B, messageId)).toBe('SENT');
  });

  it('4. an event of the right agent with another phone number changes nothing (phoneMismatch)', async () => {
    const { messageId } = await victimMessage();
    const before = await counter('inbound|phoneMismatch');
    expect(
      await webhook(TOKEN_B, {
        senderPhoneNumber: '+15550001111',
        eventType: 'DELIVERED',
        eventId: uuid(),
        messageId,
        agentId: 'agent-b@rbm.goog',
      }),
    ).toBe(200);
    expect(
      await webhook(TOKEN_B, {
        phoneNumber: '+15550001111',
        eventType: 'TTL_EXPIRATION_REVOKED',
        eventId: uuid(),
        messageId,
        agentId: 'agent-b@rbm.goog',
      }),
    ).toBe(200);
    await waitFor(
      () => counter('inbound|phoneMismatch'),
      (n) => n === before + 2,
    );
    expect(await state(KEY_B, messageId)).toBe('SENT');
  });

  it("5. squatting a messageId: A claims it first, B's send with it still goes out", async () => {
    const id = uuid();
    const toA = rcsPhone(1, '778');
    const toB = rcsPhone(2, '778');
    const a = await api(KEY_A, 'POST', '/v1/messages', { to: toA, messageId: id, contentMessage: { text: 'squat' } });
    expect(a).toMatchObject({ status: 202, body: { messageId: id, duplicate: false } });
    const b = await api(KEY_B, 'POST', '/v1/messages', { to: toB, agentId: 'agent-b', messageId: id, contentMessage: { text: 'real' } });
    expect(b).toMatchObject({ status: 202, body: { messageId: id, duplicate: false, state: 'QUEUED' } });
    await waitFor(
      () => state(KEY_B, id),
      (s) => s === 'DELIVERED' || s === 'READ',
    );
    const arrivals = (await control(`/phones/${encodeURIComponent(toB)}`)).arrivals as Array<{ id: string }>;
    expect(arrivals.map((x) => x.id)).toEqual([id]);
  });

  it("6. probing B's state by re-posting B's messageId with key A learns nothing of B", async () => {
    const { messageId } = await victimMessage();
    const probe = await api(KEY_A, 'POST', '/v1/messages', { to: rcsPhone(3, '778'), messageId, contentMessage: { text: 'probe' } });
    // A's own, new message: not B's state, not a duplicate.
    expect(probe).toMatchObject({ status: 202, body: { messageId, duplicate: false, state: 'QUEUED' } });
    expect(await state(KEY_B, messageId)).toBe('SENT');
  });

  it("7. GET of B's message with key A answers exactly like an unknown ID", async () => {
    const { messageId } = await victimMessage();
    const foreign = await api(KEY_A, 'GET', `/v1/messages/${messageId}`);
    const unknownId = uuid();
    const unknown = await api(KEY_A, 'GET', `/v1/messages/${unknownId}`);
    expect(foreign.status).toBe(404);
    expect(JSON.stringify(foreign.body).replace(messageId, 'X')).toBe(JSON.stringify(unknown.body).replace(unknownId, 'X'));
  });

  it("8. revoking B's message with key A: 404, and B's message is still SENT", async () => {
    const { messageId } = await victimMessage();
    expect((await api(KEY_A, 'DELETE', `/v1/messages/${messageId}?fallback=true`)).status).toBe(404);
    expect(await state(KEY_B, messageId)).toBe('SENT');
  });

  it("9. ?agentId=agent-b on a GET with key A does not open B's namespace", async () => {
    const { messageId } = await victimMessage();
    expect((await api(KEY_A, 'GET', `/v1/messages/${messageId}?agentId=agent-b`)).status).toBe(404);
  });

  it("10. re-driving B's failed message with key A skips it as unknown", async () => {
    await fetch(`${h.emulator.url}/_emulator/faults`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ failNext: [{ kind: '400', count: 1 }] }),
    });
    const sent = await api(KEY_B, 'POST', '/v1/messages', {
      to: rcsPhone(4, '778'),
      agentId: 'agent-b',
      contentMessage: { text: 'will fail' },
    });
    // The send job writes FAILED before it fails for good.
    await expect(h.outcome('agent-b', sendMessageJobId(sent.body.messageId))).rejects.toThrow();
    expect(await state(KEY_B, sent.body.messageId)).toBe('FAILED');
    const retry = await api(KEY_A, 'POST', '/v1/failures:retry', { messageIds: [sent.body.messageId] });
    expect(retry.body).toEqual({ retried: [], skipped: [{ messageId: sent.body.messageId, why: 'no such message' }] });
    // Nor does A's failure list show it.
    const listA = await api(KEY_A, 'GET', '/v1/failures');
    expect(listA.body.failures.map((f: { messageId: string }) => f.messageId)).not.toContain(sent.body.messageId);
    expect(await state(KEY_B, sent.body.messageId)).toBe('FAILED');
  });

  it("11. B's batch progress is not shown to key A", async () => {
    const batch = await api(KEY_B, 'POST', '/v1/messages:batch', {
      messages: [{ to: rcsPhone(5, '778'), agentId: 'agent-b', contentMessage: { text: 'b1' } }],
    });
    expect(batch.status).toBe(202);
    expect((await api(KEY_B, 'GET', `/v1/batches/${batch.body.batchId}`)).status).toBe(200);
    const foreign = await api(KEY_A, 'GET', `/v1/batches/${batch.body.batchId}`);
    expect(foreign.status).toBe(404);
    expect(foreign.body.error.code).toBe('NOT_FOUND');
  });

  it('12. the same Idempotency-Key under two keys names two messages, both sent', async () => {
    const a = await api(
      KEY_A,
      'POST',
      '/v1/messages',
      { to: rcsPhone(6, '778'), contentMessage: { text: 'a' } },
      { 'idempotency-key': 'order-1' },
    );
    const b = await api(
      KEY_B,
      'POST',
      '/v1/messages',
      { to: rcsPhone(7, '778'), agentId: 'agent-b', contentMessage: { text: 'b' } },
      { 'idempotency-key': 'order-1' },
    );
    expect(a.body.duplicate).toBe(false);
    expect(b.body.duplicate).toBe(false);
    expect(a.body.messageId).not.toBe(b.body.messageId);
  });

  it("13. squatting an outbound eventId: A's READ with an eventId does not make B's a duplicate", async () => {
    const eventId = uuid();
    const a = await api(KEY_A, 'POST', '/v1/events', { to: rcsPhone(8, '778'), eventType: 'READ', messageId: uuid(), eventId });
    expect(a.status).toBe(202);
    const b = await api(KEY_B, 'POST', '/v1/events', {
      to: rcsPhone(9, '778'),
      agentId: 'agent-b',
      eventType: 'READ',
      messageId: uuid(),
      eventId,
    });
    expect(b).toMatchObject({ status: 202, body: { eventId, duplicate: false } });
  });

  it('14. key A sending for agent-b is refused (403), alone or inside a batch, and nothing is queued', async () => {
    const to = rcsPhone(10, '778');
    expect((await api(KEY_A, 'POST', '/v1/messages', { to, agentId: 'agent-b', contentMessage: { text: 'x' } })).status).toBe(403);
    const batch = await api(KEY_A, 'POST', '/v1/messages:batch', {
      messages: [
        { to, contentMessage: { text: 'ok' } },
        { to, agentId: 'agent-b', contentMessage: { text: 'x' } },
      ],
    });
    expect(batch.status).toBe(403);
    expect(batch.body.error.details[0].path).toBe('messages.1.agentId');
    expect((await control(`/phones/${encodeURIComponent(to)}`)).arrivals ?? []).toEqual([]);
  });

  it("15. a webhook eventId squatted with A's token does not swallow B's real event (dedupe per agent)", async () => {
    const { to, messageId } = await victimMessage();
    const eventId = uuid();
    expect(await webhook(TOKEN_A, { senderPhoneNumber: to, eventType: 'DELIVERED', eventId, messageId, agentId: 'agent-a@rbm.goog' })).toBe(
      200,
    );
    expect(await webhook(TOKEN_B, { senderPhoneNumber: to, eventType: 'DELIVERED', eventId, messageId, agentId: 'agent-b@rbm.goog' })).toBe(
      200,
    );
    await waitFor(
      () => state(KEY_B, messageId),
      (s) => s === 'DELIVERED',
    );
  });

  it("16. a callback replay of B's message with key A: 404", async () => {
    const { messageId } = await victimMessage();
    // B's own key finds it (it has no callback URL: 409); A's is told nothing.
    expect((await api(KEY_B, 'POST', `/v1/messages/${messageId}/callbacks:replay`)).body.error.code).toBe('NO_CALLBACK');
    const replay = await api(KEY_A, 'POST', `/v1/messages/${messageId}/callbacks:replay`);
    expect(replay.status).toBe(404);
  });

  it('17. without a key, or with a wrong one, nothing is answered but 401', async () => {
    const { messageId } = await victimMessage();
    for (const key of ['', 'key-c-0123456789abcdef', `${KEY_B}x`]) {
      expect((await api(key, 'GET', `/v1/messages/${messageId}`)).status).toBe(401);
    }
  });

  it('18. callback URLs that lead inside are refused in every spelling, per message and at registration, and nothing is queued', async () => {
    const forms = [
      'http://127.0.0.1:6379/',
      'http://2130706433/',
      'http://0x7f000001/',
      'http://0177.0.0.1/',
      'http://127.1/',
      'http://[::1]/',
      'http://[::ffff:127.0.0.1]/',
      'http://169.254.169.254/latest/meta-data/',
      'http://metadata.google.internal/',
      'http://10.0.0.5/',
      'http://localhost:3000/',
    ];
    const to = rcsPhone(11, '778');
    for (const url of forms) {
      const sent = await api(KEY_A, 'POST', '/v1/messages', { to, contentMessage: { text: 'x' }, callbackUrl: url });
      expect(sent.status, url).toBe(400);
      expect(sent.body.error.code, url).toBe('URL_FORBIDDEN');
      expect(sent.body.error.details[0].path, url).toBe('callbackUrl');
      const registered = await api(KEY_A, 'PUT', '/v1/callback', { url });
      expect(registered.body.error?.code, url).toBe('URL_FORBIDDEN');
    }
    expect((await control(`/phones/${encodeURIComponent(to)}`)).arrivals ?? []).toEqual([]);
  });

  it('19. a webhook naming agent __proto__, constructor or toString is answered like any unknown agent', async () => {
    const answers = new Set<number>();
    for (const agent of ['__proto__', 'constructor', 'toString', 'no-such-agent']) {
      answers.add(
        await webhook(TOKEN_A, {
          senderPhoneNumber: rcsPhone(12, '778'),
          eventType: 'DELIVERED',
          eventId: uuid(),
          messageId: uuid(),
          agentId: `${agent}@rbm.goog`,
        }),
      );
    }
    expect([...answers]).toHaveLength(1);
    expect([...answers][0]).toBeLessThan(500);
  });

  it('20. a body sent one byte at a time is cut off at the request timeout, not held open', async () => {
    const { port } = new URL(base);
    const started = Date.now();
    const closed = await new Promise<number>((resolve) => {
      const socket = connect(Number(port), '127.0.0.1', () => {
        socket.write(
          `POST /v1/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY_A}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{`,
        );
        const timer = setInterval(() => (socket.writable ? socket.write(' ') : clearInterval(timer)), 200);
        socket.once('close', () => clearInterval(timer));
      });
      socket.on('error', () => {});
      socket.on('close', () => resolve(Date.now() - started));
    });
    expect(closed).toBeLessThan(10_000);
  });

  it('21. a 10,000-item batch of bad items gets a bounded answer: at most 100 problems, the count, under 64 KB', async () => {
    const messages = Array.from({ length: 10_000 }, (_, i) => ({
      to: `not-a-phone-${i}`,
      agentId: 7,
      contentMessage: { text: 5 },
      ttl: 'soon',
      extra: true,
    }));
    const res = await fetch(`${base}/v1/messages:batch`, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEY_A}`, 'content-type': 'application/json' },
      body: JSON.stringify({ messages }),
    });
    const text = await res.text();
    expect(res.status).toBe(400);
    expect(text.length).toBeLessThan(64 * 1024);
    const body = JSON.parse(text);
    expect(body.error.details.length).toBeLessThanOrEqual(100);
    expect(body.error.problemCount).toBeGreaterThanOrEqual(40_000);
    expect(new Set(body.error.details.map((d: { path: string; problem: string }) => `${d.path} ${d.problem}`)).size).toBe(
      body.error.details.length,
    );
  });

  it("22. the Bearer scheme is matched in any case, and a lower-case key A still cannot see B's messages", async () => {
    const { messageId } = await victimMessage();
    const lower = await fetch(`${base}/v1/messages/${messageId}`, { headers: { authorization: `bearer ${KEY_A}` } });
    expect(lower.status).toBe(404);
    const own = await fetch(`${base}/v1/messages/${messageId}`, { headers: { authorization: `BEARER ${KEY_B}` } });
    expect(own.status).toBe(200);
  });
});
