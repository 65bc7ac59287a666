/**
 * The emulator's webhooks over real HTTP to a real receiver: the Pub/Sub push
 * envelope and X-Goog-Signature (spec §6.3-6.4), per-agent tokens, Google's
 * retry schedule, holding while disabled, duplicates, reordering, late events,
 * user message/event injection, crafted payloads and the verification handshake.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer } from 'node:net';
import { request } from 'undici';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  startEmulator,
  startWebhookReceiver,
  type ReceivedRequest,
  type RunningEmulator,
  type WebhookAttempt,
  type WebhookReceiver,
} from '../src/emulator/index.ts';

const TOKEN = 'SJENCPGJESMGUFPY';
const PHONE = '+12223334444';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

let emu: RunningEmulator;
let hook: WebhookReceiver;

async function control(method: 'GET' | 'POST' | 'PUT', path: string, body?: unknown): Promise<{ status: number; json: any }> {
  const res = await request(`${emu.url}/_emulator${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.body.text();
  return { status: res.statusCode, json: text === '' ? undefined : JSON.parse(text) };
}

const configure = async (patch: Record<string, unknown>) => expect((await control('PUT', '/webhook', patch)).status).toBe(200);
const say = async (text: string, agentId = 'agent-a'): Promise<string> => {
  const res = await control('POST', `/phones/${PHONE}/messages`, { agentId, text });
  expect(res.status).toBe(200);
  return res.json.messageId as string;
};
const byMessage = (id: string) => (r: ReceivedRequest) => r.payload?.messageId === id;

/** Collects the emulator's next `n` webhook attempts matching `pred` (attach before triggering them). */
function attempts(n: number, pred: (a: WebhookAttempt) => boolean = () => true): Promise<WebhookAttempt[]> {
  const seen: WebhookAttempt[] = [];
  return new Promise((resolve) => {
    const on = (a: WebhookAttempt): void => {
      if (!pred(a)) return;
      seen.push(a);
      if (seen.length < n) return;
      emu.state.events.off('webhook', on);
      resolve(seen);
    };
    emu.state.events.on('webhook', on);
  });
}

function verifies(r: ReceivedRequest, token: string): boolean {
  const sig = r.headers['x-goog-signature'];
  if (typeof sig !== 'string') return false;
  const expected = createHmac('sha512', token).update(Buffer.from(r.envelope!.message.data, 'base64')).digest();
  const got = Buffer.from(sig, 'base64');
  return got.length === expected.length && timingSafeEqual(got, expected);
}

/** A port nothing listens on: a connection there is refused. */
async function deadPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const { port } = srv.address() as { port: number };
  await new Promise((resolve) => srv.close(resolve));
  return port;
}

beforeAll(async () => {
  hook = await startWebhookReceiver();
  emu = await startEmulator({ webhook: { url: hook.url, clientTokens: { '*': TOKEN }, retryBaseMs: 20 } });
});
afterAll(async () => {
  await emu.close();
  await hook.close();
});
beforeEach(() => {
  emu.state.reset();
  hook.clear();
  hook.respond = () => 200;
});

