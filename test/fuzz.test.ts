/**
 * Seeded fuzzing of every route a caller or RBM can reach: API bodies and
 * webhook bodies, mutated from valid ones (fields dropped, retyped, grown,
 * prototype keys, wrong shapes, broken JSON, bad signatures). Invariants:
 * no answer is a 5xx, and nothing is queued but what a 2xx answer said it
 * queued. FUZZ_N scales the run (default 5,000 API bodies and 2,000
 * webhook bodies); FUZZ_SEED replays one.
 */
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApi } from '../src/api/app.ts';
import { intakeStreamKey } from '../src/status/store.ts';
import { signWebhookData } from '../src/webhook/signature.ts';
import { startHarness, type Harness } from './helpers.ts';

const N = Number(process.env.FUZZ_N ?? 5000);
const WEBHOOK_N = Math.max(2000, Math.round(N * 0.4));
const SEED = Number(process.env.FUZZ_SEED ?? 20261202);
const KEY_A = 'fuzz-key-a-0123456789';
const TOKEN_A = 'fuzz-client-token-a';

/** mulberry32: small, fast, seeded. */
function rng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
  return { next, int, pick };
}
type Rng = ReturnType<typeof rng>;

const phone = (r: Rng) => `+1${200 + r.int(800)}${String(r.int(1e7)).padStart(7, '0')}`;
const uuid = (r: Rng) => {
  const hex = () => r.int(16).toString(16);
  const s = (n: number) => Array.from({ length: n }, hex).join('');
  return `${s(8)}-${s(4)}-4${s(3)}-${r.pick(['8', '9', 'a', 'b'])}${s(3)}-${s(12)}`;
};

/** Values of every type, including ones parsers and schemas trip on. */
function junk(r: Rng, depth = 0): unknown {
  switch (r.int(16)) {
    case 0:
      return null;
    case 1:
      return r.int(3) === 0 ? -1 : r.next() * 1e12;
    case 2:
      return r.pick([true, false]);
    case 3:
      return '';
    case 4:
      return 'x'.repeat(r.pick([1, 64, 1601, 5000]));
    case 5:
      return r.pick(['__proto__', 'constructor', 'toString', 'hasOwnProperty']);
    case 6:
      return '\u0000\ud83d\ude00\u202e<script>';
    case 7:
      return depth > 3 ? {} : { [r.pick(['__proto__', 'constructor', 'a', 'text'])]: junk(r, depth + 1) };
    case 8:
      return depth > 3 ? [] : Array.from({ length: r.int(4) }, () => junk(r, depth + 1));
    case 9:
      return phone(r);
    case 10:
      return uuid(r);
    case 11:
      return r.pick(['1s', '-5s', '99999999999s', 'NaN', '2026-13-40T00:00:00Z', '3600s']);
    case 12:
      return r.pick([
        'http://127.0.0.1:6379/',
        'http://[::1]/',
        'http://169.254.169.254/latest',
        'https://example.com/cb',
        'javascript:alert(1)',
      ]);
    case 13:
      return r.pick(['READ', 'IS_TYPING', 'DELIVERED', 'AUTHENTICATION', 'PROMOTION', 'agent-a', 'agent-b', 'ghost']);
    case 14:
      return Number.MAX_SAFE_INTEGER;
    default:
      return { text: 'x'.repeat(r.int(100)) };
  }
}

function validMessage(r: Rng): Record<string, unknown> {
  const m: Record<string, unknown> = { to: phone(r), contentMessage: { text: `hello ${r.int(1000)}` } };
  if (r.int(3) === 0) m.ttl = `${1 + r.int(3600)}s`;
  if (r.int(4) === 0) m.fallback = { sms: { text: 'code 123' } };
  if (r.int(4) === 0) m.messageTrafficType = r.pick(['AUTHENTICATION', 'TRANSACTION', 'PROMOTION']);
  if (r.int(5) === 0) m.idempotencyKey = `k-${r.int(50)}`;
  if (r.int(6) === 0) m.messageId = uuid(r);
  if (r.int(6) === 0) m.agentId = r.pick(['agent-a', 'agent-b', 'ghost']);
  if (r.int(5) === 0) m.contentMessage = { text: 'pick', suggestions: [{ reply: { text: 'yes', postbackData: 'y' } }] };
  return m;
}

