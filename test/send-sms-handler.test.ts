/**
 * The SMS handler after a crash: a try that died after handing the SMS over
 * left `smsInFlight` set. Without an idempotent provider the repeat is refused
 * (two SMS are worse than none, and the record says so); with one, the repeat
 * carries the same key and the provider answers it with the first SMS.
 */
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { smsIdempotencyKey } from '../jobs/send-sms.ts';
import { createSendSmsHandler } from '../src/handlers/send-sms.ts';
import { createLogger } from '../src/logger.ts';
import { createRedis, whenReady } from '../src/queue/connection.ts';
import type { SmsRequest } from '../src/sms/index.ts';
import { StatusStore } from '../src/status/store.ts';
import { redisUrl, uniquePrefix } from './helpers.ts';

const prefix = uniquePrefix('sms-handler');
let redis: Redis;
let store: StatusStore;
const log = createLogger('silent');
const id = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`;

beforeAll(async () => {
  redis = createRedis(redisUrl(), 'producer');
  await whenReady(redis);
  store = new StatusStore(redis, { prefix, ttlMs: 86_400_000 });
});
afterAll(async () => {
  const keys = await redis.keys(`${prefix}:*`);
  if (keys.length) await redis.del(...keys);
  await redis.quit();
});

/** A message whose SMS try died in flight: FALLBACK_SENDING with the in-flight mark. */
async function crashedTry(messageId: string): Promise<void> {
  await store.createMany([{ messageId, agentId: 'agent-a', to: '+12223334444' }], 1);
  for (const s of ['SENDING', 'NOT_RCS', 'FALLBACK_QUEUED'] as const)
    await store.transition({ agentId: 'agent-a', messageId: messageId }, s);
  await store.transition({ agentId: 'agent-a', messageId: messageId }, 'FALLBACK_SENDING', { fields: { smsInFlight: '1' } });
}

function provider() {
  const calls: SmsRequest[] = [];
  return {
    calls,
    name: 'twilio' as const,
    send: async (r: SmsRequest) => {
      calls.push(r);
      return { providerMessageId: `SM-${r.idempotencyKey}`, provider: 'twilio' };
    },
  };
}

const payload = (messageId: string) => ({
  messageId,
  agentId: 'agent-a',
  to: '+12223334444',
  text: 'code 1',
  reason: 'NOT_RCS',
  queuedAt: 1,
});
const ctx = { jobId: 'j', attempt: 2, maxAttempts: 5 };

describe('send-sms after a crash mid-try', () => {
  it('refuses to send again when the provider does not honour the key: FALLBACK_FAILED, outcome unknown', async () => {
    const p = provider();
    await crashedTry(id(1));
    const out = await createSendSmsHandler({ status: store, provider: p, idempotent: false, log })(payload(id(1)), ctx);
    expect(out).toEqual({ outcome: 'OUTCOME_UNKNOWN' });
    expect(p.calls).toHaveLength(0);
    expect(await store.get({ agentId: 'agent-a', messageId: id(1) })).toMatchObject({
      state: 'FALLBACK_FAILED',
      lastError: { code: 'SMS_OUTCOME_UNKNOWN' },
    });
  });

  it('repeats with the same key when the provider honours it, and ends FALLBACK_SENT', async () => {
    const p = provider();
    await crashedTry(id(2));
    const out = await createSendSmsHandler({ status: store, provider: p, idempotent: true, log })(payload(id(2)), ctx);
    expect(out).toMatchObject({ outcome: 'FALLBACK_SENT' });
    // The key the provider deduplicates on: the same on every try of this message's SMS, and only of this agent's.
    expect(p.calls.map((c) => c.idempotencyKey)).toEqual([smsIdempotencyKey({ agentId: 'agent-a', messageId: id(2) })]);
    expect(smsIdempotencyKey({ agentId: 'agent-b', messageId: id(2) })).not.toBe(p.calls[0]!.idempotencyKey);
    expect(await store.get({ agentId: 'agent-a', messageId: id(2) })).toMatchObject({ state: 'FALLBACK_SENT' });
  });
});

describe('send-sms run twice at once (the job outlived its lock while its first try waited for the provider)', () => {
  it("the second try refuses, the first one's answer moves the record on to FALLBACK_SENT: one SMS, the right end", async () => {
    const ref = { agentId: 'agent-a', messageId: id(9) };
    await store.createMany([{ ...ref, to: '+12223334444' }], 1);
    for (const s of ['SENDING', 'NOT_RCS', 'FALLBACK_QUEUED'] as const) await store.transition(ref, s);
    const calls: SmsRequest[] = [];
    let answer: (v: { providerMessageId: string; provider: 'twilio' }) => void = () => {};
    let handedOver: () => void = () => {};
    const inProvider = new Promise<void>((resolve) => {
      handedOver = resolve;
    });
    const slow = {
      name: 'twilio' as const,
      send: (r: SmsRequest) => {
        calls.push(r);
        handedOver();
        return new Promise<{ providerMessageId: string; provider: 'twilio' }>((resolve) => {
          answer = resolve;
        });
      },
    };
    const handler = createSendSmsHandler({ status: store, provider: slow, idempotent: false, log });
    const first = handler(payload(id(9)), { jobId: 'j', attempt: 1, maxAttempts: 5 });
    await inProvider;
    await expect(handler(payload(id(9)), { jobId: 'j', attempt: 1, maxAttempts: 5 })).resolves.toEqual({ outcome: 'OUTCOME_UNKNOWN' });
    expect((await store.get(ref))?.state).toBe('FALLBACK_FAILED');
    answer({ providerMessageId: 'SM-1', provider: 'twilio' });
    await expect(first).resolves.toEqual({ outcome: 'FALLBACK_SENT', providerMessageId: 'SM-1' });
    expect(calls).toHaveLength(1);
    const after = await store.get(ref);
    expect(after?.state).toBe('FALLBACK_SENT');
    expect(after?.timeline.map((e) => e.state).slice(-2)).toEqual(['FALLBACK_FAILED', 'FALLBACK_SENT']);
    expect(await redis.zscore(store.failuresKeyOf('agent-a'), `${id(9)}/agent-a`)).toBeNull();
  });
});
