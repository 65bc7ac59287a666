/**
 * The dispatch worker alone: takes jobs from every configured agent's
 * outbound queue and sends them to RBM. Run several for more throughput;
 * the limiter lives in Redis, so each agent's quota holds across them.
 */
import { loadConfig } from '../src/config.ts';
import { createLogger } from '../src/logger.ts';
import { ensureRedis } from '../src/queue/local-redis.ts';
import { createService } from '../src/service.ts';
import { runProcess } from './lifecycle.ts';

runProcess('rbm-dispatch worker', async () => {
  const config = loadConfig(process.env);
  const log = createLogger(config.logLevel);
  if (config.rbmEndpoint.kind === 'emulator' || !config.credentialsFile) {
    throw new Error('the dispatch worker alone needs RBM_ENDPOINT and GOOGLE_APPLICATION_CREDENTIALS (for the emulator, `npm run emulator` prints both)');
  }
  const redis = await ensureRedis(config.redisUrl);
  const service = await createService(config, { redisUrl: redis.url, rbm: { baseUrl: config.rbmEndpoint.url, keyFile: config.credentialsFile }, log });
  service.startDispatch();
  log.info({ agents: config.agents }, 'dispatch worker running');
  return { log, timeoutMs: config.shutdownTimeoutMs, steps: [['service', () => service.close()]] };
});
