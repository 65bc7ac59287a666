/**
 * The send-message handler against in-memory fakes (test/fakes.ts): which
 * record moves each RBM answer makes, what it throws for the runner, when it
 * falls back and when it schedules the local deadline. No Redis, no network.
 */
import { describe, expect, it } from 'vitest';
import { classify, PayloadError, RbmApiError, RbmAuthError, RbmNetworkError, RbmTokenUnavailableError } from '../src/errors.ts';
import { FALLBACK_FIELD, PHONE_FIELD } from '../src/fallback/fallback.ts';
import { createSendMessageHandler } from '../src/handlers/send-message.ts';
import type { AgentMessageBody } from '../src/rbm/types.ts';
import { fakeDeadlines, fakeFallback, fakeStatus, recordingLog, rejection } from './fakes.ts';

const NOW = 1_800_000_000_000;
const ID = '2f1e0c7e-4a3b-4c5d-9e8f-0a1b2c3d4e5f';
const REF = { agentId: 'agent-a', messageId: ID };
const PHONE = '+12223334444';
const GRACE_MS = 30_000;

const payload = (over: Record<string, unknown> = {}) => ({
  messageId: ID,
  agentId: 'agent-a',
  to: PHONE,
  message: { contentMessage: { text: 'Your code is 123456' }, messageTrafficType: 'AUTHENTICATION' },
  enqueuedAt: NOW - 5_000,
  ...over,
});
const withFallback = (over: Record<string, unknown> = {}) => payload({ fallback: { sms: { text: 'code 123456', from: 'ACME' } }, ...over });
const ctx = (attempt = 1, maxAttempts = 3) => ({ jobId: `msg-${ID}`, attempt, maxAttempts });
const api = (status: number, retryAfterMs?: number) =>
  new RbmApiError({ status, rpcStatus: 'X', message: `status ${status}`, method: 'POST', path: '/v1/phones/…', retryAfterMs });

interface Setup {
  /** What createMessage throws (nothing: it accepts). */
  fails?: unknown;
  /** What ready() throws (nothing: a token is at hand). */
  notReady?: unknown;
  status?: ReturnType<typeof fakeStatus>;
}

function setup(s: Setup = {}) {
  const status = s.status ?? fakeStatus();
  const fallback = fakeFallback();
  const deadlines = fakeDeadlines();
  const log = recordingLog();
  const sent: Array<{ agentId: string; to: string; messageId: string; body: AgentMessageBody }> = [];
  let readyCalls = 0;
  const handler = createSendMessageHandler({
    rbm: {
      async ready() {
        readyCalls++;
        if (s.notReady !== undefined) throw s.notReady;
      },
      async createMessage(args) {
        sent.push(args);
        if (s.fails !== undefined) throw s.fails;
        return { duplicate: true as const };
      },
    },
    status: status.port,
    requestFallback: fallback.requestFallback,
    deadlines: deadlines.port,
    graceMs: GRACE_MS,
    log,
    now: () => NOW,
  });
  return { handler, status, fallback, deadlines, log, sent, readyCalls: () => readyCalls };
}