describe('envelope and signature', () => {
  it('posts a Pub/Sub push envelope with base64 data and an X-Goog-Signature that verifies over the decoded data', async () => {
    const id = await say('Hi 👋 there');
    const [r] = await hook.waitFor(1, byMessage(id));
    expect(r!.headers['content-type']).toBe('application/json');
    const env = r!.json as any;
    expect(env).toEqual({
      message: {
        attributes: { business_id: 'agent-a@rbm.goog', product: 'RBM', project_number: expect.stringMatching(/^\d+$/), type: 'message' },
        data: expect.stringMatching(/^[A-Za-z0-9+/]+={0,2}$/),
        messageId: expect.stringMatching(/^\d+$/),
        message_id: env.message.messageId,
        publishTime: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
        publish_time: env.message.publishTime,
      },
      subscription: 'projects/rbm-emulator/subscriptions/rbm-push',
    });
    expect(r!.payload).toEqual({
      senderPhoneNumber: PHONE,
      messageId: id,
      sendTime: expect.any(String),
      agentId: 'agent-a@rbm.goog',
      text: 'Hi 👋 there',
    });
    expect(id).toMatch(/^Mx[\w-]{22}$/);
    expect(id).not.toMatch(UUID);
    expect(r!.headers['x-goog-signature']).toHaveLength(88);
    expect(verifies(r!, TOKEN)).toBe(true);
    expect(verifies(r!, 'another-token')).toBe(false);
  });

  it('signs with the agent’s own token, else "*", else sends unsigned and counts it', async () => {
    await configure({ clientTokens: { 'agent-a': 'tok-a', 'agent-b@rbm.goog': 'tok-b', '*': 'tok-any' } });
    const [a, b, c] = [await say('a', 'agent-a'), await say('b', 'agent-b'), await say('c', 'agent-c')];
    const got = await hook.waitFor(3, (r) => [a, b, c].includes(r.payload?.messageId as string));
    const of = (id: string) => got.find(byMessage(id))!;
    expect([verifies(of(a), 'tok-a'), verifies(of(b), 'tok-b'), verifies(of(c), 'tok-any')]).toEqual([true, true, true]);
    expect(verifies(of(a), 'tok-any')).toBe(false);

    await configure({ clientTokens: { 'agent-a': 'tok-a' } });
    const unsigned = await say('d', 'agent-z');
    const [r] = await hook.waitFor(1, byMessage(unsigned));
    expect(r!.headers['x-goog-signature']).toBeUndefined();
    expect(emu.state.counters.webhooksUnsigned).toBe(1);
    const view = (await control('GET', '/webhook')).json;
    expect(view).toMatchObject({ url: hook.url, enabled: true, retryBaseMs: 20, tokenAgents: ['agent-a'] });
    expect(JSON.stringify(view)).not.toContain('tok-a');
  });
});

