/**
 * The send-event handler against a fake RBM client: the body each event type
 * sends, stale typing indicators dropped, 404 as an outcome, everything else
 * left to the runner as thrown. No Redis, no network.
 */
import { describe, expect, it } from 'vitest';
import { classify, PayloadError, RbmApiError, RbmNetworkError, RbmTokenUnavailableError } from '../src/errors.ts';
import { createSendEventHandler } from '../src/handlers/send-event.ts';
import type { AgentEventBody } from '../src/rbm/types.ts';
import { recordingLog, rejection } from './fakes.ts';

const NOW = 1_800_000_000_000;
const EVENT_ID = '9d2c6a3e-1b4f-4e8a-9c7d-5f6e7a8b9c0d';
const PHONE = '+12223334444';
const TYPING_MAX_AGE_MS = 10_000;
const ctx = { jobId: `evt-${EVENT_ID}`, attempt: 1, maxAttempts: 5 };

const read = (over: Record<string, unknown> = {}) => ({
  eventId: EVENT_ID,
  agentId: 'agent-a',
  to: PHONE,
  eventType: 'READ',
  messageId: 'MxUserMessage-1',
  enqueuedAt: NOW - 60_000,
  ...over,
});
const typing = (ageMs: number) => ({ eventId: EVENT_ID, agentId: 'agent-a', to: PHONE, eventType: 'IS_TYPING', enqueuedAt: NOW - ageMs });
const api = (status: number) => new RbmApiError({ status, rpcStatus: 'X', message: 'x', method: 'POST', path: '/agentEvents' });

function setup(fails?: unknown) {
  const calls: Array<{ agentId: string; to: string; eventId: string; body: AgentEventBody }> = [];
  const log = recordingLog();
  const handler = createSendEventHandler({
    rbm: {
      async createEvent(args) {
        calls.push(args);
        if (fails !== undefined) throw fails;
        return { duplicate: true as const };
      },
    },
    log,
    typingMaxAgeMs: TYPING_MAX_AGE_MS,
    now: () => NOW,
  });
  return { handler, calls, log };
}

describe('send-event: what is sent', () => {
  it('READ names the user message it marks read, under the eventId fixed at enqueue, however old it is', async () => {
    const s = setup();
    await expect(s.handler(read(), ctx)).resolves.toEqual({ outcome: 'SENT' });
    expect(s.calls).toEqual([
      { agentId: 'agent-a', to: PHONE, eventId: EVENT_ID, body: { eventType: 'READ', messageId: 'MxUserMessage-1' } },
    ]);
  });

  it('IS_TYPING names no message, and is sent up to typingMaxAgeMs after it was queued', async () => {
    const s = setup();
    await expect(s.handler(typing(TYPING_MAX_AGE_MS), ctx)).resolves.toEqual({ outcome: 'SENT' });
    expect(s.calls.map((c) => c.body)).toEqual([{ eventType: 'IS_TYPING' }]);
  });

  it('IS_TYPING older than that is dropped without a call: nobody is typing any more', async () => {
    const s = setup();
    await expect(s.handler(typing(TYPING_MAX_AGE_MS + 1), ctx)).resolves.toEqual({
      outcome: 'DROPPED_STALE',
      ageMs: TYPING_MAX_AGE_MS + 1,
    });
    expect(s.calls).toEqual([]);
  });
});

describe('send-event: RBM refuses', () => {
  it('404 (not reachable over RCS) is an outcome, logged with the phone masked', async () => {
    const s = setup(api(404));
    await expect(s.handler(read(), ctx)).resolves.toEqual({ outcome: 'NOT_RCS' });
    expect(s.log.lines).toHaveLength(1);
    expect(s.log.lines[0]).toMatchObject({ level: 'info', obj: { eventId: EVENT_ID, to: '+1222***4444' } });
    expect(s.log.text()).not.toContain(PHONE);
  });

  const thrown: Array<[string, unknown, string]> = [
    ['429', api(429), 'rateLimited'],
    ['500', api(500), 'retry'],
    ['503', api(503), 'retry'],
    ['408', api(408), 'retry'],
    ['400', api(400), 'permanent'],
    ['401', api(401), 'permanent'],
    ['403', api(403), 'permanent'],
    ['no answer', new RbmNetworkError('ETIMEDOUT'), 'retry'],
    ['no token', new RbmTokenUnavailableError('down', { retryAfterMs: 500 }), 'defer'],
  ];
  for (const [name, err, kind] of thrown) {
    it(`${name}: rethrown unchanged for the runner (${kind})`, async () => {
      const s = setup(err);
      expect(await rejection(s.handler(read(), ctx))).toBe(err);
      expect(classify(err, 'event')).toBe(kind);
      expect(s.log.lines).toEqual([]);
    });
  }
});

describe('send-event: an invalid payload', () => {
  const bad: Array<[string, unknown, string]> = [
    ['READ without the message it marks', read({ messageId: undefined }), 'messageId'],
    ['IS_TYPING naming a message', { ...typing(0), messageId: 'm' }, 'messageId'],
    ['an unknown event type', read({ eventType: 'DELIVERED' }), 'eventType'],
    ['a non-UUID eventId', read({ eventId: 'evt-1' }), 'eventId'],
  ];
  for (const [name, payload, path] of bad) {
    it(`${name}: PayloadError (permanent) at ${path}, no call`, async () => {
      const s = setup();
      const err = await rejection(s.handler(payload, ctx));
      expect(err).toBeInstanceOf(PayloadError);
      expect(classify(err)).toBe('permanent');
      expect((err as PayloadError).problems.map((p) => p.path)).toContain(path);
      expect(s.calls).toEqual([]);
    });
  }
});
