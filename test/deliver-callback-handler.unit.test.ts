/**
 * The deliver-callback handler against fakes, for what
 * deliver-callback-handler.test.ts (the receivers' gate) leaves out: the
 * signed request itself, each kind of answer, a forbidden address, the last
 * attempt, invalid payloads. No Redis, no network.
 */
import { describe, expect, it, vi } from 'vitest';
import { Webhook } from 'standardwebhooks';
import { CallbackDeliveryError } from '../src/callbacks/errors.ts';
import type { Admission, CallResult, ReceiverPort } from '../src/callbacks/receivers.ts';
import { classify, PayloadError, UrlForbiddenError } from '../src/errors.ts';
import { createDeliverCallbackHandler } from '../src/handlers/deliver-callback.ts';
import { recordingLog, rejection } from './fakes.ts';

const NOW = 1_800_000_000_123;
const SECRET = `whsec_${Buffer.from('a'.repeat(32)).toString('base64')}`;
const URL_WITH_TOKEN = 'https://hooks.example.com/rbm/cb?token=s3cret';
const data = {
  messageId: '0b6c1a52-5f7e-4c1d-9a3b-2e8f4d6c1a01',
  agentId: 'agent-a',
  state: 'DELIVERED',
  previousState: 'SENT',
  at: NOW - 2_000,
  event: 'DELIVERED',
};
const payload = (over: Record<string, unknown> = {}) => ({ url: URL_WITH_TOKEN, scope: 'key-1', data, ...over });
const ctx = (attempt = 1, maxAttempts = 3) => ({ jobId: 'cb-7', attempt, maxAttempts, queuedAt: NOW - 3_000 });

interface Post {
  url: string;
  body: string;
  headers: Record<string, string>;
}

function setup(answer: number | Error = 200, admission: Admission = { verdict: 'call' }) {
  const posts: Post[] = [];
  const admitted: Array<[string, string]> = [];
  const reports: CallResult[] = [];
  const counted: string[] = [];
  const scopes: string[] = [];
  const log = recordingLog();
  const receivers: ReceiverPort = {
    admit: async (origin, jobId) => {
      admitted.push([origin, jobId]);
      return admission;
    },
    report: async (_origin, _jobId, result) => void reports.push(result),
    forget: async () => undefined,
  };
  const handler = createDeliverCallbackHandler({
    secretFor: (scope) => {
      scopes.push(scope);
      return SECRET;
    },
    post: async (url, body, headers) => {
      posts.push({ url, body, headers });
      if (answer instanceof Error) throw answer;
      return answer;
    },
    count: async (outcome) => void counted.push(outcome),
    receivers,
    retryForMs: 60_000,
    log,
    now: () => NOW,
  });
  return { handler, posts, admitted, reports, counted, scopes, log };
}

describe('deliver-callback: the request', () => {
  it('POSTs the change as a Standard Webhooks request a receiver verifies with the scope’s secret', async () => {
    const s = setup(200);
    await expect(s.handler(payload(), ctx())).resolves.toEqual({ outcome: 'DELIVERED', status: 200 });
    expect(s.admitted).toEqual([['https://hooks.example.com', 'cb-7']]);
    const [post] = s.posts;
    expect(post!.url).toBe(URL_WITH_TOKEN);
    expect(JSON.parse(post!.body)).toEqual({ type: 'message.status_changed', timestamp: new Date(data.at).toISOString(), data });
    expect(post!.headers['content-type']).toBe('application/json');
    expect(post!.headers['webhook-timestamp']).toBe(String(Math.floor(NOW / 1000)));
    // What a receiver does: verify id, timestamp and signature over the exact body.
    const receiver = new Webhook(SECRET);
    // It refuses a timestamp far from its clock: verify at the time the request was signed.
    vi.useFakeTimers({ toFake: ['Date'], now: NOW });
    try {
      expect(receiver.verify(post!.body, post!.headers)).toEqual(JSON.parse(post!.body));
    } finally {
      vi.useRealTimers();
    }
    expect(() => new Webhook(`whsec_${Buffer.from('b'.repeat(32)).toString('base64')}`).verify(post!.body, post!.headers)).toThrow();
  });

  it('one change has one webhook-id on every attempt; another change, another', async () => {
    const s = setup(500);
    await rejection(s.handler(payload(), ctx(1)));
    await rejection(s.handler(payload(), ctx(2)));
    await rejection(s.handler(payload({ data: { ...data, state: 'READ', previousState: 'DELIVERED' } }), ctx(1)));
    const ids = s.posts.map((p) => p.headers['webhook-id']);
    expect(ids[0]).toBe(ids[1]);
    expect(ids[2]).not.toBe(ids[0]);
  });

  it('asks for a scope’s secret once, however many deliveries sign with it', async () => {
    const s = setup(204);
    for (let i = 0; i < 3; i++) await s.handler(payload(), ctx());
    await s.handler(payload({ scope: 'key-2' }), ctx());
    expect(s.scopes).toEqual(['key-1', 'key-2']);
  });

  for (const status of [200, 201, 204, 299]) {
    it(`${status} is delivered: counted, reported done`, async () => {
      const s = setup(status);
      await expect(s.handler(payload(), ctx())).resolves.toEqual({ outcome: 'DELIVERED', status });
      expect(s.counted).toEqual(['delivered']);
      expect(s.reports).toEqual([{ ok: true, probe: false, done: true }]);
    });
  }
});

