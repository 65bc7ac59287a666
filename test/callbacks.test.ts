/**
 * Status callbacks end to end: the emulator drives real lifecycles, the
 * service POSTs every state change to a receiver over real HTTP, and each
 * callback is verified with the `standardwebhooks` package, as a producer's
 * endpoint would. Retries, giving up, and replay run on a short schedule.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Webhook, WebhookVerificationError } from 'standardwebhooks';
import type { FastifyInstance } from 'fastify';
import { CALLBACK_QUEUE, deliverCallbackJobId } from '../jobs/index.ts';
import { buildApi } from '../src/api/app.ts';
import { backoffStrategy, retryDelays } from '../src/callbacks/schedule.ts';
import { metricsKey } from '../src/status/store.ts';
import { httpCall, rcsPhone, startCallbackReceiver, startHarness, waitFor, type Harness, type ReceivedCallback } from './helpers.ts';

const SECRET = `whsec_${randomBytes(32).toString('base64')}`;
const KEY_1 = 'callback-key-one-0000000001';
const KEY_2 = 'callback-key-two-0000000002';
const NOT_RCS = '+15550000010'; // the emulator's rule: a number ending in 0 is not RCS

let h: Harness;
let app: FastifyInstance;
let base: string;
let receiver: Awaited<ReturnType<typeof startCallbackReceiver>>;
/** Changes ("<messageId>/<state>") the receiver answers 500 to: how many more times, or forever (Infinity). */
const refuse = new Map<string, number>();

beforeAll(async () => {
  h = await startHarness({
    name: 'callbacks',
    env: {
      CALLBACK_SECRET: SECRET,
      // 20, 40, 80, 100, 100 ms: five retries, six attempts in all.
      CALLBACK_RETRY_BASE_MS: '20',
      CALLBACK_RETRY_MAX_DELAY_MS: '100',
      CALLBACK_RETRY_FOR_MS: '340',
      RBM_AGENTS: 'agent-a:1000,agent-b:1000',
      RBM_WEBHOOK_CLIENT_TOKENS: 'test-client-token-a',
      // The receiver runs on this machine, and the harness points at the emulator as at a real endpoint (no loopback by default).
      CALLBACK_ALLOW_HOSTS: '127.0.0.1',
    },
    emulator: { phoneDefaults: { deliveryDelayMs: 0, readDelayMs: 50, readProbability: 1 } },
  });
  await h.startHttp(); // points the emulator's webhooks at the service
  app = buildApi({
    producer: h.producer,
    revoke: h.service.revoke,
    callbacks: h.service.callbacks,
    apiKeys: [
      { key: KEY_1, agents: ['agent-a'] },
      { key: KEY_2, agents: ['agent-b'] },
    ],
    openWithoutKeys: false,
  });
  base = await app.listen({ port: 0, host: '127.0.0.1' });
  receiver = await startCallbackReceiver(({ body }) => {
    const { data } = JSON.parse(body) as Body;
    const key = `${data.messageId}/${data.state}`;
    const left = refuse.get(key) ?? 0;
    if (left <= 0) return 200;
    refuse.set(key, left - 1);
    return 500;
  });
  h.startDispatch();
  h.startInbound();
  h.startSms();
  h.startCallbacks();
});
afterAll(async () => {
  await app.close();
  await h.close();
  await receiver.close();
});

const as = (key: string) => ({ authorization: `Bearer ${key}` });
const call = (method: string, path: string, key: string, body?: unknown) => httpCall(base, method, path, body, as(key));
const msg = (to: string, agentId: string, extra: Record<string, unknown> = {}) => ({
  to,
  agentId,
  contentMessage: { text: 'hello' },
  ...extra,
});

type Body = {
  type: string;
  timestamp: string;
  data: { messageId: string; state: string; previousState: string; at: number; [k: string]: unknown };
};
/** Verifies a callback as its receiver would; throws WebhookVerificationError when the signature does not hold. */
const verify = (secret: string, r: ReceivedCallback) => new Webhook(secret).verify(r.body, r.headers) as Body;
const about = (messageId: string) => (r: ReceivedCallback) => r.status === 200 && (JSON.parse(r.body) as Body).data.messageId === messageId;
const inOrder = (list: ReceivedCallback[]) => list.map((r) => JSON.parse(r.body) as Body).sort((a, b) => a.data.at - b.data.at);

