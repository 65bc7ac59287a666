/**
 * The dispatch worker alone: takes jobs from the outbound queues of the
 * agents assigned to it (each agent by DISPATCH_AGENT_REPLICAS processes, at
 * most DISPATCH_MAX_AGENTS each) and sends them to RBM. Run several for more
 * agents and throughput; the limiter lives in Redis, so each agent's quota
 * holds across them.
 */
import { composeAlone, runProcess } from './lifecycle.ts';

runProcess('rbm-dispatch worker', async () => {
  const { config, log, service } = await composeAlone('the dispatch worker');
  service.startDispatch();
  // The agents it serves follow the directory and the other dispatch processes (src/agents/assignment.ts).
  log.info({ agents: service.agents.activeIds().length, maxAgents: config.dispatch.maxAgents || 'all' }, 'dispatch worker running');
  return { log, timeoutMs: config.shutdownTimeoutMs, steps: [['service', () => service.close()]] };
});
