/** /healthz and /readyz: readiness follows Redis and the worker sets, with no API key. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { buildApi } from '../src/api/app.ts';
import { startHarness, waitFor, type Harness } from './helpers.ts';

let h: Harness;
let app: FastifyInstance;
beforeAll(async () => {
  h = await startHarness({ name: 'health' });
  // Keys configured: the health routes must still answer without one.
  app = buildApi({
    producer: h.producer,
    apiKeys: [{ key: 'a-key-of-sixteen-chars', agents: ['agent-a'] }],
    openWithoutKeys: false,
    readiness: h.service.readiness(),
  });
});
afterAll(async () => {
  await app.close();
  await h.close();
});

describe('health', () => {
  it('/healthz answers while the process serves', async () => {
    const res = await app.inject({ method: 'GET', url: '/healthz' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ status: 'ok' });
  });

  it('/readyz is ready while Redis answers and the workers run, and not once a worker set stopped', async () => {
    const dispatch = h.startDispatch();
    // An agent's worker runs once its adaptive rate is written to Redis (until then it counts as starting).
    const ready = await waitFor(
      () => app.inject({ method: 'GET', url: '/readyz' }),
      (r) => r.statusCode === 200,
    );
    expect(ready.json()).toEqual({ status: 'ready', checks: { redis: 'ok', workers: 'ok' } });
    await dispatch.close();
    const stopped = await app.inject({ method: 'GET', url: '/readyz' });
    expect(stopped.statusCode).toBe(503);
    expect(stopped.json()).toEqual({ status: 'not ready', checks: { redis: 'ok', workers: 'failing' } });
  });

  it('/readyz says which check fails', async () => {
    const failing = buildApi({
      producer: h.producer,
      apiKeys: [],
      openWithoutKeys: true,
      readiness: [
        {
          name: 'redis',
          check: async () => {
            throw new Error('down');
          },
        },
      ],
    });
    const res = await failing.inject({ method: 'GET', url: '/readyz' });
    expect(res.statusCode).toBe(503);
    expect(res.json().checks).toEqual({ redis: 'failing' });
    await failing.close();
  });
});
