/**
 * The HTTP server against hostile or careless clients, over real sockets and
 * a real Redis: lookups keyed by outside input find nothing for '__proto__'
 * and friends, a slow body, slow headers and an idle keep-alive connection are
 * closed within their timeouts, request lines in the log carry no full phone
 * number, and the Authorization scheme is read case-insensitively.
 */
import { staticAgents } from '../src/agents/live.ts';
import { connect, type Socket } from 'node:net';
import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { Queue } from 'bullmq';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApi, type ApiOptions } from '../src/api/app.ts';
import { credentialsOf } from '../src/authorization.ts';
import { HTTP_TIMEOUT_DEFAULTS, loadConfig } from '../src/config.ts';
import type { ConfigError } from '../src/errors.ts';
import { startEmulator } from '../src/emulator/index.ts';
import { createLogger } from '../src/logger.ts';
import { createRedis, whenReady } from '../src/queue/connection.ts';
import { StreamInboundIntake } from '../src/queue/inbound-stream.ts';
import { contractJobOptions } from '../src/queue/job-options.ts';
import { JobQueues } from '../src/queue/job-queues.ts';
import { Producer } from '../src/queue/producer.ts';
import { StatusStore } from '../src/status/store.ts';
import { signWebhookData } from '../src/webhook/signature.ts';
import { redisUrl, uniquePrefix } from './helpers.ts';

const prefix = uniquePrefix('http-hardening');
const API_KEY = 'hardening-api-key-000000001';
const ADMIN_KEY = 'hardening-admin-key-00000001';
let redis: ReturnType<typeof createRedis>;
let producer: Producer;
let jobQueues: JobQueues;
let intake: StreamInboundIntake;
const apps: FastifyInstance[] = [];

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
});
afterAll(async () => {
  await Promise.all(apps.map((a) => a.close()));
  await jobQueues.close();
  const keys = await redis.keys(`${prefix}:*`);
  if (keys.length) await redis.del(...keys);
  await redis.quit();
});

/** Log lines as parsed JSON, from a logger of our own (the service's createLogger, writing here). */
function capturedLogger() {
  const lines: Array<Record<string, unknown>> = [];
  let text = '';
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      text += chunk.toString();
      for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { log: createLogger('info', 'test', stream), lines, text: () => text };
}

async function serve(opts: Partial<ApiOptions>): Promise<{ app: FastifyInstance; url: string }> {
  const app = buildApi({ producer, apiKeys: [], openWithoutKeys: true, ...opts });
  apps.push(app);
  return { app, url: await app.listen({ port: 0, host: '127.0.0.1' }) };
}

describe('lookups keyed by outside input', () => {
  const TOKENS = { 'agent-a': 'token-of-agent-a-0001', 'agent-b': 'token-of-agent-b-0002' };
  const AGENTS = ['nobody', '__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf', '__defineGetter__'];

  function signedEvent(agent: string, token: string) {
    const payload = {
      senderPhoneNumber: '+12223334444',
      eventType: 'IS_TYPING',
      eventId: randomUUID(),
      sendTime: new Date().toISOString(),
      agentId: `${agent}@rbm.goog`,
    };
    const data = Buffer.from(JSON.stringify(payload));
    const body = {
      message: {
        attributes: { business_id: `${agent}@rbm.goog`, product: 'RBM', type: 'event' },
        data: data.toString('base64'),
        messageId: randomUUID(),
        publishTime: new Date().toISOString(),
      },
      subscription: 'projects/p/subscriptions/s',
    };
    return {
      body: JSON.stringify(body),
      headers: { 'content-type': 'application/json', 'x-goog-signature': signWebhookData(token, data) },
    };
  }

  it('a webhook for agent __proto__, constructor, toString… is answered exactly like one for an unknown agent, with no error logged', async () => {
    const { log, lines } = capturedLogger();
    const { url } = await serve({ logger: log, webhook: { clientTokens: TOKENS, intake, bodyLimitBytes: 65_536, log } });
    const answers = [];
    for (const agent of AGENTS) {
      const res = await fetch(`${url}/webhooks/rbm`, { method: 'POST', ...signedEvent(agent, 'some-token-we-do-not-know') });
      answers.push({ agent, status: res.status, body: await res.text() });
    }
    expect(answers[0]).toMatchObject({ agent: 'nobody', status: 401, body: expect.stringContaining('SIGNATURE_INVALID') });
    for (const a of answers.slice(1))
      expect({ status: a.status, body: a.body }, a.agent).toEqual({ status: answers[0]!.status, body: answers[0]!.body });
    expect(lines.filter((l) => (l.level as number) >= 50)).toEqual([]);
  });

  it('with one token for every agent, those names are just more agents: signed with it, queued like any other', async () => {
    const { log, lines } = capturedLogger();
    const { url } = await serve({
      logger: log,
      webhook: { clientTokens: { '*': 'one-token-for-all-0001' }, intake, bodyLimitBytes: 65_536, log },
    });
    for (const agent of AGENTS) {
      const res = await fetch(`${url}/webhooks/rbm`, { method: 'POST', ...signedEvent(agent, 'one-token-for-all-0001') });
      expect(res.status, agent).toBe(200);
      const forged = await fetch(`${url}/webhooks/rbm`, { method: 'POST', ...signedEvent(agent, TOKENS['agent-a']) });
      expect(forged.status, agent).toBe(401);
    }
    expect(lines.filter((l) => (l.level as number) >= 50)).toEqual([]);
  });

  it('RBM_ENDPOINT=constructor is not a region', () => {
    for (const value of ['constructor', '__proto__', 'toString']) {
      expect(() => loadConfig({ RBM_ENDPOINT: value, GOOGLE_APPLICATION_CREDENTIALS: '/k.json', RBM_AGENTS: 'a:1' }), value).toThrow(
        `RBM_ENDPOINT: expected global, us, europe, asia, emulator or an http(s) base URL, got '${value}'`,
      );
    }
  });

  it("the emulator's webhook tokens: an agent named like an Object property has none", async () => {
    const emulator = await startEmulator({ webhook: { url: 'http://127.0.0.1:9/webhooks/rbm', clientTokens: { 'agent-a': 'tok-a' } } });
    try {
      expect(emulator.state.webhooks.tokenFor('agent-a@rbm.goog')).toBe('tok-a');
      for (const agent of AGENTS) expect(emulator.state.webhooks.tokenFor(agent), agent).toBeUndefined();
      const res = await fetch(`${emulator.url}/_emulator/webhook/verify`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ agentId: 'constructor' }),
      });
      expect(res.status).toBe(400);
      expect(await res.text()).toContain('no client token configured for agent constructor');
    } finally {
      await emulator.close();
    }
  });
});

