/**
 * The producer API as a producer drives it, over real HTTP with a real Redis
 * and the emulator: single sends, a 10,000-message batch and its progress,
 * status with timeline, revoke, read receipts, idempotent retries, and the
 * status callbacks a producer registers, verified with `standardwebhooks`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import { sendMessageJobId } from '../jobs/send-message.ts';
import { sendSmsJobId, SMS_QUEUE } from '../jobs/index.ts';
import { arrivals, httpCall, rcsPhone, startCallbackReceiver, startHarness, waitFor, type Harness } from './helpers.ts';

let h: Harness;
let base: string;

beforeAll(async () => {
  // 200 in flight, not the 1,000 that 'auto' derives from 5,000/s: in one process with the emulator on a
  // busy machine, 1,000 jobs in flight took ~10 s each (a thousand requests sharing one event loop).
  h = await startHarness({
    name: 'api-producer',
    env: {
      RBM_AGENTS: 'agent-a:5000,agent-b:100',
      DISPATCH_CONCURRENCY: '200',
      FALLBACK_GRACE_MS: '500',
      CALLBACK_SECRET: `whsec_${randomBytes(32).toString('base64')}`,
      CALLBACK_ALLOW_HOSTS: '127.0.0.1',
    },
  });
  base = await h.startHttp();
});
afterAll(async () => {
  await h.close();
});

const call = (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) =>
  httpCall(base, method, path, body, headers);
const msg = (to: string, extra: Record<string, unknown> = {}) => ({ to, agentId: 'agent-a', contentMessage: { text: 'hello' }, ...extra });

describe('producer API, driven over HTTP', () => {
  it('send, status with timeline, and an idempotent retry of the POST', async () => {
    h.startDispatch();
    h.startInbound();
    const first = await call('POST', '/v1/messages', msg(rcsPhone(1)), { 'idempotency-key': 'order-1' });
    expect(first).toMatchObject({ status: 202, body: { state: 'QUEUED', duplicate: false } });
    const again = await call('POST', '/v1/messages', msg(rcsPhone(1)), { 'idempotency-key': 'order-1' });
    expect(again.body).toMatchObject({ messageId: first.body.messageId, duplicate: true });
    const status = await waitFor(
      async () => (await call('GET', `/v1/messages/${first.body.messageId}`)).body,
      (s) => s.state === 'DELIVERED',
    );
    expect(status.timeline.map((t: { state: string }) => t.state)).toEqual(['QUEUED', 'SENDING', 'SENT', 'DELIVERED']);
    expect(((await h.emulator.state.messages.get(first.body.messageId)) as { count: number }).count).toBe(1);
  });

  it('read receipts and typing, single and batched; keyed ones queue once', async () => {
    // The 51 distinct events (1 + 50) reaching the emulator; a queued duplicate would arrive as a 'duplicate', not here.
    const accepted = arrivals(h.emulator, 51, (a) => a.kind === 'event');
    const one = await call('POST', '/v1/events', { to: rcsPhone(2), agentId: 'agent-a', eventType: 'READ', messageId: 'MxUserMsg-1' });
    expect(one).toMatchObject({ status: 202, body: { duplicate: false } });
    const events = Array.from({ length: 50 }, (_, i) => ({
      to: rcsPhone(300 + i),
      agentId: 'agent-a',
      eventType: 'READ',
      messageId: `MxUser-${i}`,
    }));
    const batch = await call('POST', '/v1/events:batch', { events }, { 'idempotency-key': 'desk-sweep-1' });
    expect(batch.body.eventIds).toHaveLength(50);
    expect((await call('POST', '/v1/events:batch', { events }, { 'idempotency-key': 'desk-sweep-1' })).body).toMatchObject({
      duplicates: 50,
    });
    await accepted;
  });

  it('revoke: a message to an offline phone is revoked and falls back to SMS', async () => {
    h.startSms();
    const to = rcsPhone(4);
    h.emulator.state.setPhone(to, { online: false });
    const sent = await call('POST', '/v1/messages', msg(to, { ttl: '60s', fallback: { sms: { text: 'Your parcel arrives today' } } }));
    // The send job writes SENT before it completes.
    expect(await h.outcome('agent-a', sendMessageJobId(sent.body.messageId))).toMatchObject({ outcome: 'SENT' });
    // RBM fails the DELETE, each of its 3 tries (RBM_FAST_RETRIES 2): 502 with RBM's code, worth a retry, and nothing changed.
    await fetch(`${h.emulator.url}/_emulator/faults`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ failNext: [{ kind: '503', count: 3, phone: to }] }),
    });
    expect(await call('DELETE', `/v1/messages/${sent.body.messageId}?fallback=true`)).toMatchObject({
      status: 502,
      body: { error: { code: 'RBM_API' } },
    });
    expect((await call('GET', `/v1/messages/${sent.body.messageId}`)).body.state).toBe('SENT');
    expect(await call('DELETE', `/v1/messages/${sent.body.messageId}?fallback=true`)).toMatchObject({
      status: 200,
      body: { state: 'FALLBACK_QUEUED', fallback: true },
    });
    // The SMS job writes FALLBACK_SENT before it completes.
    expect(await h.outcomeOn(SMS_QUEUE, sendSmsJobId(sent.body.messageId, 'agent-a'))).toMatchObject({ outcome: 'FALLBACK_SENT' });
    expect((await call('GET', `/v1/messages/${sent.body.messageId}`)).body.state).toBe('FALLBACK_SENT');
    expect((await call('DELETE', `/v1/messages/${sent.body.messageId}`)).status).toBe(409);
  });

  it('status callbacks: register a URL, then every change of a message arrives signed, verified with standardwebhooks', async () => {
    h.startCallbacks();
    const receiver = await startCallbackReceiver();
    try {
      const registered = await call('PUT', '/v1/callback', { url: `${receiver.url}/rbm-status` });
      expect(registered.status).toBe(200);
      const webhook = new Webhook(registered.body.secret);
      const sent = await call('POST', '/v1/messages', msg(rcsPhone(5)), { 'idempotency-key': 'order-callback-1' });
      const id = sent.body.messageId as string;
      const got = await receiver.until(3, (r) => r.body.includes(id));
      const changes = got.map(
        (r) => webhook.verify(r.body, r.headers) as { type: string; data: { messageId: string; state: string; at: number } },
      );
      expect(changes.every((c) => c.type === 'message.status_changed' && c.data.messageId === id)).toBe(true);
      expect(changes.sort((a, b) => a.data.at - b.data.at).map((c) => c.data.state)).toEqual(['SENDING', 'SENT', 'DELIVERED']);
      expect(got.every((r) => r.path === '/rbm-status')).toBe(true);
    } finally {
      // Registered for every message of this key: the batch below would otherwise send 30,000 callbacks to a closed port.
      await call('DELETE', '/v1/callback');
      await receiver.close();
    }
  });
  // Last: a batch that fails to drain would leave a backlog in front of every later test's messages.
  it('a batch of 10,000: one batchId, every message sent once, progress by state; a retried batch queues nothing', async () => {
    const accepted = async () =>
      ((await (await fetch(`${h.emulator.url}/_emulator/counters`)).json()) as { messagesAccepted: number }).messagesAccepted;
    const before = await accepted();
    const messages = Array.from({ length: 10_000 }, (_, i) => msg(rcsPhone(100_000 + i)));
    const res = await call('POST', '/v1/messages:batch', { messages }, { 'idempotency-key': 'campaign-7' });
    expect(res.status).toBe(202);
    expect(res.body.messageIds).toHaveLength(10_000);
    expect(new Set(res.body.messageIds).size).toBe(10_000);
    const progress = await waitFor(
      async () => (await call('GET', `/v1/batches/${res.body.batchId}`)).body,
      (p) => p.counts.DELIVERED === 10_000,
      480_000,
    );
    expect(progress).toEqual({ batchId: res.body.batchId, total: 10_000, counts: { DELIVERED: 10_000 } });
    const retry = await call('POST', '/v1/messages:batch', { messages }, { 'idempotency-key': 'campaign-7' });
    expect(retry.body).toMatchObject({ batchId: res.body.batchId, duplicates: 10_000 });
    expect((await call('GET', `/v1/batches/${res.body.batchId}`)).body.total).toBe(10_000);
    // Each of the 10,000 reached its phone once (a job re-run after a lost lock would reuse its ID and be suppressed).
    expect((await accepted()) - before).toBe(10_000);
    const perPhone = await Promise.all(
      messages
        .slice(0, 200)
        .map(
          async (m) =>
            ((await (await fetch(`${h.emulator.url}/_emulator/phones/${encodeURIComponent(m.to)}`)).json()) as { arrivals: unknown[] })
              .arrivals.length,
        ),
    );
    expect(new Set(perPhone)).toEqual(new Set([1]));
  }, 600_000); // 10,000 messages take a busy machine minutes (~75 a second measured beside CPU burners)
});
