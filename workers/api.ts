/**
 * The HTTP server alone: the producer API, the RBM webhook, /metrics,
 * /healthz, /readyz and the admin UI, with no workers. Run the dispatch,
 * inbound, SMS and callback workers beside it (npm run dispatch|inbound|sms|callbacks).
 */
import { serviceApp } from './http.ts';
import { composeAlone, runProcess } from './lifecycle.ts';

runProcess('rbm-dispatch api', async () => {
  const { config, log, service } = await composeAlone('the API (its revoke calls RBM)');
  // The embedded archive is the archiver's process's own: the history routes need DATABASE_URL here.
  const app = serviceApp(service, config, log, {
    open: false,
    clientTokens: config.webhookClientTokens,
    history: config.history.databaseUrl !== undefined,
  });
  await app.listen({ port: config.port, host: config.host });
  log.info({ url: `http://${config.host}:${config.port}` }, 'API listening');
  return {
    log,
    timeoutMs: config.shutdownTimeoutMs,
    steps: [
      ['http', () => app.close()],
      ['service', () => service.close()],
    ],
  };
});
