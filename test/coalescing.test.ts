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
    // A READ coalesces with those of the same conversation queued within the window (less 100 ms, see
    // Producer.coalesce). 3 s: room for the ten rounds below on a busy machine; checked, not assumed.
    const windowMs = 3000;
    h = await startHarness({ name: 'coalesce', env: { EVENT_COALESCE_WINDOW_MS: String(windowMs), RBM_AGENTS: 'agent-a:2000' } });
    h.startDispatch();
    const phones = Array.from({ length: 100 }, (_, i) => rcsPhone(700 + i));
    const all = arrivals(h.emulator, 100);
    // Ten rounds, each marking the next user message of every conversation read.
    const start = Date.now();
    for (let round = 0; round < 10; round++) {
      await h.producer.sendEvents(phones.map((to) => ({ to, eventType: 'READ' as const, messageId: `user-msg-${round}` })));
    }
    expect(Date.now() - start, 'the premise: all 1,000 READs inside the window').toBeLessThan(windowMs - 100);
    const got = await all;
    // Count only once the agent's queue is drained: no job waits, runs or is delayed any more.
    const queue = new Queue(outboundQueueName('agent-a'), { connection: h.redis.producer, prefix: h.service.keyspace.of('agent-a') });
    await waitFor(
      async () => Object.values(await queue.getJobCounts('wait', 'active', 'delayed', 'prioritized')).reduce((a, b) => a + b, 0),
      (n) => n === 0,
    );
    await queue.close();
    const counters = (await (await fetch(`${h.emulator.url}/_emulator/counters`)).json()) as { eventsAccepted: number };
    expect(counters.eventsAccepted).toBe(100);
    expect(new Set(got.map((a) => (a as unknown as { phone: string }).phone)).size).toBe(100);
    for (const a of got) expect((a as unknown as { body: { messageId: string } }).body.messageId).toBe('user-msg-9');
  });

  it('IS_TYPING bursts collapse too, and a READ after the window is sent again', async () => {
    const windowMs = 1000;
    h = await startHarness({ name: 'coalesce-typing', env: { EVENT_COALESCE_WINDOW_MS: String(windowMs) } });
    h.startDispatch();
    const to = rcsPhone(900);
    const first = arrivals(h.emulator, 1);
    // A burst: twenty at once, inside the window however busy the machine (checked).
    const start = Date.now();
    await Promise.all(Array.from({ length: 20 }, () => h!.producer.startTyping(to)));
    expect(Date.now() - start, 'the premise: the burst inside the window').toBeLessThan(windowMs - 100);
    await first;
    const second = arrivals(h.emulator, 1);
    await h.producer.markRead(to, 'user-msg-a');
    await second;
    const third = arrivals(h.emulator, 1);
    await h.producer.markRead(to, 'user-msg-b');
    await third;
    const phone = (await (await fetch(`${h.emulator.url}/_emulator/phones/${encodeURIComponent(to)}`)).json()) as {
      arrivals: Array<{ body: { eventType: string; messageId?: string } }>;
    };
    expect(phone.arrivals.map((a) => `${a.body.eventType}:${a.body.messageId ?? ''}`)).toEqual([
      'IS_TYPING:',
      'READ:user-msg-a',
      'READ:user-msg-b',
    ]);
  });
});
