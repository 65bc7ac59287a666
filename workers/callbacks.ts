/**
 * The status callback worker alone: turns each status change of a message
 * with a callback URL into a signed POST (Standard Webhooks), retried for up
 * to CALLBACK_RETRY_FOR_MS. Needs CALLBACK_SECRET, the same as the API's.
 */
import { composeAlone, runProcess } from './lifecycle.ts';

runProcess('rbm-dispatch callbacks', async () => {
  const { config, log, service } = await composeAlone('the callback worker');
  service.startCallbacks();
  log.info({ concurrency: config.callbacks.concurrency, retryForMs: config.callbacks.retryForMs }, 'callback worker running');
  return { log, timeoutMs: config.shutdownTimeoutMs, steps: [['service', () => service.close()]] };
});
