/**
 * The inbound worker alone: webhook events (delivery, TTL, user messages)
 * and local deadlines. Run it beside the HTTP server that receives the
 * webhooks; it needs RBM too, to revoke messages at their deadline.
 */
import { composeAlone, runProcess } from './lifecycle.ts';

runProcess('rbm-dispatch inbound', async () => {
  const { config, log, service } = await composeAlone('the inbound worker');
  service.startInbound();
  log.info({ stream: service.inboundStreamKey }, 'inbound worker running');
  return { log, timeoutMs: config.shutdownTimeoutMs, steps: [['service', () => service.close()]] };
});
