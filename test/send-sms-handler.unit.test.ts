/**
 * The send-sms handler against fakes: the claim before the send, what each
 * kind of provider failure does to the record and what is thrown, the last
 * attempt. (The crash-in-flight cases are in send-sms-handler.test.ts, against
 * Redis.) No Redis, no network.
 */
import { describe, expect, it } from 'vitest';
import { smsIdempotencyKey } from '../jobs/send-sms.ts';
import { classify, PayloadError } from '../src/errors.ts';
import { createSendSmsHandler } from '../src/handlers/send-sms.ts';
import { SmsProviderError, type SmsErrorKind } from '../src/sms/errors.ts';
import type { SmsRequest } from '../src/sms/types.ts';
import type { MessageState } from '../src/status/states.ts';
import { fakeStatus, recordingLog, rejection } from './fakes.ts';

const ID = '2f1e0c7e-4a3b-4c5d-9e8f-0a1b2c3d4e5f';
const REF = { agentId: 'agent-a', messageId: ID };
const PHONE = '+12223334444';
const payload = (over: Record<string, unknown> = {}) => ({
  messageId: ID,
  agentId: 'agent-a',
  to: PHONE,
  text: 'Your code is 123456',
  reason: 'NOT_RCS',
  queuedAt: 1,
  ...over,
});
const ctx = (attempt = 1, maxAttempts = 5) => ({ jobId: `sms-agent-a-${ID}`, attempt, maxAttempts });
const providerError = (kind: SmsErrorKind, status?: number) =>
  new SmsProviderError({ provider: 'twilio', kind, message: `Twilio answered ${status ?? 'nothing'}`, status, retryAfterMs: 1500 });

function setup(state: MessageState | null, fails?: unknown, fields: Record<string, string> = {}, idempotent = false) {
  const status = fakeStatus(state ? { [`agent-a/${ID}`]: { state, fields } } : {});
  const log = recordingLog();
  const sent: SmsRequest[] = [];
  const handler = createSendSmsHandler({
    status: status.port,
    provider: {
      name: 'twilio',
      async send(request) {
        sent.push(request);
        if (fails !== undefined) throw fails;
        return { providerMessageId: 'SM123', provider: 'twilio' };
      },
    },
    idempotent,
    log,
  });
  return { handler, status, log, sent, record: () => status.record(REF)! };
}

describe('send-sms: sent', () => {
  it('claims the record (FALLBACK_SENDING, in flight) before the send, then FALLBACK_SENT with the provider’s ID', async () => {
    const s = setup('FALLBACK_QUEUED');
    await expect(s.handler(payload({ from: 'ACME' }), ctx())).resolves.toEqual({ outcome: 'FALLBACK_SENT', providerMessageId: 'SM123' });
    expect(s.status.path(REF)).toEqual(['FALLBACK_SENDING', 'FALLBACK_SENT']);
    expect(s.status.calls[0]!.options).toEqual({ fields: { smsInFlight: '1' }, detail: 'SMS try 1 (NOT_RCS)' });
    expect(s.status.calls[1]!.options).toEqual({
      fields: { smsInFlight: '0', smsId: 'SM123', smsProvider: 'twilio' },
      detail: 'SMS sent (NOT_RCS)',
    });
    expect(s.sent).toEqual([
      { to: PHONE, text: 'Your code is 123456', from: 'ACME', idempotencyKey: smsIdempotencyKey({ agentId: 'agent-a', messageId: ID }) },
    ]);
  });

  it('a retry after a try that failed cleanly (not in flight) sends again, even without an idempotent provider', async () => {
    const s = setup('FALLBACK_SENDING', undefined, { smsInFlight: '0' });
    await expect(s.handler(payload({ reason: 'DEADLINE' }), ctx(2))).resolves.toMatchObject({ outcome: 'FALLBACK_SENT' });
    expect(s.sent).toHaveLength(1);
    expect(s.sent[0]!.from).toBeUndefined();
    expect(s.status.calls[0]!.options.detail).toBe('SMS try 2 (DEADLINE)');
  });
});

