/** The producer HTTP API over real HTTP: the shapes of DESIGN.md "Public shapes". */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { Queue } from 'bullmq';
import { outboundQueueName } from '../jobs/index.ts';
import { buildApi } from '../src/api/app.ts';
import { startHarness, type Harness } from './helpers.ts';

let h: Harness;
let open: FastifyInstance;
let keyed: FastifyInstance;
let openUrl: string;
let keyedUrl: string;
let queue: Queue;
const KEY = 'k-0123456789abcdef';
const KEY_2 = 'k-second-producer-0001';

beforeAll(async () => {
  h = await startHarness({ name: 'api', env: { RBM_AGENTS: 'agent-a:100,agent-b:100' } });
  open = buildApi({ producer: h.producer, apiKeys: [], openWithoutKeys: true, callbacks: h.service.callbacks });
  keyed = buildApi({
    producer: h.producer,
    apiKeys: [
      { key: KEY, agents: ['agent-a'] },
      { key: KEY_2, agents: ['agent-a'] },
    ],
    openWithoutKeys: false,
  });
  openUrl = await open.listen({ port: 0, host: '127.0.0.1' });
  keyedUrl = await keyed.listen({ port: 0, host: '127.0.0.1' });
  queue = new Queue(outboundQueueName('agent-a'), { connection: h.redis.producer, prefix: h.service.keyspace.of('agent-a') });
});
afterAll(async () => {
  await queue.close();
  await open.close();
  await keyed.close();
  await h.close();
});

async function post(base: string, body: string | object, headers: Record<string, string> = {}) {
  const res = await fetch(`${base}/v1/messages`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as any };
}

const message = { to: '+12223334444', agentId: 'agent-a', contentMessage: { text: 'hi' } };

