/**
 * A table of bad requests to the producer API: each gets its documented
 * status and error code, in the one error shape, and nothing is queued.
 * No workers run here, so the queue counts are still.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Queue } from 'bullmq';
import type { FastifyInstance } from 'fastify';
import { outboundQueueName } from '../jobs/index.ts';
import { buildApi } from '../src/api/app.ts';
import { httpCall, startHarness, type Harness } from './helpers.ts';

let h: Harness;
let base: string;
let keyed: FastifyInstance;
let keyedBase: string;
let queueA: Queue;
let queueB: Queue;
const KEY_A = 'key-for-agent-a-only-0001';

beforeAll(async () => {
  h = await startHarness({ name: 'api-bad', env: { RBM_AGENTS: 'agent-a:100,agent-b:100' } });
  base = await h.startHttp();
  keyed = buildApi({
    producer: h.producer,
    revoke: h.service.revoke,
    apiKeys: [{ key: KEY_A, agents: ['agent-a'] }],
    openWithoutKeys: false,
  });
  keyedBase = await keyed.listen({ port: 0, host: '127.0.0.1' });
  queueA = new Queue(outboundQueueName('agent-a'), { connection: h.redis.producer, prefix: h.service.keyspace.of('agent-a') });
  queueB = new Queue(outboundQueueName('agent-b'), { connection: h.redis.producer, prefix: h.service.keyspace.of('agent-b') });
});
afterAll(async () => {
  await keyed.close();
  await queueA.close();
  await queueB.close();
  await h.close();
});

const msg = (to: string, extra: Record<string, unknown> = {}) => ({ to, agentId: 'agent-a', contentMessage: { text: 'hello' }, ...extra });
const queued = async () =>
  (await queueA.count()) + (await queueB.count()) + (await h.redis.producer.keys(`${h.config.queuePrefix}:batch:*`)).length;

type Row = [
  name: string,
  method: string,
  path: string,
  body: unknown,
  headers: Record<string, string>,
  status: number,
  code: string,
  url?: 'keyed',
];

const bad: Row[] = [
  ['bad JSON', 'POST', '/v1/messages', '{"to":', {}, 400, 'BODY_INVALID_JSON'],
  [
    'a large batch body that is not JSON (parsed in its own turn)',
    'POST',
    '/v1/messages:batch',
    `{"messages":[${'1,'.repeat(600_000)}]`,
    {},
    400,
    'BODY_INVALID_JSON',
  ],
  [
    'a __proto__ key in the body',
    'POST',
    '/v1/messages',
    '{"to":"+12223334444","__proto__":{"agentId":"agent-b"}}',
    {},
    400,
    'BODY_INVALID_JSON',
  ],
  [
    'a message body over 1 MiB',
    'POST',
    '/v1/messages',
    msg('+12223334444', { contentMessage: { text: 'x'.repeat(1_100_000) } }),
    {},
    413,
    'BODY_TOO_LARGE',
  ],
  ['text/plain body', 'POST', '/v1/messages', 'hi', { 'content-type': 'text/plain' }, 415, 'UNSUPPORTED_MEDIA_TYPE'],
  ['a JSON array for a message', 'POST', '/v1/messages', [1], {}, 400, 'PAYLOAD_INVALID'],
  ['no to', 'POST', '/v1/messages', { agentId: 'agent-a', contentMessage: { text: 'x' } }, {}, 400, 'PAYLOAD_INVALID'],
  ['bad E.164', 'POST', '/v1/messages', msg('12223334444'), {}, 400, 'PAYLOAD_INVALID'],
  ['no content', 'POST', '/v1/messages', msg('+12223334444', { contentMessage: {} }), {}, 400, 'PAYLOAD_INVALID'],
  [
    'text too long',
    'POST',
    '/v1/messages',
    msg('+12223334444', { contentMessage: { text: 'x'.repeat(3073) } }),
    {},
    400,
    'PAYLOAD_INVALID',
  ],
  [
    'ttl and expireTime',
    'POST',
    '/v1/messages',
    msg('+12223334444', { ttl: '5s', expireTime: '2099-01-01T00:00:00Z' }),
    {},
    400,
    'PAYLOAD_INVALID',
  ],
  ['unknown agent', 'POST', '/v1/messages', msg('+12223334444', { agentId: 'ghost' }), {}, 400, 'UNKNOWN_AGENT'],
  [
    'no agent with two configured',
    'POST',
    '/v1/messages',
    { to: '+12223334444', contentMessage: { text: 'x' } },
    {},
    400,
    'PAYLOAD_INVALID',
  ],
  ['non-UUID messageId', 'POST', '/v1/messages', msg('+12223334444', { messageId: 'abc' }), {}, 400, 'PAYLOAD_INVALID'],
  ['batch: not an object', 'POST', '/v1/messages:batch', [msg('+12223334444')], {}, 400, 'PAYLOAD_INVALID'],
  ['batch: no messages', 'POST', '/v1/messages:batch', {}, {}, 400, 'PAYLOAD_INVALID'],
  ['batch: messages not a list', 'POST', '/v1/messages:batch', { messages: 'x' }, {}, 400, 'PAYLOAD_INVALID'],
  ['batch: empty', 'POST', '/v1/messages:batch', { messages: [] }, {}, 400, 'PAYLOAD_INVALID'],
  [
    'batch: 10,001 items',
    'POST',
    '/v1/messages:batch',
    { messages: Array.from({ length: 10_001 }, () => msg('+12223334444')) },
    {},
    400,
    'PAYLOAD_INVALID',
  ],
  [
    'batch: one bad item among 100',
    'POST',
    '/v1/messages:batch',
    { messages: Array.from({ length: 100 }, (_, i) => msg(i === 57 ? '+1' : '+12223334444')) },
    {},
    400,
    'PAYLOAD_INVALID',
  ],
  [
    'batch: an unknown extra field',
    'POST',
    '/v1/messages:batch',
    { messages: [msg('+12223334444')], priority: 1 },
    {},
    400,
    'PAYLOAD_INVALID',
  ],
  ['event: no eventType', 'POST', '/v1/events', { to: '+12223334444', agentId: 'agent-a' }, {}, 400, 'PAYLOAD_INVALID'],
  [
    'event: READ without messageId',
    'POST',
    '/v1/events',
    { to: '+12223334444', agentId: 'agent-a', eventType: 'READ' },
    {},
    400,
    'PAYLOAD_INVALID',
  ],
  [
    'event: IS_TYPING with messageId',
    'POST',
    '/v1/events',
    { to: '+12223334444', agentId: 'agent-a', eventType: 'IS_TYPING', messageId: 'm' },
    {},
    400,
    'PAYLOAD_INVALID',
  ],
  ['events batch: empty', 'POST', '/v1/events:batch', { events: [] }, {}, 400, 'PAYLOAD_INVALID'],
  [
    'events batch: one bad item',
    'POST',
    '/v1/events:batch',
    {
      events: [
        { to: '+12223334444', agentId: 'agent-a', eventType: 'READ', messageId: 'm' },
        { to: 'x', agentId: 'agent-a', eventType: 'IS_TYPING' },
      ],
    },
    {},
    400,
    'PAYLOAD_INVALID',
  ],
  [
    'revoke with a bad fallback flag',
    'DELETE',
    '/v1/messages/00000000-0000-4000-8000-000000000001?fallback=yes',
    undefined,
    {},
    400,
    'PAYLOAD_INVALID',
  ],
  ['revoke of an unknown message', 'DELETE', '/v1/messages/00000000-0000-4000-8000-000000000001', undefined, {}, 404, 'NOT_FOUND'],
  ['status of an unknown message', 'GET', '/v1/messages/00000000-0000-4000-8000-000000000001', undefined, {}, 404, 'NOT_FOUND'],
  ['an unknown batch', 'GET', '/v1/batches/00000000-0000-4000-8000-000000000001', undefined, {}, 404, 'NOT_FOUND'],
  ['an unknown route', 'POST', '/v1/messagez', msg('+12223334444'), {}, 404, 'NOT_FOUND'],
  ['a path that only starts like a batch route', 'POST', '/v1/messagesbatch', { messages: [msg('+12223334444')] }, {}, 404, 'NOT_FOUND'],
  ['an unknown custom method', 'POST', '/v1/events:purge', { events: [] }, {}, 404, 'NOT_FOUND'],
  [
    'callbackUrl not http(s)',
    'POST',
    '/v1/messages',
    msg('+12223334444', { callbackUrl: 'ftp://example.com/status' }),
    {},
    400,
    'PAYLOAD_INVALID',
  ],
  ['callbackUrl not a URL', 'POST', '/v1/messages', msg('+12223334444', { callbackUrl: 'example.com/status' }), {}, 400, 'PAYLOAD_INVALID'],
  [
    'callbackUrl while callbacks are off (no CALLBACK_SECRET)',
    'POST',
    '/v1/messages',
    msg('+12223334444', { callbackUrl: 'https://example.com/status' }),
    {},
    400,
    'PAYLOAD_INVALID',
  ],
  [
    'batch: one callbackUrl too long',
    'POST',
    '/v1/messages:batch',
    { messages: [msg('+12223334444'), msg('+12223334444', { callbackUrl: `https://example.com/${'x'.repeat(2048)}` })] },
    {},
    400,
    'PAYLOAD_INVALID',
  ],
  [
    'registering a callback URL while callbacks are off',
    'PUT',
    '/v1/callback',
    { url: 'https://example.com/status' },
    {},
    400,
    'PAYLOAD_INVALID',
  ],
  [
    'replay for an unknown message',
    'POST',
    '/v1/messages/00000000-0000-4000-8000-000000000001/callbacks:replay',
    undefined,
    {},
    404,
    'NOT_FOUND',
  ],
  ['no API key', 'POST', '/v1/messages', msg('+12223334444'), {}, 401, 'UNAUTHENTICATED', 'keyed'],
  [
    'a wrong API key',
    'POST',
    '/v1/messages',
    msg('+12223334444'),
    { authorization: 'Bearer not-a-key-at-all-000' },
    401,
    'UNAUTHENTICATED',
    'keyed',
  ],
  [
    "another agent's message",
    'POST',
    '/v1/messages',
    msg('+12223334444', { agentId: 'agent-b' }),
    { authorization: `Bearer ${KEY_A}` },
    403,
    'FORBIDDEN',
    'keyed',
  ],
  [
    "a batch with one of another agent's messages",
    'POST',
    '/v1/messages:batch',
    { messages: [msg('+12223334444'), msg('+12223334445', { agentId: 'agent-b' })] },
    { authorization: `Bearer ${KEY_A}` },
    403,
    'FORBIDDEN',
    'keyed',
  ],
];

describe('bad requests', () => {
  it.each(bad)('%s → %s', async (_name, method, path, body, headers, status, code, url) => {
    const before = await queued();
    const res = await httpCall(url === 'keyed' ? keyedBase : base, method, path, body, headers);
    expect(res.status).toBe(status);
    expect(res.body.error.code).toBe(code);
    expect(Array.isArray(res.body.error.details)).toBe(true);
    expect(await queued()).toBe(before);
  });

  it('name every problem of a bad batch item with its path', async () => {
    const messages = Array.from({ length: 3 }, () => msg('+12223334444'));
    messages[2] = msg('+1', { contentMessage: { text: '' } });
    const res = await httpCall(base, 'POST', '/v1/messages:batch', { messages });
    expect(res.body.error.details.map((d: { path: string }) => d.path).sort()).toEqual(['messages.2.contentMessage.text', 'messages.2.to']);
  });
});
