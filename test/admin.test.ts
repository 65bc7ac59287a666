/** bull-board at /admin/queues: behind the admin key, showing the service's queues. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { buildApi } from '../src/api/app.ts';
import { startHarness, type Harness } from './helpers.ts';

const ADMIN = 'admin-key-of-enough-length';
let h: Harness;
let app: FastifyInstance;
beforeAll(async () => {
  h = await startHarness({ name: 'admin' });
  app = buildApi({
    producer: h.producer,
    apiKeys: [],
    openWithoutKeys: true,
    admin: { queues: () => h.service.metricsSource.queues, adminKey: ADMIN, open: false },
  });
  await app.ready();
});
afterAll(async () => {
  await app.close();
  await h.close();
});

describe('admin UI', () => {
  it('refuses without the admin key, asking the browser for it', async () => {
    const res = await app.inject({ method: 'GET', url: '/admin/queues' });
    expect(res.statusCode).toBe(401);
    expect(res.headers['www-authenticate']).toContain('Basic');
    expect(
      (await app.inject({ method: 'GET', url: '/admin/queues', headers: { authorization: 'Bearer wrong-key-wrong-key' } })).statusCode,
    ).toBe(401);
  });

  it('serves the board with the key as Bearer or as the Basic password, listing every queue', async () => {
    const bearer = await app.inject({ method: 'GET', url: '/admin/queues', headers: { authorization: `Bearer ${ADMIN}` } });
    expect(bearer.statusCode).toBe(200);
    expect(bearer.headers['content-type']).toContain('text/html');
    const basic = `Basic ${Buffer.from(`ops:${ADMIN}`).toString('base64')}`;
    const api = await app.inject({ method: 'GET', url: '/admin/queues/api/queues', headers: { authorization: basic } });
    expect(api.statusCode).toBe(200);
    const names = (api.json() as { queues: Array<{ name: string }> }).queues.map((q) => q.name).sort();
    // Each lane has its inbound queue (src/queue/keyspace.ts): on several lanes, each shows under its lane's prefix.
    const lanes = h.service.keyspace.tags;
    const inbound = lanes.length === 1 ? ['rbm-inbound'] : lanes.map((tag) => `${tag}/rbm-inbound`);
    expect(names).toEqual([...inbound, 'rbm-outbound.agent-a', 'sms-outbound', 'status-callbacks'].sort());
  });

  it('is not there at all without a key outside emulator mode', async () => {
    const closed = buildApi({
      producer: h.producer,
      apiKeys: [],
      openWithoutKeys: true,
      admin: { queues: () => h.service.metricsSource.queues, adminKey: undefined, open: false },
    });
    expect((await closed.inject({ method: 'GET', url: '/admin/queues' })).statusCode).toBe(404);
    await closed.close();
  });
});