describe('HTTP API', () => {
  it('POST /v1/messages answers 202 {messageId, state}; GET reads the status back', async () => {
    const res = await post(openUrl, message);
    expect(res.status).toBe(202);
    expect(res.body).toMatchObject({ state: 'QUEUED', duplicate: false });
    const status = await fetch(`${openUrl}/v1/messages/${res.body.messageId}`);
    expect(status.status).toBe(200);
    expect(await status.json()).toMatchObject({ messageId: res.body.messageId, state: 'QUEUED', to: '+1222***4444', agentId: 'agent-a' });
  });

  it('an Idempotency-Key header makes a retried POST return the same ID and queue nothing', async () => {
    const before = await queue.count();
    const a = await post(openUrl, message, { 'idempotency-key': 'checkout-7' });
    const b = await post(openUrl, message, { 'idempotency-key': 'checkout-7' });
    expect(b.body.messageId).toBe(a.body.messageId);
    expect(b.body.duplicate).toBe(true);
    expect(await queue.count()).toBe(before + 1);
  });

  it('bad input gets 400 with every problem and its path, in the one error shape, and queues nothing', async () => {
    const before = await queue.count();
    const res = await post(openUrl, {
      to: '12223334444',
      agentId: 'agent-a',
      contentMessage: { text: 'x'.repeat(3073) },
      ttl: '5s',
      expireTime: '2030-01-01T00:00:00Z',
    });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('PAYLOAD_INVALID');
    expect(res.body.error.details.map((d: { path: string }) => d.path).sort()).toEqual(['', 'contentMessage.text', 'to'].sort());
    expect(await queue.count()).toBe(before);
  });

  it('names bad JSON, an unknown agent and an unknown message in the same shape', async () => {
    const bad = await post(openUrl, '{"to":');
    expect(bad).toMatchObject({ status: 400, body: { error: { code: 'BODY_INVALID_JSON', details: [] } } });
    const agent = await post(openUrl, { ...message, agentId: 'ghost' });
    expect(agent).toMatchObject({ status: 400, body: { error: { code: 'UNKNOWN_AGENT', details: [{ path: 'agentId' }] } } });
    const unknown = await fetch(`${openUrl}/v1/messages/00000000-0000-4000-8000-000000000000`);
    expect(unknown.status).toBe(404);
    expect(((await unknown.json()) as any).error.code).toBe('NOT_FOUND');
    const wrongType = await fetch(`${openUrl}/v1/messages`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'hi' });
    expect(wrongType.status).toBe(415);
  });

  it('with API keys: 401 without a valid Bearer key, 403 for an agent the key may not use', async () => {
    expect((await post(keyedUrl, message)).status).toBe(401);
    expect((await post(keyedUrl, message, { authorization: 'Bearer wrong-key-0000000000' })).status).toBe(401);
    expect((await post(keyedUrl, { ...message, agentId: 'agent-b' }, { authorization: `Bearer ${KEY}` })).status).toBe(403);
    expect((await post(keyedUrl, message, { authorization: `Bearer ${KEY}` })).status).toBe(202);
  });

  it('idempotency keys belong to their API key: two producers with one key and one agent never share an ID', async () => {
    const headers = (key: string) => ({ authorization: `Bearer ${key}`, 'idempotency-key': 'order-42' });
    const first = await post(keyedUrl, message, headers(KEY));
    const second = await post(keyedUrl, message, headers(KEY_2));
    expect(first.body.duplicate).toBe(false);
    expect(second.body.duplicate).toBe(false);
    expect(second.body.messageId).not.toBe(first.body.messageId);
    expect((await post(keyedUrl, message, headers(KEY))).body).toMatchObject({ messageId: first.body.messageId, duplicate: true });
    // The library (and an API without keys) keeps its own namespace.
    const library = await h.producer.sendMessage({ ...message, idempotencyKey: 'order-42' } as never);
    expect(new Set([library.messageId, first.body.messageId, second.body.messageId]).size).toBe(3);
    expect((await post(openUrl, message, { 'idempotency-key': 'order-42' })).body).toMatchObject({
      messageId: library.messageId,
      duplicate: true,
    });
    // Batches and events likewise.
    const batch = (key: string) =>
      fetch(`${keyedUrl}/v1/messages:batch`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers(key) },
        body: JSON.stringify({ messages: [message] }),
      }).then((r) => r.json() as Promise<{ batchId: string; duplicates: number }>);
    const [b1, b2] = [await batch(KEY), await batch(KEY_2)];
    expect(b1.batchId).not.toBe(b2.batchId);
    expect([b1.duplicates, b2.duplicates]).toEqual([0, 0]);
    const event = (key: string) =>
      fetch(`${keyedUrl}/v1/events`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers(key) },
        body: JSON.stringify({ to: message.to, agentId: 'agent-a', eventType: 'IS_TYPING' }),
      }).then((r) => r.json() as Promise<{ eventId: string; duplicate: boolean }>);
    const [e1, e2] = [await event(KEY), await event(KEY_2)];
    expect(e1.eventId).not.toBe(e2.eventId);
    expect([e1.duplicate, e2.duplicate]).toEqual([false, false]);
    expect((await event(KEY)).duplicate).toBe(true);
  });

  it('serves an OpenAPI document generated from the job schemas, and a browsable UI', async () => {
    const doc = (await (await fetch(`${openUrl}/openapi.json`)).json()) as {
      openapi: string;
      paths: Record<
        string,
        Record<
          string,
          { requestBody?: { content: { 'application/json': { schema: { properties: Record<string, unknown>; required?: string[] } } } } }
        >
      >;
    };
    expect(doc.openapi).toMatch(/^3\./);
    expect(Object.keys(doc.paths).sort()).toEqual(
      expect.arrayContaining([
        '/v1/messages',
        '/v1/messages:batch',
        '/v1/messages/{id}',
        '/v1/batches/{id}',
        '/v1/events',
        '/v1/events:batch',
        '/v1/callback',
        '/v1/messages/{id}/callbacks:replay',
      ]),
    );
    const message = doc.paths['/v1/messages']!.post!.requestBody!.content['application/json'].schema;
    expect(Object.keys(message.properties)).toEqual(
      expect.arrayContaining(['to', 'contentMessage', 'messageTrafficType', 'ttl', 'fallback', 'idempotencyKey', 'callbackUrl']),
    );
    expect(message.properties).not.toHaveProperty('sendTime');
    const ui = await fetch(`${openUrl}/docs`, { redirect: 'follow' });
    expect(ui.status).toBe(200);
    expect(await ui.text()).toContain('swagger');
  });

  it('without API keys against a real endpoint, refuses everyone', async () => {
    const closed = buildApi({ producer: h.producer, apiKeys: [], openWithoutKeys: false });
    const res = await closed.inject({ method: 'POST', url: '/v1/messages', payload: message });
    expect(res.statusCode).toBe(401);
    expect(res.json().error.message).toContain('API_KEYS');
    await closed.close();
  });
});