describe('send-sms: not claimed', () => {
  for (const state of ['DELIVERED', 'READ', 'FALLBACK_SENT', 'FALLBACK_FAILED', 'SENT', 'QUEUED', null] as const) {
    it(`a message ${state ?? 'with no record'} gets no SMS`, async () => {
      const s = setup(state);
      await expect(s.handler(payload(), ctx())).resolves.toEqual({ outcome: 'CANCELLED', state });
      expect(s.sent).toEqual([]);
    });
  }
});

describe('send-sms: the provider fails', () => {
  it('429 (rateLimited): nothing in flight any more, no move, no attempt spent, rethrown for the runner', async () => {
    const err = providerError('rateLimited', 429);
    const s = setup('FALLBACK_QUEUED', err);
    expect(await rejection(s.handler(payload(), ctx(5, 5)))).toBe(err);
    expect(classify(err)).toBe('rateLimited');
    expect(s.status.path(REF)).toEqual(['FALLBACK_SENDING']);
    expect(s.record()).toMatchObject({ state: 'FALLBACK_SENDING', fields: { smsInFlight: '0' } });
    expect(s.record().lastError).toBeUndefined();
    expect(s.log.lines).toEqual([]);
  });

  it('retry before the last attempt: FALLBACK_SENDING again with the error, a warning, rethrown', async () => {
    const err = providerError('retry', 503);
    const s = setup('FALLBACK_QUEUED', err);
    expect(await rejection(s.handler(payload(), ctx(4, 5)))).toBe(err);
    expect(s.status.path(REF)).toEqual(['FALLBACK_SENDING', 'FALLBACK_SENDING']);
    expect(s.record()).toMatchObject({ fields: { smsInFlight: '0' }, lastError: { code: 'SMS_PROVIDER', message: 'Twilio answered 503' } });
    expect(s.log.lines.map((l) => [l.level, l.msg])).toEqual([['warn', 'SMS send failed, will retry']]);
  });

  it('retry on the last attempt: FALLBACK_FAILED', async () => {
    const err = providerError('retry');
    const s = setup('FALLBACK_QUEUED', err);
    expect(await rejection(s.handler(payload(), ctx(5, 5)))).toBe(err);
    expect(s.record().state).toBe('FALLBACK_FAILED');
    expect(s.log.lines.map((l) => [l.level, l.msg])).toEqual([['error', 'SMS fallback failed']]);
  });

  it('permanent (a 400, an invalid number): FALLBACK_FAILED on the first attempt', async () => {
    const err = providerError('permanent', 400);
    const s = setup('FALLBACK_QUEUED', err);
    expect(await rejection(s.handler(payload(), ctx(1, 5)))).toBe(err);
    expect(classify(err)).toBe('permanent');
    expect(s.record()).toMatchObject({ state: 'FALLBACK_FAILED', fields: { smsInFlight: '0' } });
  });

  it('an adapter breaking its contract (a plain Error) is retried, recorded as SMS_PROVIDER', async () => {
    const err = new Error('x'.repeat(900));
    const s = setup('FALLBACK_QUEUED', err);
    expect(await rejection(s.handler(payload(), ctx(1, 5)))).toBe(err);
    expect(classify(err)).toBe('retry');
    expect(s.record().state).toBe('FALLBACK_SENDING');
    expect(s.record().lastError!.code).toBe('SMS_PROVIDER');
    expect(s.record().lastError!.message).toHaveLength(500);
  });

  it('logs the phone masked', async () => {
    const s = setup('FALLBACK_QUEUED', providerError('permanent', 400));
    await rejection(s.handler(payload(), ctx()));
    expect(s.log.lines[0]!.obj).toMatchObject({ to: '+1222***4444', messageId: ID });
    expect(s.log.text()).not.toContain(PHONE);
  });
});

describe('send-sms: an invalid payload', () => {
  it('is permanent, claims nothing and sends nothing', async () => {
    const s = setup('FALLBACK_QUEUED');
    for (const bad of [payload({ reason: 'BECAUSE' }), payload({ text: '' }), payload({ to: '12223334444' }), null]) {
      const err = await rejection(s.handler(bad, ctx()));
      expect(err).toBeInstanceOf(PayloadError);
      expect(classify(err)).toBe('permanent');
    }
    expect(s.status.calls).toEqual([]);
    expect(s.sent).toEqual([]);
  });
});
