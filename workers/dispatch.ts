/**
 * The dispatch worker alone: takes jobs from every configured agent's
 * outbound queue and sends them to RBM. Run several for more throughput;
 * the limiter lives in Redis, so each agent's quota holds across them.
 */
import { composeAlone, runProcess } from './lifecycle.ts';

runProcess('rbm-dispatch worker', async () => {
  const { config, log, service } = await composeAlone('the dispatch worker');
  service.startDispatch();
  log.info({ agents: config.agents }, 'dispatch worker running');
  return { log, timeoutMs: config.shutdownTimeoutMs, steps: [['service', () => service.close()]] };
});
