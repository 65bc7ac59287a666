/**
 * The HTTP server alone: the producer API, the RBM webhook, /metrics,
 * /healthz, /readyz and the admin UI, with no workers. Run the dispatch,
 * inbound, SMS and callback workers beside it (npm run dispatch|inbound|sms|callbacks).
 */
import { buildApi } from '../src/api/app.ts';
import { createMetrics } from '../src/api/metrics.ts';
import { composeAlone, runProcess } from './lifecycle.ts';

runProcess('rbm-dispatch api', async () => {
  const { config, log, service } = await composeAlone('the API (its revoke calls RBM)');
  const metrics = createMetrics({ read: () => service.metricsSource.read(), webhookCounters: service.webhookCounters });
  const app = buildApi({
    producer: service.producer,
    revoke: service.revoke,
    apiKeys: config.apiKeys,
    openWithoutKeys: false,
    logger: log,
    webhook: { clientTokens: config.webhookClientTokens, intake: service.intake, bodyLimitBytes: config.inbound.bodyLimitBytes, counters: service.webhookCounters, log, observeLag: metrics.observeWebhookLag },
    metrics,
    admin: { queues: service.metricsSource.queues, adminKey: config.adminApiKey, open: false },
    readiness: service.readiness(),
    failures: { list: service.failures, redrive: service.redrive },
    callbacks: service.callbacks,
  });
  await app.listen({ port: config.port, host: config.host });
  log.info({ url: `http://${config.host}:${config.port}` }, 'API listening');
  return { log, timeoutMs: config.shutdownTimeoutMs, steps: [['http', () => app.close()], ['service', () => service.close()]] };
});