describe('delivery semantics (spec §6.5)', () => {
  it('retries non-200 answers with backoff min(base * 2^n, max), keeping the envelope, until a 200', async () => {
    await configure({ retryBaseMs: 20, retryMaxMs: 30 });
    const answers = [500, 204, 503];
    hook.respond = () => answers.shift() ?? 200;
    const four = attempts(4);
    const id = await say('retry me');
    expect((await four).map((a) => a.status)).toEqual([500, 204, 503, 200]);
    const got = await hook.waitFor(4, byMessage(id));
    // One envelope: same Pub/Sub messageId and data on every attempt.
    expect(new Set(got.map((r) => r.envelope!.message.messageId)).size).toBe(1);
    const gaps = got.slice(1).map((r, i) => r.at - got[i]!.at);
    // 20, 30 (capped, not 40), 30; a timer may land a millisecond early on the wall clock.
    expect(gaps[0]).toBeGreaterThanOrEqual(19);
    expect(gaps[1]).toBeGreaterThanOrEqual(29);
    expect(gaps[2]).toBeGreaterThanOrEqual(29);
    expect(emu.state.counters).toMatchObject({
      webhooksSent: 1,
      webhookAttempts: 4,
      webhookFailures: 3,
      webhooksPending: 0,
      webhooksDropped: 0,
    });
  });

  it('retries network errors, and drops an envelope after retryForMs', async () => {
    await configure({ url: `http://127.0.0.1:${await deadPort()}/hook`, retryBaseMs: 10, retryForMs: 60_000 });
    const refused = emu.state.waitFor('webhook', (a) => a.status === 0);
    const id = await say('nobody home');
    await refused;
    expect(emu.state.counters.webhooksPending).toBe(1);
    await configure({ url: hook.url });
    await hook.waitFor(1, byMessage(id));

    hook.respond = () => 503;
    await configure({ retryBaseMs: 10, retryForMs: 35 });
    const dropped = new Promise<void>((resolve) => {
      const on = (): void => {
        if (emu.state.counters.webhooksDropped === 0) return;
        emu.state.events.off('webhook', on);
        resolve();
      };
      emu.state.events.on('webhook', on);
    });
    await say('given up');
    await dropped;
    // Attempts at 0, 10, 30 ms; the next (at 70) would pass 35 ms.
    expect(emu.state.counters).toMatchObject({ webhooksDropped: 1, webhooksPending: 0, webhooksSent: 1 });
  });

  it('holds every event while disabled and sends them all once enabled again', async () => {
    await configure({ enabled: false });
    const ids = [await say('1'), await say('2'), await say('3')];
    // The attempts ran (each answer above came after them) and found the webhook off.
    expect((await control('GET', '/counters')).json).toMatchObject({ webhooksPending: 3, webhookAttempts: 0, webhooksSent: 0 });
    expect(hook.received).toEqual([]);
    await configure({ enabled: true });
    const got = await hook.waitFor(3);
    expect(got.map((r) => r.payload!.messageId).sort()).toEqual([...ids].sort());
  });

  it('duplicateRate 1 sends each envelope twice: same data and IDs, a new Pub/Sub messageId', async () => {
    await configure({ duplicateRate: 1 });
    const res = await control('POST', `/phones/${PHONE}/user-events`, { agentId: 'agent-a', eventType: 'IS_TYPING' });
    const got = await hook.waitFor(2, (r) => r.payload?.eventId === res.json.eventId);
    expect(got[0]!.envelope!.message.data).toBe(got[1]!.envelope!.message.data);
    expect(got[0]!.envelope!.message.messageId).not.toBe(got[1]!.envelope!.message.messageId);
    expect(got.every((r) => verifies(r, TOKEN))).toBe(true);
  });

  it('reorderWindowMs delays each event randomly, and the whole set still arrives', async () => {
    await configure({ reorderWindowMs: 40 });
    const sent: string[] = [];
    for (let i = 0; i < 20; i += 1) sent.push(await say(`n${i}`));
    const got = await hook.waitFor(20);
    expect(got.map((r) => r.payload!.messageId).sort()).toEqual([...sent].sort());
  });

  it('extraDelayMs makes every event late by that much', async () => {
    await configure({ extraDelayMs: 50 });
    const t0 = Date.now();
    const id = await say('late');
    const [r] = await hook.waitFor(1, byMessage(id));
    expect(r!.at - t0).toBeGreaterThanOrEqual(49);
  });

  it('reset drops pending retries: a failed envelope never comes back', async () => {
    hook.respond = () => 500;
    const failed = emu.state.waitFor('webhook', (a) => a.status === 500);
    const first = await say('doomed');
    await failed;
    emu.state.reset();
    hook.respond = () => 200;
    // Later than the dropped retry (20 ms) would have been.
    await configure({ extraDelayMs: 60 });
    const ok = attempts(1, (a) => a.status === 200);
    const second = await say('fresh');
    expect((await ok)[0]!.payload.messageId).toBe(second);
    expect(hook.received.filter(byMessage(first))).toHaveLength(1);
    expect(emu.state.counters).toMatchObject({ webhookAttempts: 1, webhooksSent: 1, webhooksPending: 0 });
  });
});

