/**
 * Several lanes on one Redis node (KEYSPACE_LANES=4): the layout a cluster
 * uses, on the single node, so the merged readers are checked here too:
 * each agent's keys under its lane, failures merged across lanes with no
 * failure skipped or shown twice page after page, metrics summed, a webhook
 * and a deadline on the lane of their message, and the archiver and evictor
 * of every lane taking settled messages out of Redis into the history.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rcsPhone, startHarness, waitFor, type Harness } from './helpers.ts';

let h: Harness;
beforeAll(async () => {
  h = await startHarness({
    name: 'lanes',
    env: {
      KEYSPACE_LANES: '4',
      RBM_AGENTS: 'agent-a:500,agent-b:500,agent-c:500',
      RBM_WEBHOOK_CLIENT_TOKENS: 'test-client-token-a',
      HISTORY_DATA_DIR: 'memory://',
      STATUS_HOT_MS: '1000',
    },
  });
});
afterAll(async () => h?.close());

describe('lanes on one node', () => {
  it("puts each agent on its own lane, lowest first, and each message's keys under its agent's lane", async () => {
    const lanes = await Promise.all(['agent-a', 'agent-b', 'agent-c'].map(async (a) => (await h.service.agents.directory.get(a))?.lane));
    expect(lanes).toEqual([0, 1, 2]);
    expect(h.service.keyspace.of('agent-b')).toBe(`${h.config.queuePrefix}:L1`);
    // A caller-chosen ID gets its QUEUED record at once (a random one only with its first move).
    const messageId = randomUUID();
    await h.producer.sendMessage({ agentId: 'agent-b', messageId, to: rcsPhone(1), contentMessage: { text: 'lane 1' } });
    expect(await h.redis.producer.exists(`${h.config.queuePrefix}:L1:status:agent-b:${messageId}`)).toBe(1);
    expect(await h.redis.producer.exists(`${h.config.queuePrefix}:status:agent-b:${messageId}`)).toBe(0);
    const job = await h.service.queues.queue('outbound', 'agent-b').getJob(`msg-${messageId}`);
    expect(job?.queueQualifiedName).toBe(`${h.config.queuePrefix}:L1:rbm-outbound.agent-b`);
  });

  it('pages through failures of every lane newest first, ties kept together, none skipped or repeated', async () => {
    const base = Date.now() - 60_000;
    const made: string[] = [];
    // 3 agents × 7 failures; several share a millisecond across lanes.
    for (const [a, agentId] of ['agent-a', 'agent-b', 'agent-c'].entries()) {
      for (let i = 0; i < 7; i++) {
        const messageId = `00000000-0000-4000-8000-${String(a * 100 + i).padStart(12, '0')}`;
        await h.status.transition({ agentId, messageId }, 'FAILED', {
          create: { agentId, messageId, to: rcsPhone(10 + i), createdAt: base },
          error: { code: 'TEST_FAILURE', message: 'made by the test' },
          now: base + Math.floor(i / 2) * 10,
        });
        made.push(messageId);
      }
    }
    const seen: string[] = [];
    let before: number | undefined;
    let last = Number.POSITIVE_INFINITY;
    for (let page = 0; page < 30; page++) {
      const { failures, next } = await h.service.failures({ limit: 4, code: 'TEST_FAILURE', ...(before ? { before } : {}) });
      for (const f of failures) {
        expect(f.failedAt).toBeLessThanOrEqual(last);
        last = f.failedAt;
        seen.push(f.messageId);
      }
      if (next === undefined) break;
      before = next;
    }
    expect(seen.length).toBe(made.length);
    expect(new Set(seen)).toEqual(new Set(made));
  });

  it("applies RBM's webhooks on the message's lane and sums every lane's metrics", async () => {
    h.startDispatch();
    h.startInbound();
    await h.startHttp();
    const sent: string[] = [];
    for (const agentId of ['agent-a', 'agent-b', 'agent-c']) {
      const to = rcsPhone(50 + sent.length);
      h.emulator.state.setPhone(to, { deliveryDelayMs: 20, readDelayMs: 20, readProbability: 1 });
      sent.push((await h.producer.sendMessage({ agentId, to, contentMessage: { text: `to ${agentId}` } })).messageId);
    }
    for (const id of sent) {
      await waitFor(
        async () => (await h.producer.getStatus(id))?.state,
        (s) => s === 'READ',
      );
    }
    const { counters } = await h.service.metricsSource.read();
    // Each lane counts its own agents' moves, in its own hash; /metrics reads their sum.
    for (const agentId of ['agent-a', 'agent-b', 'agent-c']) expect(counters[`state|READ|${agentId}`], agentId).toBeGreaterThanOrEqual(1);
  });

  it("archives and evicts every lane's settled messages", async () => {
    await h.service.startArchiver();
    const store = await h.service.history();
    const refs = await Promise.all(
      ['agent-a', 'agent-b', 'agent-c'].map(async (agentId) => {
        const to = rcsPhone(80);
        h.emulator.state.setPhone(to, { deliveryDelayMs: 20, readDelayMs: 20, readProbability: 1 });
        const { messageId } = await h.producer.sendMessage({ agentId, to, contentMessage: { text: 'archived' } });
        return { agentId, messageId };
      }),
    );
    for (const ref of refs) {
      await waitFor(
        async () => (await store.message(ref))?.state,
        (s) => s === 'READ',
        20_000,
      );
      // Out of Redis once settled for STATUS_HOT_MS and archived (the evictor of its lane).
      await waitFor(
        async () => h.redis.producer.exists(h.status.key(ref)),
        (n) => n === 0,
        20_000,
      );
    }
  });
});
