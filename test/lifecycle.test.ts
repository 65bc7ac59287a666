/**
 * The delivery lifecycle end to end, through real HTTP and a real Redis:
 * producer → dispatch → emulator → signed webhooks → receiver → inbound
 * worker → status, and the SMS fallback counted at the emulator's SMS sink.
 */
import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { checkExpiryJobId, INBOUND_QUEUE, sendMessageJobId, sendSmsJobId, SMS_QUEUE } from '../jobs/index.ts';
import { signWebhookData } from '../src/webhook/signature.ts';
import { arrivals, rcsPhone, startHarness, waitFor, type Harness } from './helpers.ts';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

const TOKEN = 'test-client-token-a';

async function control(h: Harness, path: string, method = 'GET', body?: unknown): Promise<any> {
  const res = await fetch(`${h.emulator.url}/_emulator${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (res.status >= 300) throw new Error(`control ${method} ${path}: ${res.status} ${await res.text()}`);
  return res.json();
}

/** Resolves when the emulator's SMS sink has received an SMS for `to`. */
function smsArrives(h: Harness, to: string): Promise<{ receivedAt: number }> {
  return new Promise((resolve) => {
    const on = (sms: { to: string; receivedAt: number }) => {
      if (sms.to !== to) return;
      h.emulator.state.events.off('sms', on);
      resolve(sms);
    };
    h.emulator.state.events.on('sms', on);
  });
}

/** The message's SMS job finished (FALLBACK_SENT or _FAILED is written before it does): its status as then recorded. */
async function afterSmsJob(h: Harness, messageId: string) {
  await h.outcomeOn(SMS_QUEUE, sendSmsJobId(messageId, 'agent-a')).catch(() => undefined); // a failed job: its state says why
  return h.producer.getStatus(messageId);
}

/** The message's send job finished: SENT (or NOT_RCS, FAILED…) is written before it does; its state as then recorded. */
async function afterSendJob(h: Harness, messageId: string) {
  await h.outcome('agent-a', sendMessageJobId(messageId)).catch(() => undefined);
  return (await h.producer.getStatus(messageId))?.state;
}

async function lifecycle(name: string, env: Record<string, string> = {}): Promise<Harness> {
  const harness = await startHarness({ name, env: { FALLBACK_GRACE_MS: '500', ...env } });
  const sets = [harness.startDispatch(), harness.startInbound(), harness.startSms()];
  await harness.startHttp();
  // A TTL counts from the producer's request: the workers' start-up and the first token request would
  // otherwise come out of a short TTL (seconds of it on a busy machine) and expire messages in our queue.
  await Promise.all(sets.flatMap((set) => set.workers.map((w) => w.worker.waitUntilReady())));
  await harness.rbm.getCapabilities({ agentId: 'agent-a', to: rcsPhone(999_999), requestId: randomUUID() });
  return harness;
}

const otp = (to: string, extra: Record<string, unknown> = {}) => ({
  to,
  messageTrafficType: 'AUTHENTICATION' as const,
  contentMessage: { text: 'Your code is 123456' },
  fallback: { sms: { text: 'Your code is 123456' } },
  ...extra,
});

describe('delivery lifecycle', () => {
  it('SENT → DELIVERED → READ from signed webhooks, and the local deadline then does nothing', async () => {
    h = await lifecycle('read');
    const to = rcsPhone(1);
    h.emulator.state.setPhone(to, { deliveryDelayMs: 20, readDelayMs: 20, readProbability: 1 });
    // Nothing here waits for the TTL: 30 s keeps the deadline out of reach of a slow webhook, so what is
    // checked below is the cancel on delivery, not who wins a race.
    const { messageId } = await h.producer.sendMessage(otp(to, { ttl: '30s' }));
    const status = await waitFor(
      () => h!.producer.getStatus(messageId),
      (s) => s?.state === 'READ',
    );
    expect(status!.timeline.map((t) => t.state)).toEqual(['QUEUED', 'SENDING', 'SENT', 'DELIVERED', 'READ']);
    // The deadline check was cancelled on delivery: no revoke, no SMS.
    expect(
      await h.service.redis.producer.exists(h.service.queues.queue('inbound', 'agent-a').toKey(checkExpiryJobId(messageId, 'agent-a'))),
    ).toBe(0);
    expect((await control(h, '/counters')).revoked).toBe(0);
  });

  it("delivered while RBM's webhook is held back: the deadline's revoke answers 404, the record says DELIVERED, no SMS; the late webhook changes nothing", async () => {
    // The deadline side of the race below, pinned: no webhook can come first.
    h = await lifecycle('deadline-404');
    await control(h, '/webhook', 'PUT', { enabled: false });
    const to = rcsPhone(3);
    const delivered = h.emulator.state.waitFor('delivered', (m) => m.phone === to);
    const { messageId } = await h.producer.sendMessage(otp(to, { ttl: '3s' }));
    await delivered;
    // The deadline check writes DELIVERED before its job completes.
    expect(await h.outcomeOn(INBOUND_QUEUE, checkExpiryJobId(messageId, 'agent-a'))).toMatchObject({ outcome: 'DELIVERED' });
    const status = await h.producer.getStatus(messageId);
    expect(status!.state).toBe('DELIVERED');
    expect(status!.timeline.find((t) => t.state === 'DELIVERED')).toMatchObject({ event: 'DEADLINE' });
    expect(await control(h, `/messages/${messageId}`)).toMatchObject({ delivered: true, revoked: false });
    await control(h, '/webhook', 'PUT', { enabled: true });
    const late = await waitFor(
      () => h!.producer.getStatus(messageId),
      (s) => s!.timeline.some((t) => t.event === 'DELIVERED'),
    );
    expect(late!.state).toBe('DELIVERED');
    expect((await control(h, `/sms/${encodeURIComponent(to)}`)).count).toBe(0);
  });

  it('an OTP to an offline phone with a 10 s TTL becomes exactly one SMS', async () => {
    h = await lifecycle('offline-otp');
    const to = rcsPhone(2);
    h.emulator.state.setPhone(to, { online: false });
    const sms = smsArrives(h, to);
    const { messageId } = await h.producer.sendMessage(otp(to, { ttl: '10s' }));
    await sms;
    const status = await afterSmsJob(h, messageId);
    expect(status!.state).toBe('FALLBACK_SENT');
    // RBM's TTL event, or the local deadline 500 ms later if the event was slower on this machine (its revoke
    // then beats RBM's own expiry): whichever came first queued the one SMS.
    expect(['TTL_EXPIRATION_REVOKED', 'DEADLINE']).toContain(status!.timeline.find((t) => t.state === 'FALLBACK_QUEUED')!.event);
    // Nothing is left that could send a second SMS: the deadline check was cancelled by the event, or has run.
    expect(['removed', 'completed']).toContain(await h.endOn(INBOUND_QUEUE, checkExpiryJobId(messageId, 'agent-a')));
    const received = await control(h, `/sms/${encodeURIComponent(to)}`);
    expect(received.messages.map((m: { body: string }) => m.body)).toEqual(['Your code is 123456']);
    // The phone coming online later gets nothing: the message was revoked.
    h.emulator.state.setPhone(to, { online: true });
    expect((await control(h, `/messages/${messageId}`)).delivered).toBe(false);
  });

  it('a number that is not RCS gets one SMS at once', async () => {
    h = await lifecycle('not-rcs');
    const to = '+15557770000'; // the emulator's default rule: ending in 0 is not RCS
    const sms = smsArrives(h, to);
    const { messageId } = await h.producer.sendMessage(otp(to));
    await sms;
    const status = await afterSmsJob(h, messageId);
    expect(status!.state).toBe('FALLBACK_SENT');
    expect(status!.timeline.map((t) => t.state)).toEqual([
      'QUEUED',
      'SENDING',
      'NOT_RCS',
      'FALLBACK_QUEUED',
      'FALLBACK_SENDING',
      'FALLBACK_SENT',
    ]);
    expect((await control(h, `/sms/${encodeURIComponent(to)}`)).messages).toHaveLength(1);
  });

  it('a message delivered just before its TTL gets no SMS, however the events race (200 races), while undelivered ones get exactly one', async () => {
    // The 200 deadline checks fall due at one instant (one call, one expireAt): with the default inbound
    // concurrency (50) they run in four rounds and, beside another test file on a busy machine, the last come
    // seconds late, after nearly every webhook. One round keeps the deadline side of the race in the race.
    h = await lifecycle('race', { RBM_AGENTS: 'agent-a:2000', INBOUND_CONCURRENCY: '250' });
    // The TTL must outlast getting 220 messages to RBM, or they expire in our queue and there is no race.
    // How long that takes depends on how busy the machine is right now, so measure it (and warm the token
    // and connections): 220 messages to phones that will not deliver within the test, so they send no webhooks.
    const warm = Array.from({ length: 220 }, (_, i) => rcsPhone(8000 + i));
    for (const to of warm) h.emulator.state.setPhone(to, { deliveryDelayMs: 600_000 });
    const warmStart = Date.now();
    const warmed = arrivals(h.emulator, warm.length);
    await h.producer.sendMessages(warm.map((to) => ({ to, contentMessage: { text: 'warm-up' } })));
    await warmed;
    const warmMs = Date.now() - warmStart;
    // The same measure sizes the race: 200 deadline checks due at one instant take about as long as those
    // 220 sends, and webhooks slow down alike. Deliveries spread over the last 300 ms + 2 × warmMs before
    // expireAt, webhooks over 2.5 s + 2 × warmMs after delivery: on any machine some webhooks come first and
    // some after the deadline's revoke. (Quiet: deliveries 20–900 ms before expireAt, webhooks within 3.1 s.)
    const spreadMs = 300 + 2 * warmMs;
    const ttlMs = Math.max(3000, Math.ceil((2 * warmMs + spreadMs + 2000) / 1000) * 1000);

    // Webhooks late, duplicated and reordered: DELIVERED often lands after the local deadline.
    await control(h, '/webhook', 'PUT', { reorderWindowMs: 2500 + 2 * warmMs, duplicateRate: 0.5 });
    const raced = Array.from({ length: 200 }, (_, i) => rcsPhone(1000 + i));
    const expiring = Array.from({ length: 20 }, (_, i) => rcsPhone(5000 + i));
    for (const to of expiring) h.emulator.state.setPhone(to, { online: false });
    const racedSet = new Set(raced);
    // Each raced message is delivered 20 ms to spreadMs before the *caller's* expireAt, so at least 520 ms before
    // the local deadline (expireAt + grace). Not before the emulator's own expireTime: that counts from the message's
    // arrival, which on a busy machine comes seconds after the wire ttl was computed, so the deadline would
    // revoke first (200 and one SMS: correct, but no race). Set as each message arrives, before the emulator
    // schedules its delivery; one arriving later than that is delivered at once.
    const inputs = [...raced, ...expiring].map((to) => otp(to, { ttl: `${ttlMs / 1000}s`, messageTrafficType: 'TRANSACTION' }));
    const dueAt = Date.now() + ttlMs; // the producer stamps one expireAt per call, when called (checked below)
    h.emulator.state.events.on('arrival', (a) => {
      const m = a as { expireAtMs?: number };
      if (!racedSet.has(a.phone) || m.expireAtMs === undefined) return;
      const deliverAt = dueAt - (20 + Math.floor(Math.random() * (spreadMs - 20)));
      h!.emulator.state.setPhone(a.phone, { deliverBeforeExpiryMs: Math.max(0, m.expireAtMs - deliverAt) });
    });
    const sent = await h.producer.sendMessages(inputs);
    const ids = sent.map((s) => s.messageId);
    const stamped = (await h.producer.getStatus(ids[0]!))!.expireAt!;
    // Stamped when called: at dueAt, or a moment later if the OS paused this process in between (deliveries then
    // come that much earlier before expireAt, still before it).
    expect(stamped - dueAt, 'expireAt as the schedule assumed').toBeGreaterThanOrEqual(0);
    expect(stamped - dueAt, 'expireAt as the schedule assumed').toBeLessThan(1000);

    // Wait until every message is final by the service's record: delivered, or its one SMS sent.
    const FINAL = ['DELIVERED', 'READ', 'FALLBACK_SENT', 'FALLBACK_FAILED', 'FAILED'];
    await waitFor(
      async () => Promise.all(ids.map(async (id) => (await h!.producer.getStatus(id))?.state)),
      (all) => all.every((s) => FINAL.includes(s ?? '')),
      ttlMs + 60_000,
    );
    // And until nothing is left that could still act: no webhook pending at the emulator or unhandled in our
    // stream, no inbound job (deadline checks are delayed jobs there) and no SMS job. Only then is a count final.
    const pending = async () => {
      const snap = await h!.service.metricsSource.read();
      const busy = snap.queues
        .filter((q) => q.queue === INBOUND_QUEUE || q.queue === SMS_QUEUE)
        .map((q) => (q.counts.wait ?? 0) + (q.counts.prioritized ?? 0) + (q.counts.delayed ?? 0) + (q.counts.active ?? 0));
      return busy.reduce((a, b) => a + b, 0) + snap.webhookEventsPending + h!.emulator.state.counters.webhooksPending;
    };
    await waitFor(pending, (n) => n === 0);
    const states = await Promise.all(ids.map(async (id) => (await h!.producer.getStatus(id))?.state));
    // Then compare with RBM's truth (the emulator's record of each message) and the SMS sink, message by message:
    // delivered over RCS xor one SMS, never both, and the record says which.
    const sms = (await control(h, '/sms')).perNumber as Record<string, number>;
    const truth = ids.map((id, i) => {
      const to = i < raced.length ? raced[i]! : expiring[i - raced.length]!;
      const m = h!.emulator.state.messages.get(id) as { delivered: boolean; revoked: boolean } | undefined;
      return { id, to, state: states[i], reachedRbm: m !== undefined, delivered: m?.delivered === true, sms: sms[to] ?? 0 };
    });
    const wrong = truth.filter((t) =>
      t.delivered ? t.sms !== 0 || !['DELIVERED', 'READ'].includes(t.state!) : t.sms !== 1 || t.state !== 'FALLBACK_SENT',
    );
    expect(wrong, 'delivered over RCS xor exactly one SMS, and the record agreeing').toEqual([]);
    // Offline phones: never delivered, one SMS each.
    expect(truth.slice(raced.length).filter((t) => t.delivered)).toEqual([]);
    // A raced message that reached RBM is delivered before any revoke can land (the revoke's runDue delivers what
    // was due first), so the only raced SMS allowed is for one that never reached RBM (TTL passed in our queue).
    const racedTruth = truth.slice(0, raced.length);
    expect(racedTruth.filter((t) => t.reachedRbm && !t.delivered)).toEqual([]);
    const delivered = racedTruth.filter((t) => t.delivered);
    expect(delivered.length, 'raced messages that reached RBM in time (the rest expired in our queue)').toBeGreaterThanOrEqual(100);
    // Both sides of the race really ran: some deliveries were learnt from the webhook, others from the
    // deadline's revoke answering 404 before the late webhook came. How many of each depends on the
    // machine's load (5 from the deadline beside a chaos run, dozens when quiet): at least one of each.
    const firstNews = await Promise.all(
      delivered.map(async (t) => (await h!.producer.getStatus(t.id))!.timeline.find((e) => e.state === 'DELIVERED')!.event),
    );
    expect(firstNews.filter((e) => e === 'DELIVERED').length, 'learnt from the webhook').toBeGreaterThanOrEqual(1);
    expect(firstNews.filter((e) => e === 'DEADLINE').length, 'learnt from the deadline').toBeGreaterThanOrEqual(1);
  }, 300_000); // its TTL grows with the machine's load (above): so may its time

  it('duplicated, reordered and late webhooks leave every record in its true state', async () => {
    h = await lifecycle('reorder');
    await control(h, '/webhook', 'PUT', { reorderWindowMs: 300, duplicateRate: 1 });
    const phones = Array.from({ length: 30 }, (_, i) => rcsPhone(300 + i));
    for (const to of phones) h.emulator.state.setPhone(to, { deliveryDelayMs: 5, readDelayMs: 5, readProbability: 1 });
    const sent = await h.producer.sendMessages(phones.map((to) => ({ to, contentMessage: { text: 'hello' } })));
    for (const { messageId } of sent) {
      const s = await waitFor(
        () => h!.producer.getStatus(messageId),
        (st) => st?.state === 'READ',
      );
      // READ may have come first; a later DELIVERED is kept in the timeline without moving the record back.
      expect(s!.timeline.filter((t) => t.event === 'READ')).toHaveLength(1);
    }
    // A late TTL_EXPIRATION_REVOKED for a read message changes nothing but is recorded.
    const { messageId } = sent[0]!;
    await sendWebhook(h, {
      phoneNumber: phones[0],
      eventType: 'TTL_EXPIRATION_REVOKED',
      eventId: 'late-ttl-1',
      messageId,
      agentId: 'agent-a@rbm.goog',
    });
    const s = await waitFor(
      () => h!.producer.getStatus(messageId),
      (st) => st!.timeline.some((t) => t.event === 'TTL_EXPIRATION_REVOKED'),
    );
    expect(s!.state).toBe('READ');
    expect((await control(h, '/sms')).messages).toHaveLength(0);
  });

  it('a DELIVERED arriving after the fallback was queued wins, and the SMS is not sent', async () => {
    h = await startHarness({ name: 'late-delivered', env: { FALLBACK_GRACE_MS: '500' } });
    h.startDispatch();
    h.startInbound();
    await h.startHttp(); // no SMS worker yet: the fallback stays queued
    const to = rcsPhone(900);
    h.emulator.state.setPhone(to, { online: false });
    const { messageId } = await h.producer.sendMessage(otp(to, { ttl: '30s' }));
    expect(await afterSendJob(h, messageId)).toBe('SENT');
    await sendWebhook(h, {
      phoneNumber: to,
      eventType: 'TTL_EXPIRATION_REVOKED',
      eventId: 'ttl-900',
      messageId,
      agentId: 'agent-a@rbm.goog',
    });
    await waitFor(
      () => h!.producer.getStatus(messageId),
      (s) => s?.state === 'FALLBACK_QUEUED',
    );
    await sendWebhook(h, { senderPhoneNumber: to, eventType: 'DELIVERED', eventId: 'dlv-900', messageId, agentId: 'agent-a@rbm.goog' });
    await waitFor(
      () => h!.producer.getStatus(messageId),
      (s) => s?.state === 'DELIVERED',
    );
    h.startSms();
    expect(await h.outcomeOn(SMS_QUEUE, sendSmsJobId(messageId, 'agent-a'))).toMatchObject({ outcome: 'CANCELLED', state: 'DELIVERED' });
    expect((await control(h, `/sms/${encodeURIComponent(to)}`)).messages).toHaveLength(0);
  });

  it('with the RBM webhook cut off entirely, the local deadline (expireTime + grace) still delivers the SMS', async () => {
    const graceMs = 1000;
    h = await lifecycle('cut-off', { FALLBACK_GRACE_MS: String(graceMs) });
    await control(h, '/webhook', 'PUT', { enabled: false });
    const to = rcsPhone(950);
    h.emulator.state.setPhone(to, { online: false });
    const sms = smsArrives(h, to);
    const { messageId } = await h.producer.sendMessage(otp(to, { ttl: '3s' }));
    const { receivedAt } = await sms;
    const status = await afterSmsJob(h, messageId);
    expect(status!.state).toBe('FALLBACK_SENT');
    expect(status!.timeline.some((t) => t.event === 'DEADLINE')).toBe(true);
    // Not before the deadline (how soon after it is the machine's speed, not the service's choice: no bound here).
    const queued = status!.timeline.find((t) => t.state === 'FALLBACK_QUEUED')!;
    expect(queued.event).toBe('DEADLINE');
    expect(queued.at - status!.expireAt!).toBeGreaterThanOrEqual(graceMs);
    expect(receivedAt).toBeGreaterThanOrEqual(queued.at);
    expect((await control(h, `/sms/${encodeURIComponent(to)}`)).messages).toHaveLength(1);
  });

  it('TTL_EXPIRATION_REVOKE_FAILED: an OTP falls back at once; other traffic is revoked first, SMS on 200, delivered on 404', async () => {
    // The local deadline out of the way (30 s): this is about what the TTL_EXPIRATION_REVOKE_FAILED event does,
    // and with the default 500 ms a slow event on a busy machine would lose to the deadline's own revoke.
    h = await lifecycle('revoke-failed', { FALLBACK_GRACE_MS: '30000' });
    await control(h, '/defaults', 'PUT', { revokeFailedRate: 1 });
    const otpPhone = rcsPhone(400);
    const txPhone = rcsPhone(401);
    for (const to of [otpPhone, txPhone]) h.emulator.state.setPhone(to, { online: false });
    const otpSms = smsArrives(h, otpPhone);
    const txSms = smsArrives(h, txPhone);
    const [a, b] = await h.producer.sendMessages([
      otp(otpPhone, { ttl: '1s' }),
      otp(txPhone, { ttl: '1s', messageTrafficType: 'TRANSACTION' }),
    ]);
    await Promise.all([otpSms, txSms]);
    const otpStatus = await afterSmsJob(h, a!.messageId);
    expect(otpStatus!.state).toBe('FALLBACK_SENT');
    expect(otpStatus!.timeline.find((t) => t.state === 'FALLBACK_QUEUED')).toMatchObject({
      event: 'TTL_EXPIRATION_REVOKE_FAILED',
      detail: 'AUTHENTICATION: falling back at once',
    });
    const txStatus = await afterSmsJob(h, b!.messageId);
    expect(txStatus!.state).toBe('FALLBACK_SENT');
    expect(txStatus!.timeline.find((t) => t.state === 'FALLBACK_QUEUED')!.detail).toContain('revoked after the failed TTL revocation');
    expect((await control(h, `/messages/${b!.messageId}`)).revoked).toBe(true);
    expect((await control(h, `/messages/${a!.messageId}`)).revoked).toBe(false); // Google's advice: SMS at the risk of a duplicate

    // Delivered before our revoke: the revoke answers 404 and the record says DELIVERED, no SMS.
    await control(h, '/webhook', 'PUT', { enabled: false }); // hold the platform's own DELIVERED
    const late = rcsPhone(402);
    const deliveredAtRbm = h.emulator.state.waitFor('delivered', (m) => m.phone === late);
    const { messageId } = await h.producer.sendMessage(otp(late, { ttl: '60s', messageTrafficType: 'PROMOTION' }));
    expect((await deliveredAtRbm).id).toBe(messageId);
    expect(await afterSendJob(h, messageId)).toBe('SENT');
    await sendWebhook(h, {
      phoneNumber: late,
      eventType: 'TTL_EXPIRATION_REVOKE_FAILED',
      eventId: 'rf-402',
      messageId,
      agentId: 'agent-a@rbm.goog',
    });
    const delivered = await waitFor(
      () => h!.producer.getStatus(messageId),
      (s) => s?.state === 'DELIVERED',
    );
    expect(delivered!.timeline.at(-1)).toMatchObject({
      event: 'TTL_EXPIRATION_REVOKE_FAILED',
      detail: 'revoke answered 404: already delivered',
    });
    expect((await control(h, `/sms/${encodeURIComponent(late)}`)).count).toBe(0);
  });

  it('events for unknown messages are counted and dropped', async () => {
    h = await lifecycle('unknown');
    const unknown = '0b6f3a52-0000-4000-8000-00000000abcd';
    await sendWebhook(h, {
      senderPhoneNumber: rcsPhone(410),
      eventType: 'DELIVERED',
      eventId: 'dlv-unknown',
      messageId: unknown,
      agentId: 'agent-a@rbm.goog',
    });
    const counters = await waitFor(
      () => h!.service.redis.producer.hgetall(`${h!.config.queuePrefix}:metrics`),
      (c) => c['inbound|unknownMessageEvents'] === '1',
    );
    expect(counters['inbound|inboundEvents']).toBe('1');
    expect(await h.producer.getStatus(unknown)).toBeNull();
  });

  it('the SMS worker retries a provider failure and stops at a permanent one, with the reason on the record', async () => {
    h = await lifecycle('sms-errors', { SMS_BACKOFF_MS: '20' });
    await control(h, '/sms/faults', 'PUT', { failNext: [{ kind: '500', count: 2 }] });
    const retried = '+15557771110';
    const refused = '+15557772220';
    const sms = smsArrives(h, retried);
    const first = await h.producer.sendMessage(otp(retried));
    await sms;
    const ok = await afterSmsJob(h, first.messageId);
    expect(ok!.state).toBe('FALLBACK_SENT');
    expect(ok!.timeline.filter((t) => t.detail?.startsWith('SMS try')).map((t) => t.detail)).toEqual([
      'SMS try 1 (NOT_RCS)',
      'SMS try 2 (NOT_RCS)',
      'SMS try 3 (NOT_RCS)',
    ]);
    await control(h, '/sms/faults', 'PUT', { failNext: [{ kind: '400', count: 1 }] });
    const second = await h.producer.sendMessage(otp(refused));
    const failed = await afterSmsJob(h, second.messageId);
    expect(failed!.state).toBe('FALLBACK_FAILED');
    expect(failed!.lastError!.code).toBe('SMS_PROVIDER');
    expect(failed!.lastError!.message).not.toContain('7772220');
    expect((await control(h, `/sms/${encodeURIComponent(refused)}`)).count).toBe(0);
    expect((await control(h, `/sms/${encodeURIComponent(retried)}`)).count).toBe(1);
  });

  it('a bad signature changes nothing', async () => {
    h = await lifecycle('bad-signature');
    const to = rcsPhone(960);
    h.emulator.state.setPhone(to, { online: false });
    const { messageId } = await h.producer.sendMessage({ to, contentMessage: { text: 'hi' } });
    expect(await afterSendJob(h, messageId)).toBe('SENT');
    const payload = { senderPhoneNumber: to, eventType: 'DELIVERED', eventId: 'forged-1', messageId, agentId: 'agent-a@rbm.goog' };
    const res = await postWebhook(h, payload, signWebhookData('a-forged-token', Buffer.from(JSON.stringify(payload))));
    expect(res).toBe(401);
    expect(h.service.webhookCounters.badSignature).toBe(1);
    const status = await h.producer.getStatus(messageId);
    expect(status!.state).toBe('SENT');
    expect(status!.timeline).toHaveLength(3);
  });

  it('revoke by the producer: a queued message is taken out and never sent', async () => {
    h = await startHarness({ name: 'revoke-queued' });
    const to = rcsPhone(975);
    const { messageId } = await h.producer.sendMessage({ to, contentMessage: { text: 'never' } });
    expect(await h.service.revoke({ agentId: 'agent-a', messageId: messageId })).toEqual({ messageId, state: 'REVOKED', fallback: false });
    const status = await h.producer.getStatus(messageId);
    expect(status!.state).toBe('REVOKED');
    expect(status!.timeline.map((t) => t.state)).toEqual(['QUEUED', 'REVOKED']);
    h.startDispatch();
    // A message sent after it on the same queue arrives; the revoked one never does.
    const after = await h.producer.sendMessage({ to, contentMessage: { text: 'after' } });
    await h.outcome('agent-a', `msg-${after.messageId}`);
    expect((await control(h, `/phones/${encodeURIComponent(to)}`)).arrivals.map((a: { id: string }) => a.id)).toEqual([after.messageId]);
    await expect(h.service.revoke({ agentId: 'agent-a', messageId: messageId })).rejects.toMatchObject({
      code: 'REVOKE_NOT_POSSIBLE',
      state: 'REVOKED',
    });
    await expect(h.service.revoke({ agentId: 'agent-a', messageId: '00000000-0000-4000-8000-000000000000' })).rejects.toMatchObject({
      state: null,
    });
  });

  it('revoke by the producer: a sent message is revoked with its SMS; a delivered one cannot be', async () => {
    h = await lifecycle('revoke');
    const to = rcsPhone(970);
    h.emulator.state.setPhone(to, { online: false });
    const sent = await h.producer.sendMessage(otp(to, { ttl: '60s' }));
    expect(await afterSendJob(h, sent.messageId)).toBe('SENT');
    const sms = smsArrives(h, to);
    expect(await h.service.revoke({ agentId: 'agent-a', messageId: sent.messageId }, { fallback: true })).toMatchObject({
      state: 'FALLBACK_QUEUED',
      fallback: true,
    });
    await sms;
    const status = await afterSmsJob(h, sent.messageId);
    expect(status!.state).toBe('FALLBACK_SENT');
    expect(status!.timeline.map((t) => t.state)).toContain('REVOKED');
    expect((await control(h, `/messages/${sent.messageId}`)).revoked).toBe(true);
    // Delivered already: revoke answers 404 and the record says DELIVERED.
    const online = rcsPhone(971);
    const delivered = await h.producer.sendMessage({ to: online, contentMessage: { text: 'hi' } });
    await waitFor(
      () => h!.producer.getStatus(delivered.messageId),
      (s) => s?.state === 'DELIVERED',
    );
    await expect(h.service.revoke({ agentId: 'agent-a', messageId: delivered.messageId })).rejects.toMatchObject({
      code: 'REVOKE_NOT_POSSIBLE',
      state: 'DELIVERED',
    });
  });

  it('user messages reach consumers through the inbound stream, with an automatic READ', async () => {
    h = await lifecycle('user-message', { INBOUND_AUTO_READ: 'true' });
    const to = rcsPhone(980);
    // The service's READ reaching the emulator (the only event this test sends to the phone).
    const autoRead = h.emulator.state.waitForArrival((a) => a.kind === 'event' && a.phone === to && a.body.eventType === 'READ');
    const { messageId } = await control(h, `/phones/${encodeURIComponent(to)}/messages`, 'POST', {
      agentId: 'agent-a',
      text: 'Where is my parcel?',
    });
    expect((await autoRead).body).toMatchObject({ eventType: 'READ', messageId });
    const read = (await control(h, `/phones/${encodeURIComponent(to)}`)).arrivals as Array<{ kind: string; body: { messageId?: string } }>;
    expect(read.some((x) => x.kind === 'event' && x.body.messageId === messageId)).toBe(true);
    const entries = (await h.service.redis.producer.xrange(h.service.inboundStreamKey, '-', '+')).map(([, f]) => {
      const fields: Record<string, string> = {};
      for (let i = 0; i < f.length; i += 2) fields[f[i]!] = f[i + 1]!;
      return fields;
    });
    expect(entries).toEqual([expect.objectContaining({ kind: 'userMessage', agentId: 'agent-a' })]);
    expect(JSON.parse(entries[0]!.payload!)).toMatchObject({ text: 'Where is my parcel?', messageId, senderPhoneNumber: to });
  });
});

async function postWebhook(h: Harness, payload: object, signature: string): Promise<number> {
  const data = Buffer.from(JSON.stringify(payload));
  const res = await fetch(`${await httpUrl(h)}/webhooks/rbm`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-goog-signature': signature },
    body: JSON.stringify({
      message: { data: data.toString('base64'), messageId: `t-${Math.random()}`, attributes: {} },
      subscription: 's',
    }),
  });
  return res.status;
}

/** A correctly signed webhook of our own making (late, out-of-order events). */
async function sendWebhook(h: Harness, payload: object): Promise<void> {
  const status = await postWebhook(h, payload, signWebhookData(TOKEN, Buffer.from(JSON.stringify(payload))));
  expect(status).toBe(200);
}

async function httpUrl(h: Harness): Promise<string> {
  const webhook = await control(h, '/webhook');
  return String(webhook.url).replace(/\/webhooks\/rbm$/, '');
}