describe('injection and crafted payloads', () => {
  it('injects user messages of each content kind and user events', async () => {
    const kinds = [
      { suggestionResponse: { postbackData: 'yes', text: 'Yes', type: 'REPLY' } },
      { location: { latitude: 37.42, longitude: -122.08 } },
      { userFile: { payload: { mimeType: 'image/gif', fileSizeBytes: 127806, fileUri: 'https://example.test/a.gif', fileName: 'a.gif' } } },
    ];
    for (const content of kinds) {
      const res = await control('POST', `/phones/${PHONE}/messages`, { agentId: 'agent-a', ...content });
      const [r] = await hook.waitFor(1, byMessage(res.json.messageId));
      expect(r!.payload).toEqual({
        senderPhoneNumber: PHONE,
        messageId: res.json.messageId,
        sendTime: expect.any(String),
        agentId: 'agent-a@rbm.goog',
        ...content,
      });
    }
    const ev = await control('POST', `/phones/${PHONE}/user-events`, { agentId: 'agent-a', eventType: 'UNSUBSCRIBE' });
    const [r] = await hook.waitFor(1, (x) => x.payload?.eventId === ev.json.eventId);
    expect(r!.payload).toEqual({
      senderPhoneNumber: PHONE,
      eventType: 'UNSUBSCRIBE',
      eventId: ev.json.eventId,
      sendTime: expect.any(String),
      agentId: 'agent-a@rbm.goog',
    });
    expect(r!.envelope!.message.attributes.type).toBe('event');

    expect((await control('POST', `/phones/${PHONE}/messages`, { agentId: 'agent-a', text: 'a', location: {} })).status).toBe(400);
    expect((await control('POST', `/phones/${PHONE}/user-events`, { agentId: 'agent-a', eventType: 'DELIVERED' })).status).toBe(400);
    await configure({ url: null });
    expect((await control('POST', `/phones/${PHONE}/messages`, { agentId: 'agent-a', text: 'a' })).status).toBe(400);
  });

  it('POST /webhook/send wraps any payload in a signed envelope, with extra attributes', async () => {
    const payload = {
      phoneNumber: PHONE,
      messageId: 'c0ffee00-0000-4000-8000-000000000001',
      agentId: 'agent-a@rbm.goog',
      eventType: 'TTL_EXPIRATION_REVOKED',
      eventId: 'late-1',
      sendTime: '2020-01-01T00:00:00Z',
    };
    const res = await control('POST', '/webhook/send', {
      agentId: 'agent-a',
      payload,
      attributes: { event_type: 'TTL_EXPIRATION_REVOKED' },
    });
    expect(res.status).toBe(200);
    const [r] = await hook.waitFor(1, (x) => x.payload?.eventId === 'late-1');
    expect(r!.payload).toEqual(payload);
    expect(r!.envelope!.message.messageId).toBe(res.json.envelopeMessageId);
    expect(r!.envelope!.message.attributes).toMatchObject({
      type: 'event',
      event_type: 'TTL_EXPIRATION_REVOKED',
      business_id: 'agent-a@rbm.goog',
    });
    expect(verifies(r!, TOKEN)).toBe(true);
    expect((await control('POST', '/webhook/send', { agentId: 'agent-a' })).status).toBe(400);
  });
});

describe('verification handshake (spec §6.2)', () => {
  it('is ok when the endpoint answers 200 with exactly the secret, not otherwise', async () => {
    hook.respond = (r) => {
      const body = r.json as { clientToken?: string; secret?: string };
      return body.clientToken === TOKEN ? { status: 200, body: body.secret } : 403;
    };
    const ok = await control('POST', '/webhook/verify', {});
    expect(ok.json).toEqual({ ok: true, status: 200, body: expect.stringMatching(/^\d+$/) });
    expect(hook.received[0]!.json).toEqual({ clientToken: TOKEN, secret: ok.json.body });

    await configure({ clientTokens: { 'agent-a': 'not-the-console-token' } });
    expect((await control('POST', '/webhook/verify', { agentId: 'agent-a' })).json).toEqual({ ok: false, status: 403, body: '' });

    hook.respond = (r) => ({ status: 200, body: `secret: ${(r.json as { secret: string }).secret}` });
    expect((await control('POST', '/webhook/verify', { agentId: 'agent-a' })).json).toMatchObject({ ok: false, status: 200 });
    expect((await control('POST', '/webhook/verify', { agentId: 'agent-unknown' })).status).toBe(400);
  });
});
