/**
 * `npm start`: the whole service in one process for a first run. Redis (ours
 * if none answers), the RBM emulator when no key file is configured (its
 * webhooks signed and sent to our own /webhooks/rbm, its SMS sink as the SMS
 * provider), the dispatch, inbound, SMS and callback workers, the archiver
 * (history to DATABASE_URL, or the embedded PGlite under .data/history), and
 * the HTTP server on PORT.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../src/config.ts';
import { startEmulator } from '../src/emulator/index.ts';
import { createLogger } from '../src/logger.ts';
import { redisOf } from '../src/queue/local-redis.ts';
import { maskUrlPassword } from '../src/mask.ts';
import { createService } from '../src/service.ts';
import { smsSettingsFrom } from '../src/sms/from-config.ts';
import { serviceApp } from './http.ts';
import { runProcess, type Step } from './lifecycle.ts';

runProcess('rbm-dispatch', async () => {
  const loaded = loadConfig(process.env);
  const emulated = loaded.rbmEndpoint.kind === 'emulator';
  // In emulator mode with no CALLBACK_SECRET, one made up here signs status callbacks (GET /v1/callback shows it).
  const config =
    emulated && loaded.callbacks.secret === undefined
      ? { ...loaded, callbacks: { ...loaded.callbacks, secret: `whsec_${randomBytes(32).toString('base64')}` } }
      : loaded;
  const log = createLogger(config.logLevel);
  const steps: Step[] = [];
  const redis = await redisOf(config);
  // In emulator mode with no tokens configured, one made up here signs and checks every webhook.
  const clientTokens =
    Object.keys(config.webhookClientTokens).length > 0 || !emulated ? config.webhookClientTokens : { '*': randomBytes(16).toString('hex') };

  let rbm: { baseUrl: string; keyFile: string };
  let emulatorUrl: string | undefined;
  if (emulated) {
    const emulator = await startEmulator({
      port: config.emulatorPort,
      // The demo: delivered after half a second, read two seconds later.
      phoneDefaults: { deliveryDelayMs: 500, readDelayMs: 2000, readProbability: 1 },
      webhook: { url: `http://127.0.0.1:${config.port}/webhooks/rbm`, clientTokens },
    });
    // A key of this run's own: two services started in one checkout must not trust each other's emulator key.
    const keyDir = await mkdtemp(join(tmpdir(), 'rbm-dispatch-emulator-'));
    const keyFile = join(keyDir, 'key.json');
    await emulator.writeKeyFile(keyFile);
    rbm = { baseUrl: emulator.url, keyFile };
    emulatorUrl = emulator.url;
    log.warn(
      { emulator: emulator.url, keyFile },
      '*** EMULATOR MODE: no GOOGLE_APPLICATION_CREDENTIALS set, messages go to the built-in RBM emulator, not to Google ***',
    );
    steps.push(['emulator', () => emulator.close()], ['emulator key', () => rm(keyDir, { recursive: true, force: true })]);
  } else {
    rbm = { baseUrl: loaded.rbmEndpoint.url, keyFile: config.credentialsFile! };
  }

  const service = await createService(config, { redisUrl: redis.url, rbm, sms: smsSettingsFrom(config.sms, emulatorUrl), log });
  service.startDispatch();
  service.startInbound();
  service.startSms();
  if (config.callbacks.secret !== undefined) service.startCallbacks();
  else log.info('status callbacks are off: set CALLBACK_SECRET to turn them on');
  await service.startArchiver();
  const app = serviceApp(service, config, log, { open: emulated, clientTokens, history: true });
  await app.listen({ port: config.port, host: config.host });
  log.info(
    {
      url: `http://${config.host}:${config.port}`,
      agents: service.agents.activeIds().length,
      // Passwords in REDIS_URL or REDIS_CLUSTER_NODES are not logged.
      redis: redis.url.split(',').map(maskUrlPassword).join(','),
      sms: config.sms.provider,
    },
    'rbm-dispatch is up',
  );

  // Stop taking requests, finish the jobs in hand, then close what they used.
  steps.unshift(['http', () => app.close()], ['service', () => service.close()]);
  if (redis.stop) steps.push(['redis-server', redis.stop]);
  return { log, steps, timeoutMs: config.shutdownTimeoutMs };
});
