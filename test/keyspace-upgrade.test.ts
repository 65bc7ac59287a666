/**
 * From the layout before lanes to the partitioned keyspace (#12), on the
 * cluster: a deployment that ran with one lane (every key under its
 * QUEUE_PREFIX) restarts with KEYSPACE_LANES=16. Its old agents stay on lane 0,
 * whose prefix is QUEUE_PREFIX itself: their records, queues and webhooks are
 * where they were, with no migration. Agents added afterwards spread over the
 * other lanes. A restart with fewer lanes than the agents use is refused.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { newRecord } from '../src/agents/record.ts';
import { laneTags } from '../src/queue/keyspace.ts';
import { rcsPhone, startHarness, uniquePrefix, waitFor, type Harness } from './helpers.ts';

const PREFIX = `{${uniquePrefix('upgrade')}}`;
const open: Harness[] = [];
afterAll(async () => {
  for (const h of open.reverse()) await h.close();
});

async function harness(lanes: number, keepKeys: boolean): Promise<Harness> {
  const h = await startHarness({ name: 'upgrade', cluster: true, keepKeys, env: { QUEUE_PREFIX: PREFIX, KEYSPACE_LANES: String(lanes) } });
  open.push(h);
  return h;
}

describe('upgrading to lanes', () => {
  it('old agents and their messages stay where they were; new agents spread; fewer lanes than in use is refused', async () => {
    // Before: one lane, a message sent and left SENT (its phone never reports).
    const before = await harness(1, true);
    before.startDispatch();
    const to = rcsPhone(31);
    before.emulator.state.setPhone(to, { deliveryDelayMs: 3_600_000 });
    const { messageId } = await before.producer.sendMessage({ to, contentMessage: { text: 'sent before lanes' } });
    await waitFor(
      async () => (await before.producer.getStatus(messageId))?.state,
      (s) => s === 'SENT',
    );
    // The release before lanes wrote agent records without a lane: as it left them.
    const { lane, ...asBefore } = (await before.service.agents.directory.get('agent-a'))!;
    expect(lane ?? 0).toBe(0);
    await before.redis.producer.hset(before.service.agents.directory.key, 'agent-a', JSON.stringify(asBefore));
    await before.close();
    open.pop();

    // After: sixteen lanes on the same data.
    const after = await harness(16, false);
    after.startDispatch();
    after.startInbound();
    expect(after.service.keyspace.of('agent-a')).toBe(PREFIX);
    expect((await after.producer.getStatus(messageId))?.state).toBe('SENT');
    // RBM's DELIVERED for the old message, through the intake, finds it on lane 0.
    await after.service.intake.enqueue(
      {
        kind: 'userEvent',
        agentId: 'agent-a',
        payload: { senderPhoneNumber: to, eventType: 'DELIVERED', eventId: `dlv-${randomUUID()}`, messageId },
        receivedAt: Date.now(),
      },
      `dlv-${messageId}`,
    );
    await waitFor(
      async () => (await after.producer.getStatus(messageId))?.state,
      (s) => s === 'DELIVERED',
    );
    // The old agent still sends on lane 0; a new agent lands on another lane and sends there.
    after.emulator.state.setPhone(rcsPhone(32), { deliveryDelayMs: 3_600_000 });
    const old = await after.producer.sendMessage({ to: rcsPhone(32), contentMessage: { text: 'old agent, after' } });
    const added = await after.service.agents.directory.add({ agentId: 'agent-new', ratePerSec: 50 });
    expect(added.lane).toBeGreaterThan(0);
    await after.service.agents.refreshNow();
    const fresh = await after.producer.sendMessage({ agentId: 'agent-new', to: rcsPhone(32), contentMessage: { text: 'new agent' } });
    for (const id of [old.messageId, fresh.messageId]) {
      await waitFor(
        async () => (await after.producer.getStatus(id))?.state,
        (s) => s === 'SENT',
      );
    }
    const laneOfNew = laneTags(PREFIX, 16)[added.lane!]!;
    expect(await after.redis.producer.exists(`${laneOfNew}:status:agent-new:${fresh.messageId}`)).toBe(1);
    expect(await after.redis.producer.exists(`${PREFIX}:status:agent-a:${old.messageId}`)).toBe(1);

    // A start with fewer lanes than an agent uses: refused, naming KEYSPACE_LANES and the agent.
    await after.service.agents.directory.restore([newRecord({ agentId: 'agent-far', ratePerSec: 1 }, Date.now(), undefined, 9)]);
    await expect(harness(4, true)).rejects.toMatchObject({
      code: 'CONFIG_INVALID',
      message: expect.stringMatching(/KEYSPACE_LANES: expected at least 10 \(.*'agent-far' on lane 9.*got 4$/),
    });
  });
});
