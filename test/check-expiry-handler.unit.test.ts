/**
 * The check-expiry handler (the local deadline) against fakes: only a message
 * still SENT is revoked; a 200 falls back, a 404 (already delivered) records
 * the delivery; a refusal is logged and thrown. No Redis, no network.
 */
import { describe, expect, it } from 'vitest';
import { classify, PayloadError, RbmApiError, RbmNetworkError } from '../src/errors.ts';
import type { FallbackOutcome } from '../src/fallback/fallback.ts';
import { createCheckExpiryHandler } from '../src/handlers/check-expiry.ts';
import type { MessageState } from '../src/status/states.ts';
import { fakeFallback, fakeStatus, recordingLog, rejection } from './fakes.ts';

const ID = '2f1e0c7e-4a3b-4c5d-9e8f-0a1b2c3d4e5f';
const REF = { agentId: 'agent-a', messageId: ID };
const PHONE = '+12223334444';
const payload = { messageId: ID, agentId: 'agent-a', to: PHONE, expireAt: 1_800_000_000_000 };
const ctx = { jobId: `exp-agent-a-${ID}`, attempt: 1, maxAttempts: 8 };
const api = (status: number) => new RbmApiError({ status, rpcStatus: 'X', message: 'x', method: 'DELETE', path: '/agentMessages/…' });

function setup(state: MessageState | null, revoke: boolean | Error = true, answer?: FallbackOutcome) {
  const status = fakeStatus(state ? { [`agent-a/${ID}`]: { state } } : {});
  const fallback = fakeFallback(answer ? () => answer : undefined);
  const log = recordingLog();
  const revokes: unknown[] = [];
  const handler = createCheckExpiryHandler({
    status: status.port,
    requestFallback: fallback.requestFallback,
    rbm: {
      async revokeMessage(args) {
        revokes.push(args);
        if (revoke instanceof Error) throw revoke;
        return revoke;
      },
    },
    log,
  });
  return { handler, status, fallback, log, revokes };
}

describe('check-expiry', () => {
  const settled: Array<MessageState | null> = [
    null,
    'QUEUED',
    'SENDING',
    'DELIVERED',
    'READ',
    'NOT_RCS',
    'FAILED',
    'EXPIRED',
    'REVOKED',
    'FALLBACK_QUEUED',
    'FALLBACK_SENDING',
    'FALLBACK_SENT',
    'FALLBACK_FAILED',
  ];
  for (const state of settled) {
    it(`a message ${state ?? 'with no record'} is left alone: no revoke, no move`, async () => {
      const s = setup(state);
      await expect(s.handler(payload, ctx)).resolves.toEqual({ outcome: 'NOTHING_TO_DO', state });
      expect(s.revokes).toEqual([]);
      expect(s.status.calls).toEqual([]);
      expect(s.fallback.requests).toEqual([]);
    });
  }

  it('SENT and revoked (200): never delivered, so the DEADLINE fallback; the outcome is the fallback’s', async () => {
    const s = setup('SENT', true);
    await expect(s.handler(payload, ctx)).resolves.toEqual({ outcome: 'FALLBACK_QUEUED' });
    expect(s.revokes).toEqual([{ agentId: 'agent-a', to: PHONE, messageId: ID }]);
    expect(s.fallback.requests).toEqual([
      {
        messageId: ID,
        agentId: 'agent-a',
        reason: 'DEADLINE',
        event: 'DEADLINE',
        detail: 'nothing heard by expireTime + grace; revoke answered 200',
      },
    ]);
    // The fallback decides the record's move; the handler makes none of its own.
    expect(s.status.calls).toEqual([]);
  });

  it('SENT and revoked with no SMS settings: the fallback ends it EXPIRED', async () => {
    const s = setup('SENT', true, { outcome: 'EXPIRED' });
    await expect(s.handler(payload, ctx)).resolves.toEqual({ outcome: 'EXPIRED' });
  });

  it('SENT and revoke answered 404: it was delivered after all, recorded as DELIVERED by the DEADLINE', async () => {
    const s = setup('SENT', false);
    await expect(s.handler(payload, ctx)).resolves.toEqual({ outcome: 'DELIVERED' });
    expect(s.status.path(REF)).toEqual(['DELIVERED']);
    expect(s.status.calls[0]!.options).toEqual({ event: 'DEADLINE', detail: 'revoke answered 404: already delivered' });
    expect(s.fallback.requests).toEqual([]);
  });

  for (const status of [400, 403]) {
    it(`revoke refused (${status}, permanent): logged as an error and thrown, nothing moved`, async () => {
      const err = api(status);
      const s = setup('SENT', err);
      expect(await rejection(s.handler(payload, ctx))).toBe(err);
      expect(classify(err, 'revoke')).toBe('permanent');
      expect(s.log.lines).toMatchObject([{ level: 'error', msg: 'revoke at the local deadline refused', obj: { messageId: ID } }]);
      expect(s.status.calls).toEqual([]);
      expect(s.fallback.requests).toEqual([]);
    });
  }

  for (const [name, err, kind] of [
    ['429', api(429), 'rateLimited'],
    ['500', api(500), 'retry'],
    ['no answer', new RbmNetworkError('ECONNRESET'), 'retry'],
  ] as const) {
    it(`revoke ${name}: thrown for the runner (${kind}) without an error log`, async () => {
      const s = setup('SENT', err);
      expect(await rejection(s.handler(payload, ctx))).toBe(err);
      expect(classify(err, 'revoke')).toBe(kind);
      expect(s.log.lines).toEqual([]);
      expect(s.status.calls).toEqual([]);
    });
  }

  it('an invalid payload is permanent and reads nothing', async () => {
    const s = setup('SENT');
    for (const bad of [{ ...payload, expireAt: -1 }, { ...payload, messageId: 'x' }, { messageId: ID }, undefined]) {
      const err = await rejection(s.handler(bad, ctx));
      expect(err).toBeInstanceOf(PayloadError);
      expect(classify(err)).toBe('permanent');
    }
    expect(s.revokes).toEqual([]);
  });
});
