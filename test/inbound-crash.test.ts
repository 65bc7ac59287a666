/**
 * Killing the inbound worker mid-stream loses no event: the receiver queued
 * every webhook in Redis before answering 200, and BullMQ hands the jobs a
 * killed worker held to the next one (stalled-job recovery).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { rcsPhone, startHarness, waitFor, type Harness } from './helpers.ts';

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
    // Deliveries spread over two seconds, so events keep arriving while the worker dies.
    for (const to of phones) h.emulator.state.setPhone(to, { deliveryDelayMs: Math.floor(Math.random() * 2000) });
    const sent = await h.producer.sendMessages(phones.map((to) => ({ to, contentMessage: { text: 'parcel update' } })));
    const ids = sent.map((s) => s.messageId);
    const deliveredCount = async () => (await Promise.all(ids.map(async (id) => (await h!.producer.getStatus(id))?.state))).filter((s) => s === 'DELIVERED').length;

    const first = inboundWorker(h);
    const atKill = await waitFor(deliveredCount, (n) => n >= 30);
    first.kill('SIGKILL');
    await new Promise((resolve) => first.once('exit', resolve));
    expect(atKill).toBeLessThan(300);

    inboundWorker(h);
    expect(await waitFor(deliveredCount, (n) => n === 300, 30_000)).toBe(300);
    // Every event was received once by the receiver, so nothing was redelivered to make up for a loss.
    expect(h.service.webhookCounters.queued).toBe(300);
  }, 60_000);
});