describe('deliver-callback: not delivered', () => {
  for (const status of [199, 300, 301, 400, 404, 410, 429, 500, 503]) {
    it(`${status}: CallbackDeliveryError (retry on the callback schedule, never a queue pause), not done`, async () => {
      const s = setup(status);
      const err = await rejection(s.handler(payload(), ctx(1, 3)));
      expect(err).toBeInstanceOf(CallbackDeliveryError);
      expect(err).toMatchObject({ status, origin: 'https://hooks.example.com' });
      expect(classify(err)).toBe('retry');
      expect(s.reports).toEqual([{ ok: false, probe: false, done: false, failure: `answered ${status}` }]);
      expect(s.counted).toEqual(['retried']);
      expect(s.log.lines.map((l) => l.level)).toEqual(['warn']);
    });
  }

  it('on the last attempt: done, counted failed, an error naming the replay', async () => {
    const s = setup(502);
    await expect(s.handler(payload(), ctx(3, 3))).rejects.toBeInstanceOf(CallbackDeliveryError);
    expect(s.reports).toEqual([{ ok: false, probe: false, done: true, failure: 'answered 502' }]);
    expect(s.counted).toEqual(['failed']);
    expect(s.log.lines).toMatchObject([{ level: 'error', obj: { attempt: 3, of: 3, status: 502 } }]);
    expect(s.log.lines[0]!.msg).toContain('callbacks:replay');
  });

  it('a forbidden address: failed for good at once, its slot given back, the error rethrown (permanent)', async () => {
    const forbidden = new UrlForbiddenError('hooks.example.com', 'resolves to 10.0.0.7, a private address');
    const s = setup(forbidden, { verdict: 'probe' });
    expect(await rejection(s.handler(payload(), ctx(1, 3)))).toBe(forbidden);
    expect(classify(forbidden)).toBe('permanent');
    expect(s.reports).toEqual([{ ok: false, probe: true, done: true, failure: 'refused: forbidden address' }]);
    expect(s.counted).toEqual(['failed']);
    expect(s.log.lines.map((l) => l.level)).toEqual(['error']);
  });

  it('names only the origin: the token in the URL reaches no error, log or report', async () => {
    const s = setup(new Error('connect ECONNREFUSED'));
    const err = await rejection(s.handler(payload(), ctx(3, 3)));
    expect(String((err as Error).message)).toBe('status callback to https://hooks.example.com got no answer (connect ECONNREFUSED)');
    expect(JSON.stringify([s.log.lines, s.reports, (err as Error).message])).not.toContain('s3cret');
  });
});

describe('deliver-callback: an invalid payload', () => {
  it('is permanent and neither admitted nor posted', async () => {
    const s = setup();
    const bad = [
      payload({ url: 'ftp://hooks.example.com/x' }),
      payload({ scope: '' }),
      payload({ data: { ...data, messageId: 'not-a-uuid' } }),
      payload({ data: { ...data, at: 'yesterday' } }),
      {},
    ];
    for (const p of bad) {
      const err = await rejection(s.handler(p, ctx()));
      expect(err, JSON.stringify(p)).toBeInstanceOf(PayloadError);
      expect(classify(err)).toBe('permanent');
    }
    expect(s.admitted).toEqual([]);
    expect(s.posts).toEqual([]);
  });
});