describe('send-message: accepted by RBM', () => {
  it('creates the record, moves it SENDING → SENT with one attempt, keeps the full phone and the SMS on it', async () => {
    const s = setup();
    await expect(s.handler(withFallback(), ctx())).resolves.toEqual({ outcome: 'SENT', attempt: 1 });
    expect(s.status.path(REF)).toEqual(['SENDING', 'SENT']);
    const record = s.status.record(REF)!;
    expect(record.attempts).toBe(1);
    expect(record.fields[PHONE_FIELD]).toBe(PHONE);
    expect(JSON.parse(record.fields[FALLBACK_FIELD]!)).toEqual({ agentId: 'agent-a', to: PHONE, text: 'code 123456', from: 'ACME' });
    // The record to create rides along with the first move only.
    expect(s.status.calls[0]!.options.create).toMatchObject({ messageId: ID, agentId: 'agent-a', trafficType: 'AUTHENTICATION' });
    expect(s.status.calls[1]!.options).toEqual({ countAttempt: true });
    expect(s.sent).toEqual([{ agentId: 'agent-a', to: PHONE, messageId: ID, body: payload().message }]);
    expect(s.fallback.requests).toEqual([]);
  });

  it('without a TTL: no local deadline; without fallback settings: no SMS kept', async () => {
    const s = setup();
    await s.handler(payload(), ctx());
    expect(s.deadlines.scheduled).toEqual([]);
    expect(s.status.record(REF)!.fields[FALLBACK_FIELD]).toBeUndefined();
  });

  it('with a TTL: sends the time left of it (queue time counts) and schedules the deadline at expireAt + grace', async () => {
    const s = setup();
    const expireAt = NOW + 42_500;
    const message = { contentMessage: { text: 'hi' }, ttl: '60s' };
    await s.handler(payload({ message, expireAt }), ctx());
    expect(s.sent[0]!.body).toEqual({ contentMessage: { text: 'hi' }, ttl: '42.500s' });
    expect(s.deadlines.scheduled).toEqual([
      { payload: { messageId: ID, agentId: 'agent-a', to: PHONE, expireAt }, runAt: expireAt + GRACE_MS },
    ]);
  });

  it('an expireTime (no ttl) is sent as given', async () => {
    const s = setup();
    const message = { contentMessage: { text: 'hi' }, expireTime: '2027-02-15T08:00:00Z' };
    await s.handler(payload({ message, expireAt: Date.parse('2027-02-15T08:00:00Z') }), ctx());
    expect(s.sent[0]!.body).toEqual(message);
  });

  it('a DELIVERED parked while sending and applied with SENT: no deadline, the outcome says where the record is', async () => {
    const s = setup();
    s.status.scripted.push(
      () => undefined,
      () => ({ ok: true, from: 'SENDING', state: 'DELIVERED' }),
    );
    const out = await s.handler(payload({ expireAt: NOW + 60_000, message: { contentMessage: { text: 'x' }, ttl: '65s' } }), ctx());
    expect(out).toEqual({ outcome: 'SENT', attempt: 1, state: 'DELIVERED' });
    expect(s.deadlines.scheduled).toEqual([]);
  });

  it('a later attempt says so in the timeline and counts its attempt on the same record', async () => {
    const status = fakeStatus({ [`agent-a/${ID}`]: { state: 'SENDING', attempts: 2 } });
    const s = setup({ status });
    await expect(s.handler(payload(), ctx(3, 8))).resolves.toEqual({ outcome: 'SENT', attempt: 3 });
    expect(status.calls[0]!.options.detail).toBe('attempt 3');
    expect(status.record(REF)!.attempts).toBe(3);
  });
});

describe('send-message: a duplicate job', () => {
  for (const state of ['SENT', 'DELIVERED', 'READ', 'FAILED', 'NOT_RCS', 'FALLBACK_SENT', 'REVOKED'] as const) {
    it(`finds the record ${state}: sends nothing, moves nothing`, async () => {
      const status = fakeStatus({ [`agent-a/${ID}`]: { state } });
      const s = setup({ status });
      await expect(s.handler(payload(), ctx())).resolves.toEqual({ outcome: 'DUPLICATE', state });
      expect(s.sent).toEqual([]);
      expect(status.path(REF)).toEqual([]);
    });
  }
});

describe('send-message: expired in the queue', () => {
  it('with SMS settings: EXPIRED without a send or a token, then the DEADLINE fallback with the SMS', async () => {
    const s = setup();
    await expect(s.handler(withFallback({ expireAt: NOW }), ctx())).resolves.toEqual({ outcome: 'EXPIRED' });
    expect(s.status.path(REF)).toEqual(['EXPIRED']);
    expect(s.status.calls[0]!.options).toMatchObject({ event: 'EXPIRED_IN_QUEUE' });
    expect(s.sent).toEqual([]);
    expect(s.readyCalls()).toBe(0);
    expect(s.fallback.requests).toEqual([
      {
        messageId: ID,
        agentId: 'agent-a',
        reason: 'DEADLINE',
        event: 'EXPIRED_IN_QUEUE',
        fallback: { agentId: 'agent-a', to: PHONE, text: 'code 123456', from: 'ACME' },
      },
    ]);
  });

  it('without: EXPIRED and nothing else; one millisecond before its deadline it is still sent', async () => {
    const s = setup();
    await expect(s.handler(payload({ expireAt: NOW - 1 }), ctx())).resolves.toEqual({ outcome: 'EXPIRED' });
    expect(s.fallback.requests).toEqual([]);
    const t = setup();
    await expect(
      t.handler(payload({ expireAt: NOW + 1, message: { contentMessage: { text: 'x' }, ttl: '1s' } }), ctx()),
    ).resolves.toMatchObject({
      outcome: 'SENT',
    });
    expect(t.sent[0]!.body.ttl).toBe('0.001s');
  });
});

