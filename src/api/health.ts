/**
 * Liveness and readiness for orchestrators: /healthz answers while the
 * process serves HTTP; /readyz only when Redis answers a PING and every
 * worker set this process runs is running. Neither needs an API key.
 */
import type { FastifyPluginAsync } from 'fastify';

export interface ReadinessCheck {
  name: string;
  check: () => Promise<boolean>;
}

export interface HealthRoutesOptions {
  checks: readonly ReadinessCheck[];
}

export const healthRoutes: FastifyPluginAsync<HealthRoutesOptions> = async (app, { checks }) => {
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_request, reply) => {
    const results = await Promise.all(
      checks.map(async (c) => ({ name: c.name, ok: await Promise.race([c.check().catch(() => false), timeout(2000)]) })),
    );
    const ready = results.every((r) => r.ok);
    return reply
      .code(ready ? 200 : 503)
      .send({ status: ready ? 'ready' : 'not ready', checks: Object.fromEntries(results.map((r) => [r.name, r.ok ? 'ok' : 'failing'])) });
  });
};

function timeout(ms: number): Promise<false> {
  return new Promise((resolve) => setTimeout(() => resolve(false), ms).unref());
}
