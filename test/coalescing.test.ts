/**
 * READ coalescing: a desk marking a conversation read many times in a burst
 * sends one READ per conversation, for the newest message (emulator count).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Queue } from 'bullmq';
import { outboundQueueName } from '../jobs/index.ts';
import { arrivals, rcsPhone, startHarness, waitFor, type Harness } from './helpers.ts';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

describe('READ coalescing', () => {
  it('1,000 READs over 100 conversations inside the window send 100 events, each for the newest message', async () => {
    h = await startHarness({ name: 'coalesce', env: { EVENT_COALESCE_WINDOW_MS: '1000', RBM_AGENTS: 'agent-a:2000' } });
    h.startDispatch();
    const phones = Array.from({ length: 100 }, (_, i) => rcsPhone(700 + i));
    const all = arrivals(h.emulator, 100);
    // Ten rounds, each marking the next user message of every conversation read.
    for (let round = 0; round < 10; round++) {
      await h.producer.sendEvents(phones.map((to) => ({ to, eventType: 'READ' as const, messageId: `user-msg-${round}` })));
    }
    const got = await all;
    // Count only once the agent's queue is drained: no job waits, runs or is delayed any more.
    const queue = new Queue(outboundQueueName('agent-a'), { connection: h.redis.producer, prefix: h.config.queuePrefix });
    await waitFor(async () => Object.values(await queue.getJobCounts('wait', 'active', 'delayed', 'prioritized')).reduce((a, b) => a + b, 0), (n) => n === 0);
    await queue.close();
    const counters = (await (await fetch(`${h.emulator.url}/_emulator/counters`)).json()) as { eventsAccepted: number };
    expect(counters.eventsAccepted).toBe(100);
    expect(new Set(got.map((a) => (a as unknown as { phone: string }).phone)).size).toBe(100);
    for (const a of got) expect((a as unknown as { body: { messageId: string } }).body.messageId).toBe('user-msg-9');
  });

  it('IS_TYPING bursts collapse too, and a READ after the window is sent again', async () => {
    h = await startHarness({ name: 'coalesce-typing', env: { EVENT_COALESCE_WINDOW_MS: '300' } });
    h.startDispatch();
    const to = rcsPhone(900);
    const first = arrivals(h.emulator, 1);
    for (let i = 0; i < 20; i++) await h.producer.startTyping(to);
    await first;
    const second = arrivals(h.emulator, 1);
    await h.producer.markRead(to, 'user-msg-a');
    await second;
    const third = arrivals(h.emulator, 1);
    await h.producer.markRead(to, 'user-msg-b');
    await third;
    const phone = (await (await fetch(`${h.emulator.url}/_emulator/phones/${encodeURIComponent(to)}`)).json()) as { arrivals: Array<{ body: { eventType: string; messageId?: string } }> };
    expect(phone.arrivals.map((a) => `${a.body.eventType}:${a.body.messageId ?? ''}`)).toEqual(['IS_TYPING:', 'READ:user-msg-a', 'READ:user-msg-b']);
  });
});
