/**
 * Cluster mode (#12 part 1, first step): REDIS_CLUSTER_NODES selects an
 * ioredis Cluster for every connection, the prefix is a hash tag so each
 * script's keys share a slot, and the start-up check knows a Cluster from a
 * single node. The end-to-end core runs against the local 3-master cluster
 * as the vitest project 'cluster' (vitest.config.ts); this file checks that
 * it really is the cluster that holds the data.
 */
import { Cluster, Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.ts';
import { laneNodes, slotOf } from '../src/queue/keyspace.ts';
import { checkRedisCluster } from '../src/queue/preflight.ts';
import { rcsPhone, redisClusterNodes, redisUrl, startHarness, waitFor, type Harness } from './helpers.ts';

let h: Harness | undefined;
afterAll(async () => h?.close());

describe('cluster mode', () => {
  it('REDIS_CLUSTER_NODES takes host:port and URLs, needs a {prefix}, and names a bad node without its password', () => {
    const config = loadConfig({ REDIS_CLUSTER_NODES: '10.0.0.1:7000,rediss://user:pw@10.0.0.2:7001' });
    expect(config.redisClusterNodes).toEqual(['redis://10.0.0.1:7000', 'rediss://user:pw@10.0.0.2:7001']);
    expect(config.queuePrefix).toBe('{rbm}');
    const problems = (env: Record<string, string>) => {
      try {
        loadConfig(env);
        return [];
      } catch (err) {
        return (err as { problems: Array<{ path: string; problem: string }> }).problems;
      }
    };
    const prefix = problems({ REDIS_CLUSTER_NODES: '10.0.0.1:7000', QUEUE_PREFIX: 'rbm' });
    expect(prefix.map((p) => p.path)).toEqual(['QUEUE_PREFIX']);
    const bad = problems({ REDIS_CLUSTER_NODES: 'redis://:secret@host-without-port,http://x:1' });
    expect(bad.map((p) => p.path)).toEqual(['REDIS_CLUSTER_NODES', 'REDIS_CLUSTER_NODES']);
    expect(JSON.stringify(bad)).not.toContain('secret');
  });

  it('the start-up check passes on the cluster and tells a single node apart', async () => {
    const ok = await checkRedisCluster(
      redisClusterNodes().map((n) => `redis://${n}`),
      { prefix: '{t-check}', timeoutMs: 5000 },
    );
    expect(ok.version).toMatch(/^\d+\./);
    const single = new URL(redisUrl());
    await expect(checkRedisCluster([`redis://${single.host}`], { prefix: '{t-check}', timeoutMs: 3000 })).rejects.toMatchObject({
      code: expect.stringMatching(/^REDIS_(UNSUITABLE|UNAVAILABLE)$/),
    });
  });

  it('a message sent, delivered and read lives on the cluster, every key of it in the one slot of its lane, none on the single node', async () => {
    h = await startHarness({ name: 'cluster-keys', cluster: true });
    h.startDispatch();
    h.startInbound();
    await h.startHttp();
    expect(h.redis.producer).toBeInstanceOf(Cluster);
    expect(h.service.keyspace.count).toBe(16);
    const to = rcsPhone(1);
    h.emulator.state.setPhone(to, { deliveryDelayMs: 20, readDelayMs: 20, readProbability: 1 });
    const { messageId } = await h.producer.sendMessage({ to, contentMessage: { text: 'hello cluster' } });
    await waitFor(
      async () => (await h!.producer.getStatus(messageId))?.state,
      (s) => s === 'READ',
    );
    const cluster = h.redis.producer as unknown as Cluster;
    const lane = h.service.keyspace.of('agent-a');
    const keys = (await Promise.all(cluster.nodes('master').map((n) => n.keys(`${lane}:*`)))).flat();
    const ofMessage = keys.filter((k) => k.includes(messageId));
    // Its record and its send job (its deadline job was removed on delivery), all in its lane's slot.
    expect(ofMessage).toContain(h.status.key({ agentId: 'agent-a', messageId }));
    expect(ofMessage.length).toBeGreaterThanOrEqual(2);
    expect(new Set(ofMessage.map(slotOf))).toEqual(new Set([slotOf(lane)]));
    const single = new Redis(redisUrl());
    try {
      expect(await single.keys(`*${h.config.queuePrefix.slice(1, -1)}*`)).toEqual([]);
    } finally {
      single.disconnect();
    }
  });

  it("agents added at run time spread evenly over the masters, and each one's traffic goes to its lane's master", async () => {
    h ??= await startHarness({ name: 'cluster-keys', cluster: true });
    const cluster = h.redis.producer as unknown as Cluster;
    const added = Array.from({ length: 30 }, (_, i) => `agent-spread-${i}`);
    for (const agentId of added) await h.service.agents.directory.add({ agentId, ratePerSec: 100 });
    const records = (await h.service.agents.directory.read()).records.filter((r) => !r.removed);
    const nodes = laneNodes(h.redis.producer, h.service.keyspace.tags);
    const perNode = new Map<string, number>();
    for (const r of records) perNode.set(nodes[r.lane ?? 0]!, (perNode.get(nodes[r.lane ?? 0]!) ?? 0) + 1);
    expect(perNode.size).toBe(3);
    expect(Math.max(...perNode.values()) - Math.min(...perNode.values())).toBeLessThanOrEqual(1);
    // A record written for one of them lands on the master its lane names.
    await h.service.agents.refreshNow();
    const agentId = added[7]!;
    await h.status.createMany([{ agentId, messageId: '00000000-0000-4000-8000-000000000007', to: rcsPhone(7) }]);
    const key = h.status.key({ agentId, messageId: '00000000-0000-4000-8000-000000000007' });
    const holder = cluster
      .nodes('master')
      .find((n) => `${n.options.host}:${n.options.port}` === nodes[h!.service.keyspace.laneOf(agentId)]);
    expect(await holder!.exists(key)).toBe(1);
  });
});