function validEvent(r: Rng): Record<string, unknown> {
  return r.int(2) === 0 ? { to: phone(r), eventType: 'READ', messageId: uuid(r) } : { to: phone(r), eventType: 'IS_TYPING' };
}

/** 1–3 mutations of an object, at the top or one level down. */
function mutate(r: Rng, value: Record<string, unknown>): unknown {
  if (r.int(12) === 0) return junk(r);
  const out: Record<string, unknown> = structuredClone(value);
  for (let i = 0, n = 1 + r.int(3); i < n; i++) {
    const keys = Object.keys(out);
    const target =
      keys.length > 0 && r.int(3) === 0 && typeof out[keys[0]!] === 'object' && out[keys[0]!] !== null
        ? (out[r.pick(keys)] as Record<string, unknown>)
        : out;
    if (typeof target !== 'object' || target === null) continue;
    const tk = Object.keys(target);
    switch (r.int(4)) {
      case 0:
        if (tk.length > 0) delete target[r.pick(tk)];
        break;
      case 1:
        if (tk.length > 0) target[r.pick(tk)] = junk(r);
        break;
      case 2:
        target[r.pick(['__proto__', 'constructor', 'extra', 'agentId', 'to', 'ttl', 'expireTime', 'callbackUrl', 'eventId'])] = junk(r);
        break;
      default:
        Object.defineProperty(target, '__proto__', { value: junk(r), enumerable: true, configurable: true, writable: true });
    }
  }
  return out;
}

interface Probe {
  method: 'GET' | 'POST' | 'DELETE';
  url: string;
  payload?: string;
  headers?: Record<string, string>;
}

function apiProbe(r: Rng): Probe {
  const auth = {
    authorization: r.int(20) === 0 ? r.pick(['', 'Bearer nope-nope-nope-nope', 'Basic abc', `bearer ${KEY_A}`]) : `Bearer ${KEY_A}`,
  };
  const json = (body: unknown): Probe['payload'] =>
    r.int(25) === 0 ? r.pick(['{', '{"to":', '[1,2', 'null', '"str"', '{"a":1}}']) : JSON.stringify(body);
  const headers = {
    ...auth,
    'content-type':
      r.int(30) === 0
        ? r.pick(['text/plain', 'application/x-www-form-urlencoded', 'application/json; charset=utf-16'])
        : 'application/json',
  };
  const idem: Record<string, string> = r.int(8) === 0 ? { 'idempotency-key': r.pick(['', 'k', 'x'.repeat(300), `k-${r.int(20)}`]) } : {};
  switch (r.int(11)) {
    case 0:
    case 1:
    case 2:
      return { method: 'POST', url: '/v1/messages', payload: json(mutate(r, validMessage(r))), headers: { ...headers, ...idem } };
    case 3:
      return {
        method: 'POST',
        url: '/v1/messages:batch',
        payload: json(
          r.int(5) === 0
            ? junk(r)
            : { messages: Array.from({ length: 1 + r.int(4) }, () => (r.int(2) ? validMessage(r) : mutate(r, validMessage(r)))) },
        ),
        headers: { ...headers, ...idem },
      };
    case 4:
    case 5:
      return { method: 'POST', url: '/v1/events', payload: json(mutate(r, validEvent(r))), headers: { ...headers, ...idem } };
    case 6:
      return {
        method: 'POST',
        url: '/v1/events:batch',
        payload: json(
          r.int(5) === 0
            ? junk(r)
            : { events: Array.from({ length: 1 + r.int(4) }, () => (r.int(2) ? validEvent(r) : mutate(r, validEvent(r)))) },
        ),
        headers,
      };
    case 7:
      return {
        method: 'GET',
        url: `/v1/messages/${encodeURIComponent(String(r.int(2) ? uuid(r) : junk(r)))}${r.int(4) === 0 ? `?agentId=${encodeURIComponent(String(junk(r)))}` : ''}`,
        headers: auth,
      };
    case 8:
      return {
        method: 'DELETE',
        url: `/v1/messages/${encodeURIComponent(String(r.int(2) ? uuid(r) : junk(r)))}?fallback=${encodeURIComponent(String(junk(r)))}`,
        headers: auth,
      };
    case 9:
      return {
        method: 'GET',
        url: r.pick([
          `/v1/batches/${encodeURIComponent(String(junk(r)))}`,
          `/v1/failures?limit=${encodeURIComponent(String(junk(r)))}&before=${encodeURIComponent(String(junk(r)))}`,
        ]),
        headers: auth,
      };
    default:
      return {
        method: 'POST',
        url: r.pick(['/v1/failures:retry', '/v1/callback']),
        payload: json(r.int(2) ? { messageIds: junk(r), reason: junk(r), url: junk(r) } : junk(r)),
        headers,
      };
  }
}

