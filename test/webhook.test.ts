/**
 * The webhook receiver over real HTTP with a real Redis: every malformed or
 * forged request gets its status code and leaves nothing behind (no job, no
 * dedupe key); good ones are queued once.
 */
import { staticAgents } from '../src/agents/live.ts';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Queue } from 'bullmq';
import type { FastifyInstance } from 'fastify';
import { INBOUND_QUEUE } from '../jobs/index.ts';
import { buildApi } from '../src/api/app.ts';
import { createRedis, whenReady } from '../src/queue/connection.ts';
import { StreamInboundIntake } from '../src/queue/inbound-stream.ts';
import { contractJobOptions } from '../src/queue/job-options.ts';
import { JobQueues } from '../src/queue/job-queues.ts';
import { Producer } from '../src/queue/producer.ts';
import { intakeStreamKey, StatusStore } from '../src/status/store.ts';
import { newWebhookCounters } from '../src/webhook/receiver.ts';
import { signWebhookData } from '../src/webhook/signature.ts';
import { redisUrl, uniquePrefix } from './helpers.ts';

const prefix = uniquePrefix('webhook');
const TOKENS = { 'agent-a': 'token-of-agent-a-0001', 'agent-b': 'token-of-agent-b-0002' };
const LIMIT = 4096;
let app: FastifyInstance;
let url: string;
let queue: Queue;
let redis: ReturnType<typeof createRedis>;
let intake: StreamInboundIntake;
let producer: Producer;
let jobQueues: JobQueues;
const counters = newWebhookCounters();

beforeAll(async () => {
  redis = createRedis(redisUrl(), 'producer');
  await whenReady(redis);
  intake = new StreamInboundIntake(redis, { prefix, dedupeTtlMs: 60_000 });
  jobQueues = new JobQueues(redis, prefix, contractJobOptions);
  producer = await Producer.create({
    queues: jobQueues,
    agents: staticAgents([{ agentId: 'agent-a', ratePerSec: 10 }]),
    status: new StatusStore(redis, { prefix, ttlMs: 60_000 }),
  });
  app = buildApi({
    producer,
    apiKeys: [],
    openWithoutKeys: false,
    webhook: { clientTokens: TOKENS, intake, bodyLimitBytes: LIMIT, counters },
  });
  url = `${await app.listen({ port: 0, host: '127.0.0.1' })}/webhooks/rbm`;
  queue = new Queue(INBOUND_QUEUE, { connection: redis, prefix });
});
afterAll(async () => {
  await app.close();
  await queue.close();
  await jobQueues.close();
  const keys = await redis.keys(`${prefix}:*`);
  if (keys.length) await redis.del(...keys);
  await redis.quit();
});
beforeEach(async () => {
  const keys = await redis.keys(`${prefix}:*`);
  if (keys.length) await redis.del(...keys);
});

const delivered = (eventId = 'evt-1', agent = 'agent-a') => ({
  senderPhoneNumber: '+12223334444',
  eventType: 'DELIVERED',
  eventId,
  messageId: '8a0d3b9e-5c1f-4f6e-9b7a-2d4c6e8f0a1b',
  sendTime: '2026-11-21T10:00:00Z',
  agentId: `${agent}@rbm.goog`,
});

function envelope(payload: unknown, extra: Record<string, unknown> = {}) {
  const data = Buffer.from(typeof payload === 'string' ? payload : JSON.stringify(payload));
  return {
    data,
    body: {
      message: {
        attributes: { business_id: 'agent-a@rbm.goog', product: 'RBM', type: 'event' },
        data: data.toString('base64'),
        messageId: '1415',
        publishTime: '2026-11-21T10:00:00Z',
        ...extra,
      },
      subscription: 'projects/p/subscriptions/s',
    },
  };
}

async function post(body: string | object, headers: Record<string, string> = {}) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, text, json: text.startsWith('{') ? JSON.parse(text) : undefined };
}

function signed(payload: unknown, token = TOKENS['agent-a'], extra: Record<string, unknown> = {}) {
  const { data, body } = envelope(payload, extra);
  return { body, headers: { 'x-goog-signature': signWebhookData(token, data) } };
}

/** Events queued for the inbound worker (stream entries), jobs, and dedupe keys. */
async function leftBehind(): Promise<{ jobs: number; dedupeKeys: number }> {
  const counts = await queue.getJobCounts('waiting', 'prioritized', 'delayed', 'active', 'completed', 'failed');
  const jobs = Object.values(counts).reduce((a, b) => a + b, 0) + (await redis.xlen(intakeStreamKey(prefix)));
  return { jobs, dedupeKeys: (await redis.keys(`${prefix}:webhook-seen:*`)).length };
}

async function queued(): Promise<Array<{ kind: string; agentId: string; payload: unknown; envelopeMessageId?: string }>> {
  return (await redis.xrange(intakeStreamKey(prefix), '-', '+')).map(([, fields]) => JSON.parse(fields[1]!));
}

const b64 = (s: string) => Buffer.from(s).toString('base64');

type Row = [name: string, request: () => { body: string | object; headers?: Record<string, string> }, status: number, code: string];

