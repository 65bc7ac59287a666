/**
 * Dead letters over HTTP: messages that failed for good are listed with their
 * reason, and re-driven (the send again with the same ID, or the SMS again).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApi } from '../src/api/app.ts';
import { httpCall, rcsPhone, startHarness, waitFor, type Harness } from './helpers.ts';

let h: Harness;
let base: string;
beforeAll(async () => {
  h = await startHarness({ name: 'failures', env: { DISPATCH_ATTEMPTS: '2', SMS_ATTEMPTS: '1' } });
  base = await h.startHttp();
  h.startDispatch();
  h.startInbound();
  h.startSms();
});
afterAll(async () => {
  await h.close();
});

const control = (path: string, body: unknown) =>
  fetch(`${h.emulator.url}/_emulator${path}`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
/**
 * The message once it is in `expected`, or has settled elsewhere. NOT_RCS counts as on the way when
 * the test expects a fallback state: the 404's move and the fallback's are two steps, and a poll can
 * fall between them.
 */
const state = (id: string, expected: string) =>
  waitFor(
    async () => (await httpCall(base, 'GET', `/v1/messages/${id}`)).body,
    (s) =>
      s.state === expected ||
      !['QUEUED', 'SENDING', 'FALLBACK_QUEUED', 'FALLBACK_SENDING', ...(expected.startsWith('FALLBACK_') ? ['NOT_RCS'] : [])].includes(
        s.state,
      ),
  );

