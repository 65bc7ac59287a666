/**
 * The inbound worker alone: webhook events (delivery, TTL, user messages)
 * and local deadlines, from the rbm-inbound queue. Run it beside the HTTP
 * server that receives the webhooks.
 */
import { loadConfig } from '../src/config.ts';
import { createLogger } from '../src/logger.ts';
import { ensureRedis } from '../src/queue/local-redis.ts';
import { createService } from '../src/service.ts';
import { runProcess } from './lifecycle.ts';

runProcess('rbm-dispatch inbound', async () => {
  const config = loadConfig(process.env);
  const log = createLogger(config.logLevel);
  if (config.rbmEndpoint.kind === 'emulator' || !config.credentialsFile) {
    throw new Error('the inbound worker alone needs RBM_ENDPOINT and GOOGLE_APPLICATION_CREDENTIALS (it revokes messages at their deadline)');
  }
  const redis = await ensureRedis(config.redisUrl);
  const service = await createService(config, { redisUrl: redis.url, rbm: { baseUrl: config.rbmEndpoint.url, keyFile: config.credentialsFile }, log });
  service.startInbound();
  log.info({ stream: service.inboundStreamKey }, 'inbound worker running');
  return { log, timeoutMs: config.shutdownTimeoutMs, steps: [['service', () => service.close()]] };
});
