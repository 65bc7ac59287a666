/**
 * The send path end to end: producer → Redis → dispatch worker → RBM
 * emulator over real HTTP, with real google-auth-library tokens.
 */
import { staticAgents } from '../src/agents/live.ts';
import { afterEach, describe, expect, it } from 'vitest';
import { Queue } from 'bullmq';
import { outboundQueueName } from '../jobs/index.ts';
import { Producer } from '../src/queue/producer.ts';
import { arrivals, busiestSecond, limiterReleases, rcsPhone, startHarness, type Harness } from './helpers.ts';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

const text = (t: string) => ({ contentMessage: { text: t } });

async function control(emulatorUrl: string, path: string, method: string, body?: unknown): Promise<unknown> {
  const res = await fetch(`${emulatorUrl}/_emulator${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  expect(res.status, `control ${method} ${path}`).toBeLessThan(300);
  return res.json();
}

async function phone(emulatorUrl: string, e164: string) {
  return (await control(emulatorUrl, `/phones/${encodeURIComponent(e164)}`, 'GET')) as {
    arrivals: Array<{ kind: string; id: string; count: number; body: unknown; wire?: { url: string; authorization: string } }>;
  };
}

describe('dispatch', () => {
  it('puts the exact request on the wire: literal +, agentId, the stable UUID, a Bearer token from the token endpoint', async () => {
    h = await startHarness({ name: 'wire' });
    h.startDispatch();
    const arrived = arrivals(h.emulator, 1);
    const sent = await h.producer.sendMessage({
      to: '+12223334444',
      messageTrafficType: 'TRANSACTION',
      ttl: '600s',
      ...text('Hello, world!'),
    });
    expect(await h.outcome('agent-a', `msg-${sent.messageId}`)).toMatchObject({ outcome: 'SENT' });
    await arrived;
    const [arrival] = (await phone(h.emulator.url, '+12223334444')).arrivals;
    expect(arrival!.wire!.url).toBe(`/v1/phones/+12223334444/agentMessages?messageId=${sent.messageId}&agentId=agent-a`);
    const counters = (await control(h.emulator.url, '/counters', 'GET')) as { tokensIssued: number; unauthorized: number };
    expect(counters.tokensIssued).toBe(1);
    expect(counters.unauthorized).toBe(0);
    expect(arrival!.wire!.authorization).toMatch(/^Bearer emu-/);
    expect(arrival!.body).toMatchObject({ contentMessage: { text: 'Hello, world!' }, messageTrafficType: 'TRANSACTION' });
    // ttl counts from the producer's request, so what is left is at most what was asked.
    const ttl = Number(String((arrival!.body as { ttl: string }).ttl).replace('s', ''));
    expect(ttl).toBeGreaterThan(590);
    expect(ttl).toBeLessThanOrEqual(600);
    const status = await h.producer.getStatus(sent.messageId);
    expect(status).toMatchObject({ state: 'SENT', attempts: 1, to: '+1222***4444' });
    expect(status!.timeline.map((t) => t.state)).toEqual(['QUEUED', 'SENDING', 'SENT']);
  });

  it('ends every error class in the right state', async () => {
    h = await startHarness({ name: 'errors', env: { DISPATCH_ATTEMPTS: '3' } });
    await control(h.emulator.url, '/phones/%2B12223330000', 'PUT', { rcs: false });
    const notRcs = await h.producer.sendMessage({ to: '+12223330000', ...text('404') });
    const bad = await h.producer.sendMessage({ to: '+12223331111', ...text('400') });
    const forbidden = await h.producer.sendMessage({ to: '+12223332222', ...text('403') });
    const exhausted = await h.producer.sendMessage({ to: '+12223333333', ...text('503 forever') });
    await control(h.emulator.url, '/faults', 'PUT', {
      failNext: [
        { kind: '400', count: 1, phone: '+12223331111' },
        { kind: '403', count: 1, phone: '+12223332222' },
        // 3 attempts of 3 tries each (RBM_FAST_RETRIES 2 retries a passing 503 inside the call).
        { kind: '503', count: 9, phone: '+12223333333' },
      ],
    });
    h.startDispatch();
    expect(await h.outcome('agent-a', `msg-${notRcs.messageId}`)).toMatchObject({ outcome: 'NOT_RCS' });
    await expect(h.outcome('agent-a', `msg-${bad.messageId}`)).rejects.toThrow(/400/);
    await expect(h.outcome('agent-a', `msg-${forbidden.messageId}`)).rejects.toThrow(/403/);
    await expect(h.outcome('agent-a', `msg-${exhausted.messageId}`)).rejects.toThrow(/503/);
    expect(await h.producer.getStatus(notRcs.messageId)).toMatchObject({ state: 'NOT_RCS', attempts: 1 });
    expect(await h.producer.getStatus(bad.messageId)).toMatchObject({ state: 'FAILED', attempts: 1, lastError: { code: 'RBM_API' } });
    expect(await h.producer.getStatus(forbidden.messageId)).toMatchObject({ state: 'FAILED', attempts: 1 });
    expect(await h.producer.getStatus(exhausted.messageId)).toMatchObject({ state: 'FAILED', attempts: 3 });
    expect((await h.producer.getStatus(exhausted.messageId))!.lastError!.message).toContain('503');
  });

  it('a message retried through 5xx and connection resets arrives exactly once', async () => {
    h = await startHarness({ name: 'exactly-once', env: { RBM_FAST_RETRIES: '1' } });
    await control(h.emulator.url, '/faults', 'PUT', {
      failNext: [
        { kind: 'accept-then-503', count: 1 },
        { kind: 'accept-then-reset', count: 1 },
        { kind: 'reset', count: 2 },
        { kind: '500', count: 1 },
      ],
    });
    h.startDispatch();
    const sent = await h.producer.sendMessage({ to: '+12223334444', ...text('once only') });
    expect(await h.outcome('agent-a', `msg-${sent.messageId}`)).toMatchObject({ outcome: 'SENT' });
    const got = (await phone(h.emulator.url, '+12223334444')).arrivals.filter((a) => a.id === sent.messageId);
    expect(got).toHaveLength(1);
    const counters = (await control(h.emulator.url, '/counters', 'GET')) as {
      messagesAccepted: number;
      duplicatesSuppressed: number;
      faultsInjected: number;
    };
    expect(counters.messagesAccepted).toBe(1);
    expect(counters.faultsInjected).toBe(5);
    // Every retry after the first acceptance reused the ID and was suppressed.
    expect(counters.duplicatesSuppressed).toBeGreaterThanOrEqual(1);
    expect((await h.producer.getStatus(sent.messageId))!.state).toBe('SENT');
  });

  it('a 429 storm loses nothing and burns no attempts', async () => {
    h = await startHarness({ name: 'storm', env: { RBM_RATE_LIMIT_PAUSE_MS: '20', DISPATCH_ATTEMPTS: '2' } });
    await control(h.emulator.url, '/faults', 'PUT', { failNext: [{ kind: '429', count: 60 }] });
    const sent = await h.producer.sendMessages(Array.from({ length: 30 }, (_, i) => ({ to: rcsPhone(i, '333'), ...text(`m${i}`) })));
    const outcomes = sent.map((s) => h!.outcome('agent-a', `msg-${s.messageId}`));
    h.startDispatch();
    const results = (await Promise.all(outcomes)) as Array<{ outcome: string; attempt: number }>;
    expect(results.filter((r) => !(r.outcome === 'SENT' && r.attempt === 1))).toEqual([]);
    const counters = (await control(h.emulator.url, '/counters', 'GET')) as { messagesAccepted: number; rateLimited: number };
    expect(counters.rateLimited).toBe(60);
    expect(counters.messagesAccepted).toBe(30);
    for (const s of sent) expect(await h.producer.getStatus(s.messageId)).toMatchObject({ state: 'SENT', attempts: 1 });
  });

  it('honours Retry-After on a 429: the agent queue waits that long, then sends', async () => {
    h = await startHarness({ name: 'retry-after', env: { RBM_RATE_LIMIT_PAUSE_MS: '10' } });
    await control(h.emulator.url, '/faults', 'PUT', { failNext: [{ kind: '429', count: 1, retryAfterSec: 1 }] });
    const requests: number[] = [];
    h.emulator.state.events.on('request', () => requests.push(Date.now()));
    h.startDispatch();
    const sent = await h.producer.sendMessage({ to: '+12223334444', ...text('after the pause') });
    expect(await h.outcome('agent-a', `msg-${sent.messageId}`)).toMatchObject({ outcome: 'SENT', attempt: 1 });
    expect(requests).toHaveLength(2);
    expect(requests[1]! - requests[0]!).toBeGreaterThanOrEqual(950);
  });

  it('the limiter keeps an agent under its quota', async () => {
    const rate = 50;
    h = await startHarness({
      name: 'limiter',
      env: { RBM_AGENTS: `agent-a:${rate}` },
      emulator: { quotas: { 'agent-a': { ratePerSec: rate } } },
    });
    const total = 125;
    const sent = await h.producer.sendMessages(Array.from({ length: total }, (_, i) => ({ to: rcsPhone(i, '444'), ...text(`m${i}`) })));
    const outcomes = sent.map((s) => h!.outcome('agent-a', `msg-${s.messageId}`));
    h.startDispatch();
    const results = (await Promise.all(outcomes)) as Array<{ outcome: string; attempt: number }>;
    expect(results.filter((r) => !(r.outcome === 'SENT' && r.attempt === 1))).toEqual([]);
    // Pacing is the limiter's: counted where it releases jobs (Redis time). At
    // the emulator a busy machine's HTTP jitter can bunch calls into one
    // second and draw a 429; that costs no attempt, which is checked below.
    const released = await limiterReleases(h, 'agent-a');
    expect(released.length).toBeGreaterThanOrEqual(total);
    // No trailing second holds more than the quota plus one 100 ms window's share.
    expect(busiestSecond(released)).toBeLessThanOrEqual(rate + rate / 10);
    // 125 at 50/s cannot take less than ~2.4 s.
    expect(released.at(-1)! - released[0]!).toBeGreaterThanOrEqual(2000);
    const statuses = await Promise.all(sent.map((s) => h!.producer.getStatus(s.messageId)));
    expect(statuses.filter((s) => !(s?.state === 'SENT' && s.attempts === 1))).toEqual([]);
  });

  it('AUTHENTICATION overtakes a PROMOTION backlog', async () => {
    h = await startHarness({ name: 'priority', env: { RBM_AGENTS: 'agent-a:100' } });
    await h.producer.sendMessages(
      Array.from({ length: 300 }, (_, i) => ({ to: rcsPhone(i, '555'), messageTrafficType: 'PROMOTION' as const, ...text(`sale ${i}`) })),
    );
    const order: string[] = [];
    h.emulator.state.events.on('arrival', (a: { body: { messageTrafficType?: string } }) => order.push(a.body.messageTrafficType ?? '?'));
    const firstTwenty = arrivals(h.emulator, 20);
    h.startDispatch();
    await firstTwenty;
    const otp = await h.producer.sendMessage({ to: '+15550009999', messageTrafficType: 'AUTHENTICATION', ...text('code 123456') });
    // How many promotions had arrived once the OTP was in the queue: on a busy machine the enqueue itself
    // can take long enough for more than the first twenty to leave, so count rather than assume.
    const arrivedWhenQueued = order.length;
    await h.outcome('agent-a', `msg-${otp.messageId}`);
    const position = order.indexOf('AUTHENTICATION');
    // It must not wait for the rest of the 300: at most the jobs in flight (concurrency 20)
    // and one limiter window (10) go first after it was queued.
    expect(position).toBeGreaterThanOrEqual(20);
    expect(position).toBeLessThan(arrivedWhenQueued + 20 + 10 + 5);
    expect(arrivedWhenQueued + 20 + 10 + 5, 'the backlog was still there to overtake').toBeLessThan(300);
  });

  it('drops a stale IS_TYPING, sends a fresh one and READ', async () => {
    h = await startHarness({ name: 'typing', env: { TYPING_MAX_AGE_MS: '15000' } });
    // A producer whose clock is a minute behind: its IS_TYPING is a minute old when a worker sees it.
    const late = await Producer.create({
      queues: h.service.queues,
      agents: staticAgents(h.config.agents),
      status: h.status,
      eventCoalesceWindowMs: h.config.dispatch.eventCoalesceWindowMs,
      now: () => Date.now() - 60_000,
    });
    const stale = await late.startTyping('+12223334444');
    const fresh = await h.producer.startTyping('+12223334444');
    const read = await h.producer.markRead('+12223334444', 'MxIgT-4pWCQu2tH9hMkSTljQ');
    h.startDispatch();
    expect(await h.outcome('agent-a', `evt-${stale.eventId}`)).toMatchObject({ outcome: 'DROPPED_STALE' });
    expect(await h.outcome('agent-a', `evt-${fresh.eventId}`)).toMatchObject({ outcome: 'SENT' });
    expect(await h.outcome('agent-a', `evt-${read.eventId}`)).toMatchObject({ outcome: 'SENT' });
    const got = (await phone(h.emulator.url, '+12223334444')).arrivals;
    expect(got.map((a) => a.id).sort()).toEqual([fresh.eventId, read.eventId].sort());
    expect(got.find((a) => a.id === read.eventId)!.body).toEqual({ eventType: 'READ', messageId: 'MxIgT-4pWCQu2tH9hMkSTljQ' });
    expect(got.find((a) => a.id === read.eventId)!.wire!.url).toBe(
      `/v1/phones/+12223334444/agentEvents?eventId=${read.eventId}&agentId=agent-a`,
    );
  });

  it('fails a job with an invalid payload permanently, after one attempt', async () => {
    h = await startHarness({ name: 'bad-payload' });
    const queue = new Queue(outboundQueueName('agent-a'), { connection: h.redis.producer, prefix: h.service.keyspace.of('agent-a') });
    await queue.add('send-message', { messageId: 'not-a-uuid', to: '+1', message: {} }, { jobId: 'msg-bad', attempts: 5 });
    h.startDispatch();
    await expect(h.outcome('agent-a', 'msg-bad')).rejects.toThrow(/invalid send-message payload/);
    const job = await queue.getJob('msg-bad');
    expect(job?.attemptsMade).toBe(1);
    await queue.close();
    expect(((await control(h.emulator.url, '/counters', 'GET')) as { requests: number }).requests).toBe(0);
  });

  it('finishes the jobs in hand on shutdown', async () => {
    h = await startHarness({ name: 'shutdown', env: { DISPATCH_CONCURRENCY: '10' } });
    await control(h.emulator.url, '/faults', 'PUT', { latencyMs: 300 });
    const sent = await h.producer.sendMessages(Array.from({ length: 40 }, (_, i) => ({ to: rcsPhone(i, '666'), ...text(`m${i}`) })));
    const firstRequest = new Promise<void>((resolve) => h!.emulator.state.events.once('request', () => resolve()));
    const dispatch = h.startDispatch();
    await firstRequest;
    await dispatch.close();
    const states = await Promise.all(sent.map(async (s) => (await h!.producer.getStatus(s.messageId))!.state));
    // Whatever was taken was finished; nothing is left half-sent.
    expect(states.filter((s) => s === 'SENDING')).toHaveLength(0);
    expect(states.filter((s) => s === 'SENT').length).toBeGreaterThanOrEqual(1);
    expect(states.filter((s) => s === 'SENT').length + states.filter((s) => s === 'QUEUED').length).toBe(40);
  });
});