describe('send-message: RBM answers 404 (not RCS)', () => {
  it('NOT_RCS counts the attempt and falls back with the SMS it has in hand', async () => {
    const s = setup({ fails: api(404) });
    await expect(s.handler(withFallback(), ctx())).resolves.toEqual({ outcome: 'NOT_RCS', fallback: true });
    expect(s.status.path(REF)).toEqual(['SENDING', 'NOT_RCS']);
    expect(s.status.record(REF)!.attempts).toBe(1);
    expect(s.fallback.requests).toEqual([
      expect.objectContaining({ reason: 'NOT_RCS', event: 'NOT_RCS', fallback: expect.objectContaining({ text: 'code 123456' }) }),
    ]);
  });

  it('without SMS settings: NOT_RCS is the end, no fallback asked', async () => {
    const s = setup({ fails: api(404) });
    await expect(s.handler(payload(), ctx())).resolves.toEqual({ outcome: 'NOT_RCS', fallback: false });
    expect(s.fallback.requests).toEqual([]);
  });

  it('even on the last attempt it is an outcome, not a failure', async () => {
    const s = setup({ fails: api(404) });
    await expect(s.handler(payload(), ctx(3, 3))).resolves.toMatchObject({ outcome: 'NOT_RCS' });
    expect(s.status.record(REF)!.state).toBe('NOT_RCS');
  });
});

describe('send-message: failures the runner acts on', () => {
  it('429: rethrown as is for the runner to pause; the record stays SENDING with no attempt and no error', async () => {
    const err = api(429, 7_000);
    const s = setup({ fails: err });
    expect(await rejection(s.handler(payload(), ctx(3, 3)))).toBe(err);
    expect(classify(err)).toBe('rateLimited');
    expect(s.status.path(REF)).toEqual(['SENDING']);
    expect(s.status.record(REF)).toMatchObject({ state: 'SENDING', attempts: 0 });
    expect(s.status.record(REF)!.lastError).toBeUndefined();
    expect(s.log.lines).toEqual([]);
  });

  it('no token mid-send (defer): rethrown as is, the record stays SENDING with no attempt and no error', async () => {
    const err = new RbmTokenUnavailableError('token endpoint down', { retryAfterMs: 3_000 });
    const s = setup({ fails: err });
    expect(await rejection(s.handler(payload(), ctx(3, 3)))).toBe(err);
    expect(s.status.path(REF)).toEqual(['SENDING']);
    expect(s.status.record(REF)).toMatchObject({ state: 'SENDING', attempts: 0 });
    expect(s.status.record(REF)!.lastError).toBeUndefined();
  });

  it('5xx before the last attempt: SENDING again with the attempt and the error, a warning, rethrown to retry', async () => {
    const err = api(503);
    const s = setup({ fails: err });
    expect(await rejection(s.handler(payload(), ctx(1, 3)))).toBe(err);
    expect(s.status.path(REF)).toEqual(['SENDING', 'SENDING']);
    expect(s.status.record(REF)).toMatchObject({
      attempts: 1,
      lastError: { code: 'RBM_API', message: 'RBM POST answered 503 X: status 503' },
    });
    expect(s.log.lines.map((l) => [l.level, l.msg])).toEqual([['warn', 'send failed, will retry']]);
  });

  it('5xx on the last attempt: FAILED, an error, rethrown', async () => {
    const err = api(500);
    const s = setup({ fails: err });
    expect(await rejection(s.handler(payload(), ctx(3, 3)))).toBe(err);
    expect(s.status.record(REF)!.state).toBe('FAILED');
    expect(s.log.lines.map((l) => [l.level, l.msg])).toEqual([['error', 'message failed']]);
  });

  it('408 and network errors retry like a 5xx', async () => {
    for (const err of [api(408), new RbmNetworkError('socket hang up')]) {
      const s = setup({ fails: err });
      expect(await rejection(s.handler(payload(), ctx(1, 3)))).toBe(err);
      expect(s.status.record(REF)!.state, String(err)).toBe('SENDING');
    }
  });

  for (const status of [400, 401, 403, 409]) {
    it(`${status}: FAILED on the first attempt (permanent), rethrown`, async () => {
      const err = api(status);
      const s = setup({ fails: err });
      expect(await rejection(s.handler(payload(), ctx(1, 8)))).toBe(err);
      expect(classify(err)).toBe('permanent');
      expect(s.status.path(REF)).toEqual(['SENDING', 'FAILED']);
      expect(s.status.record(REF)).toMatchObject({ attempts: 1, lastError: { code: 'RBM_API' } });
      expect(s.fallback.requests).toEqual([]);
    });
  }

  it('an unexpected error records UNKNOWN, its message cut at 500 characters, and retries', async () => {
    const err = new TypeError('x'.repeat(800));
    const s = setup({ fails: err });
    expect(await rejection(s.handler(payload(), ctx(1, 3)))).toBe(err);
    const lastError = s.status.record(REF)!.lastError!;
    expect(lastError.code).toBe('UNKNOWN');
    expect(lastError.message).toHaveLength(500);
    expect(s.status.record(REF)!.state).toBe('SENDING');
  });

  it('logs the phone masked, never in full', async () => {
    const s = setup({ fails: api(500) });
    await rejection(s.handler(payload(), ctx(3, 3)));
    expect(s.log.lines[0]!.obj).toMatchObject({ to: '+1222***4444', messageId: ID, attempt: 3 });
    expect(s.log.text()).not.toContain(PHONE);
  });
});