describe('status callbacks', () => {
  let secret1: string;

  it('an API key registers its URL and gets its own secret, derived from CALLBACK_SECRET', async () => {
    expect(await call('GET', '/v1/callback', KEY_1)).toMatchObject({ status: 200, body: { url: null, enabled: true } });
    const put = await call('PUT', '/v1/callback', KEY_1, { url: `${receiver.url}/key-1` });
    expect(put).toMatchObject({ status: 200, body: { url: `${receiver.url}/key-1`, enabled: true } });
    secret1 = put.body.secret;
    expect(secret1).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    const secret2 = (await call('GET', '/v1/callback', KEY_2)).body.secret;
    expect(new Set([secret1, secret2, SECRET]).size).toBe(3);
    expect((await call('GET', '/v1/callback', KEY_1)).body).toEqual({ url: `${receiver.url}/key-1`, secret: secret1, enabled: true });
  });

  it("every state change of a message is POSTed, signed per Standard Webhooks with the key's secret", async () => {
    const to = rcsPhone(1);
    const sent = await call('POST', '/v1/messages', KEY_1, msg(to, 'agent-a'));
    expect(sent.status).toBe(202);
    const id = sent.body.messageId as string;
    const got = await receiver.until(4, about(id));
    for (const r of got) {
      expect(r.path).toBe('/key-1');
      expect(r.headers['content-type']).toBe('application/json');
      const verified = verify(secret1, r);
      expect(verified.type).toBe('message.status_changed');
      expect(r.headers['webhook-id']).toBe(`${id}-${verified.data.state}-${verified.data.at}`);
      expect(Math.abs(Number(r.headers['webhook-timestamp']) - Date.now() / 1000)).toBeLessThan(60);
      // Another tenant's secret, or the master secret, does not verify it.
      expect(() => new Webhook(SECRET).verify(r.body, r.headers)).toThrow(WebhookVerificationError);
      // Numbers travel masked, as in logs.
      expect(r.body).not.toContain(to);
    }
    const changes = inOrder(got);
    expect(changes.map((b) => [b.data.previousState, b.data.state])).toEqual([
      ['QUEUED', 'SENDING'],
      ['SENDING', 'SENT'],
      ['SENT', 'DELIVERED'],
      ['DELIVERED', 'READ'],
    ]);
    expect(changes.map((b) => b.data.event)).toEqual([undefined, undefined, 'DELIVERED', 'READ']);
    expect(changes[0]!.data).toMatchObject({ messageId: id, agentId: 'agent-a' });
    expect(changes.map((b) => b.timestamp)).toEqual(changes.map((b) => new Date(b.data.at).toISOString()));
    // The same changes as the status timeline: one callback per move.
    const status = (await call('GET', `/v1/messages/${id}`, KEY_1)).body;
    expect(status.callbackUrl).toBe(`${receiver.url}/key-1`);
    expect(status.timeline.slice(1).map((t: { state: string; at: number }) => [t.state, t.at])).toEqual(
      changes.map((b) => [b.data.state, b.data.at]),
    );
  });

  it("a message's own callbackUrl wins; a key with no URL sends none; the library signs with CALLBACK_SECRET itself", async () => {
    const own = await call('POST', '/v1/messages', KEY_1, msg(rcsPhone(2), 'agent-a', { callbackUrl: `${receiver.url}/own` }));
    const none = await call('POST', '/v1/messages', KEY_2, msg(rcsPhone(3), 'agent-b'));
    const lib = await h.producer.sendMessage(msg(rcsPhone(4), 'agent-a', { callbackUrl: `${receiver.url}/library` }) as never);
    const [ownGot, libGot] = await Promise.all([receiver.until(4, about(own.body.messageId)), receiver.until(4, about(lib.messageId))]);
    for (const r of ownGot) {
      expect(r.path).toBe('/own');
      expect(verify(secret1, r).data.messageId).toBe(own.body.messageId);
    }
    for (const r of libGot) {
      expect(r.path).toBe('/library');
      expect(verify(SECRET, r).data.messageId).toBe(lib.messageId);
    }
    const read = await waitFor(
      async () => (await call('GET', `/v1/messages/${none.body.messageId}`, KEY_2)).body,
      (s) => s.state === 'READ',
    );
    expect(read.callbackUrl).toBeUndefined();
    expect(receiver.received.filter((r) => r.body.includes(none.body.messageId))).toEqual([]);
  });

  it("a batch's callbacks carry its batchId, and so do their replays", async () => {
    const batch = await call('POST', '/v1/messages:batch', KEY_1, { messages: [1, 2, 3].map((n) => msg(rcsPhone(10 + n), 'agent-a')) });
    expect(batch.status).toBe(202);
    const ids: string[] = batch.body.messageIds;
    const got = (await Promise.all(ids.map((id) => receiver.until(4, about(id))))).flat();
    expect(got.map((r) => verify(secret1, r).data.batchId)).toEqual(Array(12).fill(batch.body.batchId));
    const originals = got
      .filter((r) => r.body.includes(ids[0]!))
      .map((r) => r.body)
      .sort();
    expect((await call('POST', `/v1/messages/${ids[0]}/callbacks:replay`, KEY_1)).status).toBe(202);
    const again = (await receiver.until(8, about(ids[0]!)))
      .slice(4)
      .map((r) => r.body)
      .sort();
    expect(again).toEqual(originals);
  });

  it('the SMS fallback path is reported too, with its events', async () => {
    const sent = await call('POST', '/v1/messages', KEY_1, msg(NOT_RCS, 'agent-a', { fallback: { sms: { text: 'your code is 1234' } } }));
    const got = inOrder(await receiver.until(5, about(sent.body.messageId)));
    expect(got.map((b) => b.data.state)).toEqual(['SENDING', 'NOT_RCS', 'FALLBACK_QUEUED', 'FALLBACK_SENDING', 'FALLBACK_SENT']);
  });

  it('a receiver that fails is retried with the same webhook-id and body until it answers 2xx', async () => {
    const counter = async (name: string) =>
      Number((await h.redis.producer.hget(metricsKey(h.config.queuePrefix), `callback|${name}`)) ?? 0);
    const retriedBefore = await counter('retried');
    const id = '0b6c1a52-5f7e-4c1d-9a3b-2e8f4d6c1a01';
    refuse.set(`${id}/SENT`, 2);
    await call('POST', '/v1/messages', KEY_1, msg(rcsPhone(5), 'agent-a', { messageId: id }));
    await receiver.until(4, about(id));
    const tries = receiver.received.filter((r) => r.body.includes(id) && verify(secret1, r).data.state === 'SENT');
    expect(tries.map((r) => r.status)).toEqual([500, 500, 200]);
    expect(new Set(tries.map((r) => r.headers['webhook-id'])).size).toBe(1);
    expect(new Set(tries.map((r) => r.body)).size).toBe(1);
    expect((await counter('retried')) - retriedBefore).toBe(2);
  });

  it('after the retry horizon the delivery fails for good; replay sends every change again, same IDs and bodies', async () => {
    const counter = async (name: string) =>
      Number((await h.redis.producer.hget(metricsKey(h.config.queuePrefix), `callback|${name}`)) ?? 0);
    const failedBefore = await counter('failed');
    const id = '0b6c1a52-5f7e-4c1d-9a3b-2e8f4d6c1a02';
    refuse.set(`${id}/SENDING`, Infinity);
    await call('POST', '/v1/messages', KEY_1, msg(rcsPhone(6), 'agent-a', { messageId: id }));
    await receiver.until(3, about(id)); // SENT, DELIVERED, READ got through
    const refused = await receiver.until(6, (r) => r.status === 500 && r.body.includes(id));
    const webhookId = refused[0]!.headers['webhook-id']!;
    await expect(h.outcomeOn(CALLBACK_QUEUE, deliverCallbackJobId(webhookId))).rejects.toThrow(/answered 500/);
    // The first try and five retries: the whole schedule, then no more.
    expect(receiver.received.filter((r) => r.status === 500 && r.body.includes(id))).toHaveLength(6);
    expect((await counter('failed')) - failedBefore).toBe(1);

    refuse.delete(`${id}/SENDING`);
    const originals = new Map(receiver.received.filter((r) => r.body.includes(id)).map((r) => [r.headers['webhook-id']!, r.body]));
    expect(originals.size).toBe(4);
    const replay = await call('POST', `/v1/messages/${id}/callbacks:replay`, KEY_1);
    expect(replay).toEqual({ status: 202, body: { messageId: id, replayed: 4, url: `${receiver.url}/key-1` } });
    // 3 delivered the first time, then all 4 again.
    const delivered = await receiver.until(7, about(id));
    for (const [webhookId, body] of originals) {
      const again = delivered.filter((r) => r.headers['webhook-id'] === webhookId);
      expect(again.length).toBeGreaterThanOrEqual(1);
      expect(again.at(-1)!.body).toBe(body); // the replay is the same change, not a new one
      expect(verify(secret1, again.at(-1)!).data.messageId).toBe(id);
    }
  });

  it.each([
    ['no body', undefined, ''],
    ['a list', [1], ''],
    ['no url', {}, 'url'],
    ['an ftp URL', { url: 'ftp://example.com/x' }, 'url'],
    ['not a URL', { url: 'status-endpoint' }, 'url'],
    ['a number', { url: 42 }, 'url'],
    ['an unknown field', { url: 'https://example.com/x', secret: 'mine' }, 'secret'],
  ])('PUT /v1/callback with %s → 400 naming %s, and the registered URL stays', async (_name, body, path) => {
    const before = (await call('GET', '/v1/callback', KEY_1)).body.url;
    const res = await call('PUT', '/v1/callback', KEY_1, body);
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('PAYLOAD_INVALID');
    expect(res.body.error.details.map((d: { path: string }) => d.path)).toContain(path);
    expect((await call('GET', '/v1/callback', KEY_1)).body.url).toBe(before);
  });

  it("DELETE /v1/callback removes the key's URL: 204, then 404", async () => {
    expect((await call('PUT', '/v1/callback', KEY_2, { url: `${receiver.url}/key-2` })).status).toBe(200);
    expect((await call('DELETE', '/v1/callback', KEY_2)).status).toBe(204);
    expect((await call('GET', '/v1/callback', KEY_2)).body.url).toBeNull();
    expect(await call('DELETE', '/v1/callback', KEY_2)).toMatchObject({ status: 404, body: { error: { code: 'NOT_FOUND' } } });
  });

  it('replay refuses what it cannot do', async () => {
    const unknown = await call('POST', '/v1/messages/0b6c1a52-5f7e-4c1d-9a3b-2e8f4d6c1aff/callbacks:replay', KEY_1);
    expect(unknown).toMatchObject({ status: 404, body: { error: { code: 'NOT_FOUND' } } });
    const foreign = await call('POST', '/v1/messages/0b6c1a52-5f7e-4c1d-9a3b-2e8f4d6c1a02/callbacks:replay', KEY_2);
    expect(foreign).toMatchObject({ status: 404, body: { error: { code: 'NOT_FOUND' } } });
    const plain = await call('POST', '/v1/messages', KEY_2, msg(rcsPhone(7), 'agent-b'));
    await waitFor(
      async () => (await call('GET', `/v1/messages/${plain.body.messageId}`, KEY_2)).body,
      (s) => s.state === 'READ',
    );
    const none = await call('POST', `/v1/messages/${plain.body.messageId}/callbacks:replay`, KEY_2);
    expect(none).toMatchObject({ status: 409, body: { error: { code: 'NO_CALLBACK' } } });
  });
});

describe('the callback retry schedule', () => {
  it('by default doubles from 5 s to an hourly cap and stops within 24 h: 33 attempts', () => {
    const delays = retryDelays({ baseMs: 5000, maxDelayMs: 3_600_000, forMs: 86_400_000 });
    expect(delays.slice(0, 4)).toEqual([5000, 10_000, 20_000, 40_000]);
    expect(Math.max(...delays)).toBe(3_600_000);
    const total = delays.reduce((a, b) => a + b, 0);
    expect(total).toBeLessThanOrEqual(86_400_000);
    expect(total + 3_600_000).toBeGreaterThan(86_400_000); // one more hourly retry would pass the horizon
    expect(delays).toHaveLength(32);
    const next = backoffStrategy({ baseMs: 5000, maxDelayMs: 3_600_000, forMs: 86_400_000 });
    expect([1, 2, 11, 32].map(next)).toEqual([5000, 10_000, 3_600_000, 3_600_000]);
  });

  it('a zero horizon means one attempt and no retry', () => {
    expect(retryDelays({ baseMs: 5000, maxDelayMs: 3_600_000, forMs: 0 })).toEqual([]);
  });
});
