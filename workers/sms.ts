/**
 * The SMS worker alone: sends the fallback SMS of messages RCS could not
 * deliver, at SMS_RATE_PER_SEC, through SMS_PROVIDER.
 */
import { smsSettingsFrom } from '../src/sms/from-config.ts';
import { composeAlone, runProcess } from './lifecycle.ts';

runProcess('rbm-dispatch sms', async () => {
  const { config, log, service } = await composeAlone('the SMS worker', (c) => smsSettingsFrom(c.sms, undefined));
  service.startSms();
  log.info({ provider: config.sms.provider, ratePerSec: config.sms.ratePerSec }, 'SMS worker running');
  return { log, timeoutMs: config.shutdownTimeoutMs, steps: [['service', () => service.close()]] };
});