describe('dead letters', () => {
  it('lists failures with their reason, and re-drives a failed send with the same ID', async () => {
    const [a, b] = [rcsPhone(1), rcsPhone(2)];
    await control('/faults', {
      failNext: [
        { kind: '400', count: 1, phone: a },
        { kind: '503', count: 6, phone: b },
      ],
    });
    const first = (await httpCall(base, 'POST', '/v1/messages', { to: a, contentMessage: { text: 'one' } })).body.messageId;
    const second = (await httpCall(base, 'POST', '/v1/messages', { to: b, contentMessage: { text: 'two' } })).body.messageId;
    expect((await state(first, 'FAILED')).state).toBe('FAILED');
    expect((await state(second, 'FAILED')).state).toBe('FAILED');

    const listed = (await httpCall(base, 'GET', '/v1/failures')).body.failures;
    expect(listed.map((f: { messageId: string }) => f.messageId).sort()).toEqual([first, second].sort());
    expect(listed.find((f: { messageId: string }) => f.messageId === first)).toMatchObject({
      state: 'FAILED',
      reason: 'RBM_API',
      agentId: 'agent-a',
      to: expect.stringContaining('***'),
    });
    expect(listed.find((f: { messageId: string }) => f.messageId === first).message).toContain('400');
    expect((await httpCall(base, 'GET', '/v1/failures?reason=RBM_API&limit=1')).body.failures).toHaveLength(1);
    expect((await httpCall(base, 'GET', '/v1/failures?reason=NOPE')).body.failures).toEqual([]);

    const retried = await httpCall(base, 'POST', '/v1/failures:retry', { messageIds: [first] });
    expect(retried.body).toEqual({ retried: [first], skipped: [] });
    const after = await waitFor(
      async () => (await httpCall(base, 'GET', `/v1/messages/${first}`)).body,
      (s) => s.state === 'DELIVERED',
    );
    expect(after.timeline.map((t: { event?: string }) => t.event)).toContain('REDRIVE');
    expect((await httpCall(base, 'GET', '/v1/failures')).body.failures.map((f: { messageId: string }) => f.messageId)).toEqual([second]);

    // By reason: the rest with that code.
    expect((await httpCall(base, 'POST', '/v1/failures:retry', { reason: 'RBM_API' })).body).toEqual({ retried: [second], skipped: [] });
    await waitFor(
      async () => (await httpCall(base, 'GET', `/v1/messages/${second}`)).body,
      (s) => s.state === 'DELIVERED',
    );
    for (const [to, id] of [
      [a, first],
      [b, second],
    ] as const) {
      const phone = (await (await fetch(`${h.emulator.url}/_emulator/phones/${encodeURIComponent(to)}`)).json()) as {
        arrivals: Array<{ id: string }>;
      };
      expect(phone.arrivals.map((x) => x.id)).toEqual([id]);
    }
    expect((await httpCall(base, 'POST', '/v1/failures:retry', { messageIds: [first] })).body.skipped).toEqual([
      { messageId: first, why: 'it is DELIVERED, not failed' },
    ]);
  });

  it('re-drives a failed SMS fallback, once', async () => {
    const to = '+15558880000'; // not RCS: straight to SMS
    await control('/sms/faults', { failNext: [{ kind: '400', count: 1 }] });
    const id = (
      await httpCall(base, 'POST', '/v1/messages', { to, contentMessage: { text: 'x' }, fallback: { sms: { text: 'Your code is 4242' } } })
    ).body.messageId;
    expect(await state(id, 'FALLBACK_FAILED')).toMatchObject({ state: 'FALLBACK_FAILED', lastError: { code: 'SMS_PROVIDER' } });
    expect(
      (await httpCall(base, 'GET', '/v1/failures?reason=SMS_PROVIDER')).body.failures.map((f: { messageId: string }) => f.messageId),
    ).toEqual([id]);
    expect((await httpCall(base, 'POST', '/v1/failures:retry', { messageIds: [id] })).body).toEqual({ retried: [id], skipped: [] });
    expect((await state(id, 'FALLBACK_SENT')).state).toBe('FALLBACK_SENT');
    expect(((await (await fetch(`${h.emulator.url}/_emulator/sms/${encodeURIComponent(to)}`)).json()) as { count: number }).count).toBe(1);
  });

  it("an API key sees and re-drives only its own agents' failures", async () => {
    const to = rcsPhone(9);
    await control('/faults', { failNext: [{ kind: '400', count: 1, phone: to }] });
    const id = (await httpCall(base, 'POST', '/v1/messages', { to, contentMessage: { text: 'x' } })).body.messageId;
    expect((await state(id, 'FAILED')).state).toBe('FAILED');
    const key = { authorization: 'Bearer key-of-another-agent-0001' };
    const app = buildApi({
      producer: h.producer,
      apiKeys: [{ key: 'key-of-another-agent-0001', agents: ['agent-z'] }],
      openWithoutKeys: false,
      failures: { list: h.service.failures, redrive: h.service.redrive },
    });
    const other = await app.listen({ port: 0, host: '127.0.0.1' });
    try {
      expect((await httpCall(base, 'GET', '/v1/failures')).body.failures.map((f: { messageId: string }) => f.messageId)).toContain(id);
      expect((await httpCall(other, 'GET', '/v1/failures', undefined, key)).body).toEqual({ failures: [] });
      expect((await httpCall(other, 'POST', '/v1/failures:retry', { messageIds: [id] }, key)).body).toEqual({
        retried: [],
        skipped: [{ messageId: id, why: 'no such message' }],
      });
      expect((await httpCall(other, 'POST', '/v1/failures:retry', { reason: 'RBM_API' }, key)).body).toEqual({ retried: [], skipped: [] });
      expect((await httpCall(base, 'GET', `/v1/messages/${id}`)).body.state).toBe('FAILED');
    } finally {
      await app.close();
    }
  });

  it('refuses bad re-drive and list requests', async () => {
    expect((await httpCall(base, 'POST', '/v1/failures:retry', {})).status).toBe(400);
    expect((await httpCall(base, 'POST', '/v1/failures:retry', { messageIds: [] })).body.error.details[0].path).toBe('messageIds');
    expect((await httpCall(base, 'GET', '/v1/failures?limit=0')).body.error.details[0]).toMatchObject({ path: 'limit' });
    expect(
      (await httpCall(base, 'POST', '/v1/failures:retry', { messageIds: ['00000000-0000-4000-8000-000000000009'] })).body.skipped[0].why,
    ).toBe('no such message');
  });
});
