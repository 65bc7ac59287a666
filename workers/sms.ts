/**
 * The SMS worker alone: sends the fallback SMS of messages RCS could not
 * deliver, at SMS_RATE_PER_SEC, through SMS_PROVIDER.
 */
import { loadConfig } from '../src/config.ts';
import { createLogger } from '../src/logger.ts';
import { ensureRedis } from '../src/queue/local-redis.ts';
import { createService } from '../src/service.ts';
import { smsSettingsFrom } from '../src/sms/from-config.ts';
import { runProcess } from './lifecycle.ts';

runProcess('rbm-dispatch sms', async () => {
  const config = loadConfig(process.env);
  const log = createLogger(config.logLevel);
  if (config.rbmEndpoint.kind === 'emulator' || !config.credentialsFile) {
    throw new Error('the SMS worker alone needs RBM_ENDPOINT and GOOGLE_APPLICATION_CREDENTIALS like the others (npm start runs everything against the emulator)');
  }
  const redis = await ensureRedis(config.redisUrl);
  const service = await createService(config, {
    redisUrl: redis.url,
    rbm: { baseUrl: config.rbmEndpoint.url, keyFile: config.credentialsFile },
    sms: smsSettingsFrom(config.sms, undefined),
    log,
  });
  service.startSms();
  log.info({ provider: config.sms.provider, ratePerSec: config.sms.ratePerSec }, 'SMS worker running');
  return { log, timeoutMs: config.shutdownTimeoutMs, steps: [['service', () => service.close()]] };
});
