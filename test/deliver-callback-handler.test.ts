/**
 * The deliver-callback handler against plain fakes of its ports: what it does
 * with each answer of the receivers' gate (call, probe, busy, open), when a
 * parked delivery gives up, and what it reports after a call.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { CallbackDeliveryError, CallbackExpiredError, CallbackParkedError } from '../src/callbacks/errors.ts';
import type { Admission, CallResult, ReceiverPort } from '../src/callbacks/receivers.ts';
import { classify } from '../src/errors.ts';
import { createDeliverCallbackHandler } from '../src/handlers/deliver-callback.ts';

const NOW = 1_800_000_000_000;
const payload = {
  url: 'https://hooks.example.com/rbm?token=secret',
  scope: 'default',
  data: { messageId: '0b6c1a52-5f7e-4c1d-9a3b-2e8f4d6c1a01', agentId: 'agent-a', state: 'SENT', previousState: 'SENDING', at: NOW - 1000 },
};
const silent = { info() {}, warn() {}, error() {}, debug() {} };

function setup(admission: Admission, answer: number | Error = 200, opts: { reportFails?: boolean } = {}) {
  const calls: string[] = [];
  const reports: CallResult[] = [];
  const forgotten: string[] = [];
  const counted: string[] = [];
  const receivers: ReceiverPort = {
    admit: async () => admission,
    report: async (_origin, _jobId, result) => {
      reports.push(result);
      if (opts.reportFails) throw new Error('Redis is away');
    },
    forget: async (_origin, jobId) => void forgotten.push(jobId),
  };
  const handler = createDeliverCallbackHandler({
    secretFor: () => `whsec_${randomBytes(32).toString('base64')}`,
    post: async (url) => {
      calls.push(url);
      if (answer instanceof Error) throw answer;
      return answer;
    },
    count: async (outcome) => void counted.push(outcome),
    receivers,
    retryForMs: 60_000,
    log: silent,
    now: () => NOW,
  });
  return { handler, calls, reports, forgotten, counted };
}

const ctx = (over: Partial<{ attempt: number; maxAttempts: number; queuedAt: number }> = {}) => ({
  jobId: 'cb-1',
  attempt: 1,
  maxAttempts: 3,
  queuedAt: NOW - 1000,
  ...over,
});

describe('deliver-callback and its receiver', () => {
  it('admitted: calls, and reports a delivered call as done', async () => {
    const s = setup({ verdict: 'call' });
    await expect(s.handler(payload, ctx())).resolves.toEqual({ outcome: 'DELIVERED', status: 200 });
    expect(s.calls).toHaveLength(1);
    expect(s.reports).toEqual([{ ok: true, probe: false, done: true }]);
  });

  it('a probe that fails is reported as the probe, not done while attempts remain; the last attempt is done', async () => {
    const s = setup({ verdict: 'probe' }, new Error('connect ECONNREFUSED'));
    await expect(s.handler(payload, ctx())).rejects.toBeInstanceOf(CallbackDeliveryError);
    await expect(s.handler(payload, ctx({ attempt: 3 }))).rejects.toBeInstanceOf(CallbackDeliveryError);
    expect(s.reports).toEqual([
      { ok: false, probe: true, done: false, failure: 'no answer (connect ECONNREFUSED)' },
      { ok: false, probe: true, done: true, failure: 'no answer (connect ECONNREFUSED)' },
    ]);
    expect(s.counted).toEqual(['retried', 'failed']);
  });

  it('busy or open: no call, parked without an attempt (defer) until the gate says; only the origin is named', async () => {
    const busy = setup({ verdict: 'busy', untilMs: NOW + 2500 });
    const err = await busy.handler(payload, ctx()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CallbackParkedError);
    expect(err).toMatchObject({ code: 'CALLBACK_PARKED', reason: 'busy', retryAfterMs: 2500, origin: 'https://hooks.example.com' });
    expect(classify(err)).toBe('defer');
    expect((err as Error).message).not.toContain('secret');
    const open = setup({ verdict: 'open', untilMs: NOW + 5000, lastFailure: 'answered 503' });
    await expect(open.handler(payload, ctx())).rejects.toMatchObject({ reason: 'open', retryAfterMs: 5000 });
    expect([...busy.calls, ...open.calls, ...busy.reports, ...open.reports]).toEqual([]);
  });

  it('open: never parked past the retry horizon, and at the horizon it fails for good, forgotten by its receiver', async () => {
    const s = setup({ verdict: 'open', untilMs: NOW + 120_000, lastFailure: 'answered 503' });
    await expect(s.handler(payload, ctx({ queuedAt: NOW - 50_000 }))).rejects.toMatchObject({ retryAfterMs: 10_000 });
    const err = await s.handler(payload, ctx({ queuedAt: NOW - 60_000 })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CallbackExpiredError);
    expect(err).toMatchObject({
      code: 'CALLBACK_EXPIRED',
      message:
        'status callback to https://hooks.example.com not delivered within the retry horizon: its receiver kept failing (last: answered 503)',
    });
    expect(classify(err)).toBe('permanent');
    expect(s.forgotten).toEqual(['cb-1']);
    expect(s.counted).toEqual(['failed']);
    expect(s.calls).toEqual([]);
  });

  it('a delivered callback stays delivered when its report cannot be made (no second POST for that)', async () => {
    const s = setup({ verdict: 'call' }, 204, { reportFails: true });
    await expect(s.handler(payload, ctx())).resolves.toEqual({ outcome: 'DELIVERED', status: 204 });
  });
});