function webhookProbe(r: Rng): Probe {
  const payloads: Array<() => Record<string, unknown>> = [
    () => ({
      senderPhoneNumber: phone(r),
      eventType: r.pick(['DELIVERED', 'READ', 'IS_TYPING']),
      eventId: uuid(r),
      messageId: uuid(r),
      agentId: 'agent-a@rbm.goog',
    }),
    () => ({
      phoneNumber: phone(r),
      eventType: r.pick(['TTL_EXPIRATION_REVOKED', 'TTL_EXPIRATION_REVOKE_FAILED']),
      eventId: uuid(r),
      messageId: uuid(r),
      agentId: 'agent-a@rbm.goog',
    }),
    () => ({
      senderPhoneNumber: phone(r),
      messageId: uuid(r),
      text: 'hi',
      sendTime: '2026-12-02T00:00:00Z',
      agentId: r.pick(['agent-a@rbm.goog', '__proto__', 'constructor@rbm.goog', 'toString']),
    }),
  ];
  const inner = r.int(3) === 0 ? mutate(r, r.pick(payloads)()) : r.pick(payloads)();
  const data = Buffer.from(r.int(20) === 0 ? '{not json' : JSON.stringify(inner));
  const signature =
    r.int(6) === 0 ? signWebhookData('wrong-token', data) : r.int(30) === 0 ? String(junk(r)) : signWebhookData(TOKEN_A, data);
  const envelope =
    r.int(8) === 0
      ? mutate(r, { message: { data: data.toString('base64'), messageId: String(r.int(1e9)), attributes: {} }, subscription: 's' })
      : {
          message: {
            data: data.toString('base64'),
            messageId: String(r.int(1e9)),
            attributes: r.int(10) === 0 ? { agentId: String(junk(r)) } : {},
          },
          subscription: 's',
        };
  return {
    method: 'POST',
    url: '/webhooks/rbm',
    payload: r.int(30) === 0 ? '{"message":' : JSON.stringify(envelope),
    headers: { 'content-type': 'application/json', 'x-goog-signature': signature },
  };
}

let h: Harness;
let app: FastifyInstance;

beforeAll(async () => {
  h = await startHarness({
    name: 'fuzz',
    env: {
      RBM_AGENTS: 'agent-a:100,agent-b:100',
      API_KEYS: `${KEY_A}:agent-a`,
      RBM_WEBHOOK_CLIENT_TOKENS: `agent-a:${TOKEN_A}`,
      CALLBACK_SECRET: `whsec_${Buffer.alloc(32, 3).toString('base64')}`,
    },
  });
  // No workers: every queued job stays where it was put, to be counted.
  app = buildApi({
    producer: h.service.producer,
    apiKeys: h.config.apiKeys,
    openWithoutKeys: false,
    revoke: h.service.revoke,
    failures: { list: h.service.failures, redrive: h.service.redrive },
    callbacks: h.service.callbacks,
    webhook: {
      clientTokens: h.config.webhookClientTokens,
      intake: h.service.intake,
      bodyLimitBytes: h.config.inbound.bodyLimitBytes,
      counters: h.service.webhookCounters,
    },
  });
  await app.ready();
});
afterAll(async () => {
  await app?.close();
  await h?.close();
});

