import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Queue } from 'bullmq';
import { v5 as uuidv5, validate as isUuid } from 'uuid';
import { outboundQueueName } from '../jobs/index.ts';
import { PayloadError, UnknownAgentError } from '../src/errors.ts';
import { startHarness, type Harness } from './helpers.ts';

let h: Harness;
let queueA: Queue;
let queueB: Queue;
const text = (t: string) => ({ contentMessage: { text: t } });

beforeAll(async () => {
  h = await startHarness({ name: 'producer', env: { RBM_AGENTS: 'agent-a:100,agent-b:100' } });
  queueA = new Queue(outboundQueueName('agent-a'), { connection: h.redis.producer, prefix: h.service.keyspace.of('agent-a') });
  queueB = new Queue(outboundQueueName('agent-b'), { connection: h.redis.producer, prefix: h.service.keyspace.of('agent-b') });
});
afterAll(async () => {
  await queueA.close();
  await queueB.close();
  await h.close();
});

describe('producer', () => {
  it('fixes a UUID, writes a QUEUED status and queues a job named after it', async () => {
    const sent = await h.producer.sendMessage({ to: '+12223334444', agentId: 'agent-a', messageTrafficType: 'TRANSACTION', ...text('hi') });
    expect(isUuid(sent.messageId)).toBe(true);
    expect(sent).toMatchObject({ state: 'QUEUED', duplicate: false });
    const job = await queueA.getJob(`msg-${sent.messageId}`);
    expect(job?.name).toBe('send-message');
    expect(job?.data).toMatchObject({
      messageId: sent.messageId,
      agentId: 'agent-a',
      to: '+12223334444',
      message: { contentMessage: { text: 'hi' }, messageTrafficType: 'TRANSACTION' },
    });
    expect(job?.opts.priority).toBe(2);
    expect((await h.producer.getStatus(sent.messageId))?.state).toBe('QUEUED');
  });

  it('queues AUTHENTICATION unprioritized (the fast lane) and PROMOTION last', async () => {
    const auth = await h.producer.sendMessage({
      to: '+12223334441',
      agentId: 'agent-a',
      messageTrafficType: 'AUTHENTICATION',
      ...text('123456'),
    });
    const promo = await h.producer.sendMessage({
      to: '+12223334441',
      agentId: 'agent-a',
      messageTrafficType: 'PROMOTION',
      ...text('sale'),
    });
    expect((await queueA.getJob(`msg-${auth.messageId}`))?.opts.priority ?? 0).toBe(0);
    expect((await queueA.getJob(`msg-${promo.messageId}`))?.opts.priority).toBe(4);
  });

  it('an idempotency key makes a UUIDv5 of (agent, key), and the same key queues nothing the second time', async () => {
    const before = await queueA.count();
    const first = await h.producer.sendMessage({ to: '+12223334444', agentId: 'agent-a', idempotencyKey: 'order-42', ...text('once') });
    const second = await h.producer.sendMessage({ to: '+12223334444', agentId: 'agent-a', idempotencyKey: 'order-42', ...text('once') });
    expect(second.messageId).toBe(first.messageId);
    expect(first.duplicate).toBe(false);
    expect(second.duplicate).toBe(true);
    expect(await queueA.count()).toBe(before + 1);
    // Same key on another agent is another message.
    const other = await h.producer.sendMessage({ to: '+12223334444', agentId: 'agent-b', idempotencyKey: 'order-42', ...text('once') });
    expect(other.messageId).not.toBe(first.messageId);
    expect(first.messageId).toBe(uuidv5('message:agent-a:order-42', '6f1c3e0a-7b52-4d1e-9a38-2f5d8c4b7e91'));
  });

  it('a key repeated inside one bulk call is queued once', async () => {
    const before = await queueA.count();
    const out = await h.producer.sendMessages([
      { to: '+12223334444', agentId: 'agent-a', idempotencyKey: 'dup-in-batch', ...text('a') },
      { to: '+12223334444', agentId: 'agent-a', idempotencyKey: 'dup-in-batch', ...text('a') },
    ]);
    expect(out[0]!.messageId).toBe(out[1]!.messageId);
    expect(out.map((o) => o.duplicate)).toEqual([false, true]);
    expect(await queueA.count()).toBe(before + 1);
  });

  it('keeps a caller-chosen messageId', async () => {
    const messageId = '8a0d3b9e-5c1f-4f6e-9b7a-2d4c6e8f0a1b';
    expect((await h.producer.sendMessage({ to: '+12223334444', agentId: 'agent-a', messageId, ...text('x') })).messageId).toBe(messageId);
  });

  it('enqueues thousands per call across agents', async () => {
    const beforeA = await queueA.count();
    const beforeB = await queueB.count();
    const inputs = Array.from({ length: 3000 }, (_, i) => ({
      to: `+1555000${String(i).padStart(4, '0')}`,
      agentId: i % 3 === 0 ? 'agent-b' : 'agent-a',
      ...text(`n${i}`),
    }));
    const out = await h.producer.sendMessages(inputs, { batchId: 'b1' });
    expect(new Set(out.map((o) => o.messageId)).size).toBe(3000);
    expect(await queueA.count()).toBe(beforeA + 2000);
    expect(await queueB.count()).toBe(beforeB + 1000);
    expect((await h.producer.getStatus(out[2999]!.messageId))?.batchId).toBe('b1');
  });

  it('refuses a bulk call with one bad item whole, naming the item and field, and queues nothing', async () => {
    const before = (await queueA.count()) + (await queueB.count());
    const keysBefore = await h.redis.producer.keys(`${h.config.queuePrefix}:status:*`);
    const inputs = Array.from({ length: 100 }, (_, i) => ({ to: '+12223334444', agentId: 'agent-a', ...text(`n${i}`) }));
    inputs[37] = { to: '12223334444', agentId: 'agent-a', ...text('no plus') };
    const err = await h.producer.sendMessages(inputs).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PayloadError);
    expect((err as PayloadError).index).toBe(37);
    expect((err as PayloadError).problems[0]!.path).toBe('37.to');
    expect((await queueA.count()) + (await queueB.count())).toBe(before);
    expect(await h.redis.producer.keys(`${h.config.queuePrefix}:status:*`)).toHaveLength(keysBefore.length);
  });

  it('refuses an unknown agent, and a missing agent when several are configured', async () => {
    await expect(h.producer.sendMessage({ to: '+12223334444', agentId: 'ghost', ...text('x') })).rejects.toBeInstanceOf(UnknownAgentError);
    const err = (await h.producer.sendMessage({ to: '+12223334444', ...text('x') }).catch((e: unknown) => e)) as PayloadError;
    expect(err.problems[0]).toMatchObject({ path: 'agentId' });
  });

  it('queues events; READ and IS_TYPING shorthands; keyed events once', async () => {
    const read = await h.producer.markRead('+12223334444', 'MxIgT-4pWCQu2tH9hMkSTljQ', { agentId: 'agent-a' });
    const job = await queueA.getJob(`evt-${read.eventId}`);
    expect(job?.data).toMatchObject({ eventType: 'READ', messageId: 'MxIgT-4pWCQu2tH9hMkSTljQ', to: '+12223334444' });
    const typing = await h.producer.startTyping('+12223334444', { agentId: 'agent-a' });
    expect((await queueA.getJob(`evt-${typing.eventId}`))?.data.eventType).toBe('IS_TYPING');
    const before = await queueA.count();
    const a = await h.producer.markRead('+12223334444', 'user-msg-1', { agentId: 'agent-a', idempotencyKey: 'read-1' });
    const b = await h.producer.markRead('+12223334444', 'user-msg-1', { agentId: 'agent-a', idempotencyKey: 'read-1' });
    expect(b).toEqual({ eventId: a.eventId, duplicate: true });
    expect(await queueA.count()).toBe(before + 1);
    await expect(h.producer.sendEvent({ to: '+12223334444', agentId: 'agent-a', eventType: 'READ' } as never)).rejects.toBeInstanceOf(
      PayloadError,
    );
  });
});
