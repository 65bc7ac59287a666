/**
 * Killing the inbound worker mid-stream loses no event: the receiver queued
 * every webhook in Redis before answering 200, and BullMQ hands the jobs a
 * killed worker held to the next one (stalled-job recovery).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { arrivals, rcsPhone, startHarness, waitFor, type Harness } from './helpers.ts';

let h: Harness | undefined;
const children: ChildProcess[] = [];
afterEach(async () => {
  for (const c of children) c.kill('SIGKILL');
  children.length = 0;
  await h?.close();
  h = undefined;
});

function inboundWorker(h: Harness): ChildProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', 'workers/inbound.ts'], {
    env: {
      ...process.env,
      REDIS_URL: h.config.redisUrl,
      QUEUE_PREFIX: h.config.queuePrefix,
      RBM_ENDPOINT: h.emulator.url,
      GOOGLE_APPLICATION_CREDENTIALS: h.config.credentialsFile,
      RBM_AGENTS: 'agent-a:1000',
      RBM_WEBHOOK_CLIENT_TOKENS: 'agent-a:test-client-token-a',
      INBOUND_CONCURRENCY: '8',
      WORKER_STALLED_INTERVAL_MS: '500',
      WORKER_LOCK_DURATION_MS: '1000',
      LOG_LEVEL: 'silent',
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  children.push(child);
  return child;
}

describe('inbound worker crash', () => {
  it('a worker killed mid-stream loses no event: the next one finishes them all', async () => {
    h = await startHarness({ name: 'crash', env: { RBM_AGENTS: 'agent-a:2000' } });
    h.startDispatch();
    await h.startHttp();
    const phones = Array.from({ length: 300 }, (_, i) => rcsPhone(2000 + i));
    // Phones offline: every message waits at RBM until the worker runs. A child process takes seconds to
    // start on a busy machine; had the events come before it, it would find them all queued and finish
    // them before the kill, and nothing would be mid-stream.
    for (const to of phones) h.emulator.state.setPhone(to, { online: false, deliveryDelayMs: Math.floor(Math.random() * 3000) });
    const accepted = arrivals(h.emulator, phones.length);
    const sent = await h.producer.sendMessages(phones.map((to) => ({ to, contentMessage: { text: 'parcel update' } })));
    await accepted;
    const ids = sent.map((s) => s.messageId);
    const deliveredCount = async () =>
      (await Promise.all(ids.map(async (id) => (await h!.producer.getStatus(id))?.state))).filter((s) => s === 'DELIVERED').length;

    const first = inboundWorker(h);
    // The worker is up once it has handled an event: the first phone's, delivered at once.
    h.emulator.state.setPhone(phones[0]!, { deliveryDelayMs: 0, online: true });
    await waitFor(
      () => h!.producer.getStatus(ids[0]!),
      (s) => s?.state === 'DELIVERED',
    );
    // The others deliver over the next three seconds from now, so events keep arriving while the worker dies.
    for (const to of phones.slice(1)) h.emulator.state.setPhone(to, { online: true });
    const atKill = await waitFor(deliveredCount, (n) => n >= 30);
    first.kill('SIGKILL');
    await new Promise((resolve) => first.once('exit', resolve));
    expect(atKill).toBeLessThan(300);

    inboundWorker(h);
    expect(await waitFor(deliveredCount, (n) => n === 300)).toBe(300);
    // Every event was received once by the receiver, so nothing was redelivered to make up for a loss.
    expect(h.service.webhookCounters.queued).toBe(300);
  });
});