const rows: Row[] = [
  ['bad JSON', () => ({ body: '{"message":' }), 400, 'BODY_INVALID_JSON'],
  ['empty body', () => ({ body: '' }), 400, 'BODY_INVALID_JSON'],
  ['a JSON array', () => ({ body: [1, 2] }), 400, 'ENVELOPE_INVALID'],
  ['a JSON string', () => ({ body: '"hello"' }), 400, 'ENVELOPE_INVALID'],
  ['no message', () => ({ body: { subscription: 's' } }), 400, 'ENVELOPE_INVALID'],
  ['message not an object', () => ({ body: { message: 'x' } }), 400, 'ENVELOPE_INVALID'],
  ['no data', () => ({ body: { message: { attributes: {} } } }), 400, 'ENVELOPE_INVALID'],
  ['data a number', () => ({ body: { message: { data: 42 } } }), 400, 'ENVELOPE_INVALID'],
  ['data empty', () => ({ body: { message: { data: '' } } }), 400, 'ENVELOPE_INVALID'],
  ['data not base64', () => ({ body: { message: { data: '%%%%' } } }), 400, 'DATA_NOT_BASE64'],
  ['data base64 without padding', () => ({ body: { message: { data: b64('{"a":1}').replace(/=+$/, '') } } }), 400, 'DATA_NOT_BASE64'],
  ['data not JSON', () => ({ body: { message: { data: b64('not json at all') } } }), 400, 'DATA_NOT_JSON'],
  ['data a JSON array', () => ({ body: { message: { data: b64('[1,2,3]') } } }), 400, 'DATA_NOT_JSON'],
  [
    'data not UTF-8',
    () => ({ body: { message: { data: Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]).toString('base64') } } }),
    400,
    'DATA_NOT_JSON',
  ],
  ['attributes not an object', () => ({ body: { message: { data: b64('{}'), attributes: 'x' } } }), 400, 'ENVELOPE_INVALID'],
  ['oversized body', () => ({ body: { message: { data: b64('{}'), pad: 'x'.repeat(LIMIT) } } }), 413, 'BODY_TOO_LARGE'],
  ['text/plain body', () => ({ body: 'hello', headers: { 'content-type': 'text/plain' } }), 415, 'UNSUPPORTED_MEDIA_TYPE'],
  ['no signature', () => ({ body: envelope(delivered()).body }), 401, 'SIGNATURE_INVALID'],
  [
    'wrong signature',
    () => ({ body: envelope(delivered()).body, headers: { 'x-goog-signature': signWebhookData('not-the-token', Buffer.from('{}')) } }),
    401,
    'SIGNATURE_INVALID',
  ],
  ["signed with another agent's token", () => signed(delivered(), TOKENS['agent-b']), 401, 'SIGNATURE_INVALID'],
  [
    'signature over other bytes (data tampered)',
    () => {
      const s = signed(delivered());
      const tampered = { ...s.body, message: { ...s.body.message, data: b64(JSON.stringify({ ...delivered(), eventType: 'READ' })) } };
      return { body: tampered, headers: s.headers };
    },
    401,
    'SIGNATURE_INVALID',
  ],
  ['an agent with no token', () => signed(delivered('e', 'agent-z'), TOKENS['agent-a']), 401, 'SIGNATURE_INVALID'],
];

describe('POST /webhooks/rbm refuses', () => {
  it.each(rows)('%s', async (_name, request, status, code) => {
    const before = { ...counters };
    const { body, headers } = request();
    const res = await post(body, headers);
    expect(res.status).toBe(status);
    expect(res.json?.error?.code).toBe(code);
    expect(await leftBehind()).toEqual({ jobs: 0, dedupeKeys: 0 });
    expect(counters.queued).toBe(before.queued);
  });

  it('a handshake with an unknown client token: 403, nothing written', async () => {
    const res = await post({ clientToken: 'guess', secret: '1234567890' });
    expect(res.status).toBe(403);
    expect(res.text).not.toContain('1234567890');
    expect(await leftBehind()).toEqual({ jobs: 0, dedupeKeys: 0 });
  });

  it('a signed payload of unknown kind: acknowledged (200) so RBM stops retrying, not queued', async () => {
    const s = signed({ agentId: 'agent-a@rbm.goog', somethingNew: true });
    expect((await post(s.body, s.headers)).status).toBe(200);
    expect(await leftBehind()).toEqual({ jobs: 0, dedupeKeys: 0 });
  });
});

describe('POST /webhooks/rbm accepts', () => {
  it('the verification handshake with the plain secret', async () => {
    const res = await post({ clientToken: TOKENS['agent-b'], secret: '1234567890' });
    expect(res).toMatchObject({ status: 200, text: '1234567890' });
  });

  it('a signed event once: a redelivery with the same eventId is acknowledged and dropped', async () => {
    const first = signed(delivered('evt-42'));
    expect((await post(first.body, first.headers)).status).toBe(200);
    // Pub/Sub redelivers with a new envelope ID; the RBM eventId is what repeats.
    const again = signed(delivered('evt-42'), TOKENS['agent-a'], { messageId: '9999' });
    expect((await post(again.body, again.headers)).status).toBe(200);
    const events = await queued();
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ kind: 'userEvent', agentId: 'agent-a', payload: delivered('evt-42'), envelopeMessageId: '1415' });
    expect(await leftBehind()).toEqual({ jobs: 1, dedupeKeys: 1 });
  });

  it('classifies user messages, user events and server events (spec §6.7)', async () => {
    const payloads = [
      { senderPhoneNumber: '+12223334444', messageId: 'MxAbc', text: 'hi', agentId: 'agent-a@rbm.goog' },
      { phoneNumber: '+12223334444', eventType: 'TTL_EXPIRATION_REVOKED', eventId: 'srv-1', messageId: 'm', agentId: 'agent-a@rbm.goog' },
      delivered('evt-7'),
    ];
    for (const p of payloads) {
      const s = signed(p);
      expect((await post(s.body, s.headers)).status).toBe(200);
    }
    const kinds = (await queued()).map((e) => e.kind).sort();
    expect(kinds).toEqual(['serverEvent', 'userEvent', 'userMessage']);
  });
});