describe('timeouts', () => {
  const SHORT = { requestTimeoutMs: 1000, headersTimeoutMs: 500, keepAliveTimeoutMs: 500, idleTimeoutMs: 60_000 };

  /** Opens a raw socket; resolves on its 'close' with what the server wrote and how long it lived. */
  function rawClient(url: string, start: (socket: Socket) => void): Promise<{ ms: number; received: string }> {
    const { port } = new URL(url);
    return new Promise((resolve) => {
      const opened = Date.now();
      let received = '';
      const socket = connect(Number(port), '127.0.0.1', () => start(socket));
      socket.on('data', (d: Buffer) => {
        received += d.toString();
      });
      socket.on('error', () => {});
      socket.on('close', () => resolve({ ms: Date.now() - opened, received }));
    });
  }

  /** Writes `chunk` every `everyMs` until the socket closes: a client that never finishes. */
  function drip(socket: Socket, chunk: string, everyMs: number): void {
    const timer = setInterval(() => (socket.writable ? socket.write(chunk) : clearInterval(timer)), everyMs);
    socket.once('close', () => clearInterval(timer));
  }

  it('HTTP_*_TIMEOUT_MS are parsed once, with the variable named when wrong', () => {
    expect(
      loadConfig({
        HTTP_REQUEST_TIMEOUT_MS: '5000',
        HTTP_HEADERS_TIMEOUT_MS: '2000',
        HTTP_KEEP_ALIVE_TIMEOUT_MS: '1000',
        HTTP_IDLE_TIMEOUT_MS: '9000',
      }).http,
    ).toEqual({ requestTimeoutMs: 5000, headersTimeoutMs: 2000, keepAliveTimeoutMs: 1000, idleTimeoutMs: 9000 });
    const problems = (env: Record<string, string>) => {
      try {
        loadConfig(env);
        return [];
      } catch (err) {
        return (err as ConfigError).problems.map((p) => p.path);
      }
    };
    expect(problems({ HTTP_REQUEST_TIMEOUT_MS: '1000', HTTP_HEADERS_TIMEOUT_MS: '5000' })).toEqual(['HTTP_HEADERS_TIMEOUT_MS']);
    expect(problems({ HTTP_REQUEST_TIMEOUT_MS: '0', HTTP_KEEP_ALIVE_TIMEOUT_MS: 'soon', HTTP_IDLE_TIMEOUT_MS: '-1' })).toEqual([
      'HTTP_REQUEST_TIMEOUT_MS',
      'HTTP_KEEP_ALIVE_TIMEOUT_MS',
      'HTTP_IDLE_TIMEOUT_MS',
    ]);
  });

  it('the defaults come from config: 30 s for a request, 10 s for headers, 72 s keep-alive, 120 s idle', async () => {
    expect(loadConfig({}).http).toEqual(HTTP_TIMEOUT_DEFAULTS);
    const { app } = await serve({});
    expect({
      request: app.server.requestTimeout,
      headers: app.server.headersTimeout,
      keepAlive: app.server.keepAliveTimeout,
      idle: app.server.timeout,
    }).toEqual({ request: 30_000, headers: 10_000, keepAlive: 72_000, idle: 120_000 });
  });

  it('a body that trickles in is cut off at the request timeout: 408 in the one error shape, connection closed', async () => {
    const { url } = await serve({ timeouts: SHORT });
    const { ms, received } = await rawClient(url, (socket) => {
      socket.write('POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"to":');
      drip(socket, ' ', 100);
    });
    expect(received).toMatch(/^HTTP\/1\.1 408 /);
    expect(received).toContain('"code":"REQUEST_TIMEOUT"');
    // Past the request timeout, and well before the drip could have finished (1000 bytes at 10/s).
    expect(ms).toBeGreaterThanOrEqual(900);
    expect(ms).toBeLessThan(10_000);
  });

  it('headers that trickle in are cut off at the headers timeout', async () => {
    const { url } = await serve({ timeouts: SHORT });
    const { ms, received } = await rawClient(url, (socket) => {
      socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n');
      drip(socket, 'X-Slow: y\r\n', 50);
    });
    expect(received).toMatch(/^HTTP\/1\.1 408 /);
    expect(ms).toBeGreaterThanOrEqual(400);
    expect(ms).toBeLessThan(10_000);
  });

  it('an idle keep-alive connection is closed after the keep-alive timeout', async () => {
    const { url } = await serve({ timeouts: SHORT });
    let answeredAt = 0;
    const { ms, received } = await rawClient(url, (socket) => {
      socket.write('GET /no-such-route HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n');
      socket.once('data', () => {
        answeredAt = Date.now();
      });
    });
    expect(received).toMatch(/^HTTP\/1\.1 404 /);
    expect(answeredAt).toBeGreaterThan(0);
    expect(ms).toBeGreaterThanOrEqual(400);
    expect(ms).toBeLessThan(10_000);
  });
});

