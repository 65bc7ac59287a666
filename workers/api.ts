/**
 * The HTTP server alone: the producer API, the RBM webhook, /metrics,
 * /healthz, /readyz and the admin UI, with no workers. Run the dispatch,
 * inbound and SMS workers beside it (npm run dispatch|inbound|sms).
 */
import { buildApi } from '../src/api/app.ts';
import { createMetrics } from '../src/api/metrics.ts';
import { loadConfig } from '../src/config.ts';
import { createLogger } from '../src/logger.ts';
import { ensureRedis } from '../src/queue/local-redis.ts';
import { createService } from '../src/service.ts';
import { runProcess } from './lifecycle.ts';

runProcess('rbm-dispatch api', async () => {
  const config = loadConfig(process.env);
  const log = createLogger(config.logLevel);
  if (config.rbmEndpoint.kind === 'emulator' || !config.credentialsFile) {
    throw new Error('the API alone needs RBM_ENDPOINT and GOOGLE_APPLICATION_CREDENTIALS (revoke calls RBM); npm start runs everything against the emulator');
  }
  const redis = await ensureRedis(config.redisUrl);
  const service = await createService(config, { redisUrl: redis.url, rbm: { baseUrl: config.rbmEndpoint.url, keyFile: config.credentialsFile }, log });
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
  });
  await app.listen({ port: config.port, host: config.host });
  log.info({ url: `http://${config.host}:${config.port}` }, 'API listening');
  return { log, timeoutMs: config.shutdownTimeoutMs, steps: [['http', () => app.close()], ['service', () => service.close()]] };
});