async function queuedJobs(): Promise<number> {
  let total = 0;
  for (const agent of ['agent-a', 'agent-b']) {
    const counts = await h.service.queues.queue('outbound', agent).getJobCounts('wait', 'prioritized', 'delayed', 'active');
    total += Object.values(counts).reduce((a, b) => a + b, 0);
  }
  return total;
}

/** What a 2xx answer says it queued. */
function queuedBy(url: string, body: any): number {
  if (url === '/v1/messages' || url === '/v1/events') return body.duplicate ? 0 : 1;
  if (url === '/v1/messages:batch') return body.messageIds.length - body.duplicates;
  if (url === '/v1/events:batch') return body.eventIds.length - body.duplicates;
  return 0;
}

describe(`fuzz (seed ${SEED})`, () => {
  it(`${N} API bodies: no 5xx, and nothing queued that a 2xx did not report`, async () => {
    const r = rng(SEED);
    const statuses = new Map<number, number>();
    const fivexx: string[] = [];
    let reported = 0;
    const before = await queuedJobs();
    for (let i = 0; i < N; i++) {
      const probe = apiProbe(r);
      const res = await app.inject(probe);
      statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
      if (res.statusCode >= 500)
        fivexx.push(`${probe.method} ${probe.url} ${probe.payload?.slice(0, 200)} → ${res.statusCode} ${res.body.slice(0, 200)}`);
      else if (res.statusCode < 300) reported += queuedBy(probe.url, res.json());
      else
        expect(res.json().error.code, `${probe.method} ${probe.url} → ${res.statusCode} without the error shape`).toEqual(
          expect.any(String),
        );
    }
    expect(fivexx).toEqual([]);
    expect((await queuedJobs()) - before).toBe(reported);
    // Both kinds were exercised: refusals and real sends.
    expect([...statuses.keys()].some((s) => s === 202)).toBe(true);
    expect([...statuses.keys()].some((s) => s === 400)).toBe(true);
    console.log(`fuzz api seed=${SEED} n=${N}`, Object.fromEntries([...statuses].sort(([a], [b]) => a - b)), `queued=${reported}`);
  }, 600_000);

  it(`${WEBHOOK_N} webhook bodies: no 5xx, nothing badly signed reaches the intake`, async () => {
    const r = rng(SEED + 1);
    const statuses = new Map<number, number>();
    const fivexx: string[] = [];
    const stream = intakeStreamKey(h.config.queuePrefix);
    const before = await h.redis.producer.xlen(stream);
    let accepted = 0;
    for (let i = 0; i < WEBHOOK_N; i++) {
      const probe = webhookProbe(r);
      const res = await app.inject(probe);
      statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
      if (res.statusCode >= 500) fivexx.push(`${probe.payload?.slice(0, 300)} → ${res.statusCode} ${res.body.slice(0, 200)}`);
      if (res.statusCode === 200) accepted++;
    }
    expect(fivexx).toEqual([]);
    // Only 200s may have queued (acknowledged-but-ignored ones, duplicates and unknown kinds queue nothing).
    expect((await h.redis.producer.xlen(stream)) - before).toBeLessThanOrEqual(accepted);
    expect(statuses.get(401) ?? 0).toBeGreaterThan(0);
    console.log(`fuzz webhook seed=${SEED + 1} n=${WEBHOOK_N}`, Object.fromEntries([...statuses].sort(([a], [b]) => a - b)));
  }, 600_000);
});
