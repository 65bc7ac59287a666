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

  it('a message sent, delivered and read lives on the cluster, in the one slot of its prefix, and nowhere on the single node', async () => {
    h = await startHarness({ name: 'cluster-keys', cluster: true });
    h.startDispatch();
    h.startInbound();
    await h.startHttp();
    expect(h.redis.producer).toBeInstanceOf(Cluster);
    const to = rcsPhone(1);
    h.emulator.state.setPhone(to, { deliveryDelayMs: 20, readDelayMs: 20, readProbability: 1 });
    const { messageId } = await h.producer.sendMessage({ to, contentMessage: { text: 'hello cluster' } });
    await waitFor(
      async () => (await h!.producer.getStatus(messageId))?.state,
      (s) => s === 'READ',
    );
    const cluster = h.redis.producer as unknown as Cluster;
    const perNode = await Promise.all(cluster.nodes('master').map((n) => n.keys(`${h!.config.queuePrefix}:*`)));
    // One slot: every key of the prefix on exactly one master.
    expect(perNode.filter((keys) => keys.length > 0)).toHaveLength(1);
    expect(perNode.flat().some((k) => k.includes(messageId))).toBe(true);
    const single = new Redis(redisUrl());
    try {
      expect(await single.keys(`${h.config.queuePrefix}:*`)).toEqual([]);
    } finally {
      single.disconnect();
    }
  });
});
