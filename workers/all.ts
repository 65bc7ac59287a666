/**
 * `npm start`: the whole service in one process for a first run. Redis (ours
 * if none answers), the RBM emulator when no key file is configured, the
 * dispatch workers, and the HTTP API on PORT.
 */
import { join } from 'node:path';
import { buildApi } from '../src/api/app.ts';
import { loadConfig } from '../src/config.ts';
import { startEmulator } from '../src/emulator/index.ts';
import { createLogger } from '../src/logger.ts';
import { ensureRedis } from '../src/queue/local-redis.ts';
import { createService } from '../src/service.ts';
import { runProcess, type Step } from './lifecycle.ts';

runProcess('rbm-dispatch', async () => {
  const config = loadConfig(process.env);
  const log = createLogger(config.logLevel);
  const steps: Step[] = [];
  const redis = await ensureRedis(config.redisUrl);

  let rbm: { baseUrl: string; keyFile: string };
  if (config.rbmEndpoint.kind === 'emulator') {
    const emulator = await startEmulator({ port: config.emulatorPort });
    const keyFile = join('.data', 'emulator-key.json');
    await emulator.writeKeyFile(keyFile);
    rbm = { baseUrl: emulator.url, keyFile };
    log.warn({ emulator: emulator.url, keyFile }, '*** EMULATOR MODE: no GOOGLE_APPLICATION_CREDENTIALS set, messages go to the built-in RBM emulator, not to Google ***');
    steps.push(['emulator', () => emulator.close()]);
  } else {
    rbm = { baseUrl: config.rbmEndpoint.url, keyFile: config.credentialsFile! };
  }

  const service = await createService(config, { redisUrl: redis.url, rbm, log });
  service.startDispatch();
  const api = buildApi({ producer: service.producer, apiKeys: config.apiKeys, openWithoutKeys: config.rbmEndpoint.kind === 'emulator', logger: log });
  await api.listen({ port: config.port, host: config.host });
  log.info({ url: `http://${config.host}:${config.port}`, agents: config.agents, redis: redis.url }, 'rbm-dispatch is up');

  // Stop taking requests, finish the jobs in hand, then close what they used.
  steps.unshift(['http', () => api.close()], ['service', () => service.close()]);
  if (redis.stop) steps.push(['redis-server', redis.stop]);
  return { log, steps, timeoutMs: config.shutdownTimeoutMs };
});