describe('send-message: no access token', () => {
  it('token endpoint down: rethrown (defer) before any move, with no send', async () => {
    const err = new RbmTokenUnavailableError('token endpoint down', { retryAfterMs: 2_000 });
    const s = setup({ notReady: err });
    expect(await rejection(s.handler(withFallback(), ctx(3, 3)))).toBe(err);
    expect(classify(err)).toBe('defer');
    expect(s.status.calls).toEqual([]);
    expect(s.sent).toEqual([]);
  });

  it('the key refused (RbmAuthError): this try is recorded, SENDING → FAILED, nothing sent', async () => {
    const err = new RbmAuthError('invalid_grant');
    const s = setup({ notReady: err });
    expect(await rejection(s.handler(payload(), ctx(1, 8)))).toBe(err);
    expect(s.sent).toEqual([]);
    expect(s.status.path(REF)).toEqual(['SENDING', 'FAILED']);
    expect(s.status.record(REF)!.lastError).toEqual({ code: 'RBM_AUTH', message: 'invalid_grant' });
  });

  it('a passing failure to get one (not a token outage) is an attempt like a failed send', async () => {
    const err = new RbmNetworkError('connect ECONNREFUSED');
    const s = setup({ notReady: err });
    expect(await rejection(s.handler(payload(), ctx(1, 3)))).toBe(err);
    expect(s.sent).toEqual([]);
    expect(s.status.record(REF)).toMatchObject({ state: 'SENDING', attempts: 1, lastError: { code: 'RBM_NETWORK' } });
  });
});

describe('send-message: an invalid payload', () => {
  it('fails the message it names (permanent), and never calls RBM', async () => {
    const status = fakeStatus({ [`agent-a/${ID}`]: { state: 'QUEUED' } });
    const s = setup({ status });
    const err = await rejection(s.handler(payload({ to: '0044 123' }), ctx()));
    expect(err).toBeInstanceOf(PayloadError);
    expect(classify(err)).toBe('permanent');
    expect((err as PayloadError).problems.map((p) => p.path)).toEqual(['to']);
    expect(status.record(REF)).toMatchObject({ state: 'FAILED', lastError: { code: 'PAYLOAD_INVALID' } });
    expect(s.sent).toEqual([]);
    expect(s.readyCalls()).toBe(0);
  });

  it('one that names no message moves nothing', async () => {
    for (const bad of [null, 'text', { agentId: 'agent-a' }, { messageId: 7, agentId: 'agent-a' }]) {
      const s = setup();
      await expect(s.handler(bad, ctx())).rejects.toBeInstanceOf(PayloadError);
      expect(s.status.calls, JSON.stringify(bad)).toEqual([]);
    }
  });
});
