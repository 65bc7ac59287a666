/**
 * Truth never expires (DESIGN.md): RBM's events about a message we are still
 * sending wait on its record for as long as the send takes, and are applied
 * when it settles. The send is held by RBM failing it with a one-hour backoff
 * (the old retry horizon was two minutes); the hour is then skipped by
 * promoting the delayed job, which proves the event was held by the record,
 * not by a retry timer.
 */
import { intakeStreamKey } from '../src/status/store.ts';
import { afterEach, describe, expect, it } from 'vitest';
import { SEND_MESSAGE, sendSmsJobId, SMS_QUEUE } from '../jobs/index.ts';
import { rcsPhone, startHarness, waitFor, type Harness } from './helpers.ts';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

async function control(path: string, method = 'GET', body?: unknown): Promise<any> {
  const res = await fetch(`${h!.emulator.url}/_emulator${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (res.status >= 300) throw new Error(`control ${method} ${path}: ${res.status} ${await res.text()}`);
  return res.json();
}

async function start(name: string): Promise<Harness> {
  // No in-call retry: the 503 after RBM took the message must end the attempt, so the send waits its hour.
  const harness = await startHarness({ name, env: { DISPATCH_BACKOFF_MS: '3600000', FALLBACK_GRACE_MS: '500', RBM_FAST_RETRIES: '0' } });
  harness.startDispatch();
  harness.startInbound();
  harness.startSms();
  await harness.startHttp();
  return harness;
}

/** RBM takes the message (the phone gets it, webhooks follow) but answers 503: our send retries in an hour. */
async function acceptThenFail(to: string): Promise<void> {
  await control('/faults', 'PUT', { failNext: [{ kind: 'accept-then-503', count: 1, phone: to }] });
}

/** Runs the held retry now, as if the hour had passed (or a dispatcher came back). */
async function promoteSend(messageId: string): Promise<void> {
  const job = await h!.service.queues.find(SEND_MESSAGE, { agentId: 'agent-a', messageId });
  expect(await job!.getState()).toBe('delayed');
  await job!.promote();
}

const parked = async (messageId: string) =>
  JSON.parse((await h!.service.redis.producer.hget(h!.status.key({ agentId: 'agent-a', messageId }), 'pend')) ?? '[]') as Array<{
    t: string;
  }>;

describe('events about a message still being sent', () => {
  it('DELIVERED and READ wait through a held send and are applied when it is SENT: one timeline entry each', async () => {
    h = await start('parked-read');
    const to = rcsPhone(1, '777');
    await control(`/phones/${encodeURIComponent(to)}`, 'PUT', { readProbability: 1, readDelayMs: 100 });
    await acceptThenFail(to);
    const { messageId } = await h.producer.sendMessage({ to, contentMessage: { text: 'hello' } });

    const waiting = await waitFor(
      () => parked(messageId),
      (p) => p.length === 2,
      20_000,
    );
    expect(waiting.map((p) => p.t).sort()).toEqual(['DELIVERED', 'READ']);
    expect((await h.producer.getStatus(messageId))!.state).toBe('SENDING');

    await promoteSend(messageId);
    const status = await waitFor(
      () => h!.producer.getStatus(messageId),
      (s) => s?.state === 'READ',
      20_000,
    );
    expect(status!.timeline.filter((t) => t.event === 'DELIVERED')).toHaveLength(1);
    expect(status!.timeline.filter((t) => t.event === 'READ')).toHaveLength(1);
    expect(status!.timeline.filter((t) => (t.detail ?? '').startsWith('no change'))).toEqual([]);
    expect(await parked(messageId)).toEqual([]);
    // The phone got it once; the retry was a duplicate RBM dropped.
    expect((await control(`/messages/${messageId}`)).delivered).toBe(true);
    expect((await control('/counters')).duplicatesSuppressed).toBeGreaterThanOrEqual(1);
    // No local deadline is left for a message that was delivered in the step that sent it.
    expect(status!.expireAt).toBeUndefined();
  });

  it('a TTL revocation that came during a held send still gives exactly one SMS', async () => {
    h = await start('parked-ttl');
    const to = rcsPhone(2, '777');
    await control(`/phones/${encodeURIComponent(to)}`, 'PUT', { online: false });
    await acceptThenFail(to);
    const sms = new Promise<void>((resolve) => h!.emulator.state.events.on('sms', (r: { to: string }) => r.to === to && resolve()));
    const { messageId } = await h.producer.sendMessage({
      to,
      messageTrafficType: 'AUTHENTICATION',
      ttl: '1s',
      contentMessage: { text: 'code 1234' },
      fallback: { sms: { text: 'code 1234' } },
    });

    await waitFor(
      () => parked(messageId),
      (p) => p.some((e) => e.t === 'TTL_EXPIRATION_REVOKED'),
      20_000,
    );
    expect((await h.producer.getStatus(messageId))!.state).toBe('SENDING');
    await promoteSend(messageId);
    await sms;
    // The SMS job writes FALLBACK_SENT before it completes.
    expect(await h.outcomeOn(SMS_QUEUE, sendSmsJobId(messageId, 'agent-a'))).toMatchObject({ outcome: 'FALLBACK_SENT' });
    const status = await h.producer.getStatus(messageId);
    expect(status!.state).toBe('FALLBACK_SENT');
    // One move to the fallback; RBM's event, applied after the send gave up on its own, is kept once as news.
    expect(status!.timeline.filter((t) => t.state === 'FALLBACK_QUEUED' && !(t.detail ?? '').startsWith('no change'))).toHaveLength(1);
    expect(status!.timeline.filter((t) => t.event === 'TTL_EXPIRATION_REVOKED')).toHaveLength(1);
    // Every event it was told of is settled: nothing parked, nothing left in the intake stream for it.
    await waitFor(
      async () =>
        (await h!.service.redis.producer.xrange(intakeStreamKey(h!.service.keyspace.of('agent-a')), '-', '+')).filter(([, f]) =>
          f[1]!.includes(messageId),
        ).length,
      (n) => n === 0,
    );
    expect((await control(`/sms/${encodeURIComponent(to)}`)).messages).toHaveLength(1);
  });
});