describe('request log lines', () => {
  it('carry phone numbers masked, in a path or a query, with the + written or encoded', async () => {
    const { log, lines, text } = capturedLogger();
    const { app } = await serve({ logger: log });
    await app.inject({ method: 'GET', url: '/v1/phones/+14155550123/agentMessages?to=%2B14155550124&alt=%2b14155550125' });
    await app.inject({ method: 'GET', url: `/v1/messages/${randomUUID()}?to=+14155550126` });
    const urls = lines.filter((l) => l.msg === 'incoming request').map((l) => (l.req as { url: string }).url);
    expect(urls).toEqual([
      '/v1/phones/+1415***0123/agentMessages?to=%2B1415***0124&alt=%2b1415***0125',
      expect.stringMatching(/^\/v1\/messages\/[0-9a-f-]{36}\?to=\+1415\*\*\*0126$/),
    ]);
    for (const n of ['4155550123', '4155550124', '4155550125', '4155550126']) expect(text()).not.toContain(n);
  });
});

describe('the Authorization scheme', () => {
  it('is case-insensitive (RFC 7235), with one or more spaces before the credentials', () => {
    for (const header of ['Bearer k', 'bearer k', 'BEARER k', 'bEaReR   k', 'Bearer k  '])
      expect(credentialsOf(header, 'Bearer'), header).toBe('k');
    for (const header of [undefined, '', 'Bearer', 'Bearer ', 'Bearerk', 'Basic k', 'Bearer\tk', ' Bearer k'])
      expect(credentialsOf(header, 'Bearer'), String(header)).toBeUndefined();
  });

  it('API keys: bearer KEY and BEARER KEY are let in; another scheme or a wrong key is not', async () => {
    const { app } = await serve({ apiKeys: [{ key: API_KEY, agents: ['agent-a'] }], openWithoutKeys: false });
    const status = async (authorization: string) =>
      (await app.inject({ method: 'GET', url: `/v1/messages/${randomUUID()}`, headers: { authorization } })).statusCode;
    for (const header of [`Bearer ${API_KEY}`, `bearer ${API_KEY}`, `BEARER ${API_KEY}`, `bEaReR  ${API_KEY}`])
      expect(await status(header), header).toBe(404);
    for (const header of [`Basic ${API_KEY}`, `Bearer${API_KEY}`, 'bearer wrong-key-00000000000', `Token ${API_KEY}`])
      expect(await status(header), header).toBe(401);
  });

  it('the admin key: bearer and basic in any case', async () => {
    const queue = new Queue('hardening-admin', { connection: redis, prefix });
    try {
      const { app } = await serve({ admin: { queues: () => [queue], adminKey: ADMIN_KEY, open: false } });
      const status = async (authorization?: string) =>
        (await app.inject({ method: 'GET', url: '/admin/queues/api/queues', headers: authorization ? { authorization } : {} })).statusCode;
      const basic = Buffer.from(`admin:${ADMIN_KEY}`).toString('base64');
      for (const header of [`bearer ${ADMIN_KEY}`, `BEARER ${ADMIN_KEY}`, `basic ${basic}`, `BASIC ${basic}`])
        expect(await status(header), header).toBe(200);
      for (const header of [undefined, `bearer wrong-admin-key-000000`, `Digest ${ADMIN_KEY}`])
        expect(await status(header), String(header)).toBe(401);
    } finally {
      await queue.close();
    }
  });
});
