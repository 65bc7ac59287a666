/**
 * The dispatch side of the service: one rate-limited worker per configured
 * agent, each running the send-message and send-event handlers.
 */
import type { Redis } from 'ioredis';
import { outboundQueueName } from '../../jobs/index.ts';
import { SEND_MESSAGE } from '../../jobs/send-message.ts';
import { SEND_EVENT } from '../../jobs/send-event.ts';
import { concurrencyFor, type Config } from '../config.ts';
import { createSendEventHandler } from '../handlers/send-event.ts';
import { createSendMessageHandler } from '../handlers/send-message.ts';
import type { Logger } from '../handlers/types.ts';
import type { RbmClient } from '../rbm/client.ts';
import type { StatusPort } from '../status/store.ts';
import { startAgentWorker, type AgentWorker } from './runner.ts';

export interface Dispatch {
  workers: readonly AgentWorker[];
  close(): Promise<void>;
}

export function startDispatch(deps: {
  config: Readonly<Config>;
  /** Blocking role: maxRetriesPerRequest null. */
  connection: Redis;
  rbm: Pick<RbmClient, 'createMessage' | 'createEvent'>;
  status: StatusPort;
  log: Logger;
}): Dispatch {
  const { config, log } = deps;
  const handlers = {
    [SEND_MESSAGE]: createSendMessageHandler({ rbm: deps.rbm, status: deps.status, log }),
    [SEND_EVENT]: createSendEventHandler({ rbm: deps.rbm, log, typingMaxAgeMs: config.dispatch.typingMaxAgeMs }),
  };
  const workers = config.agents.map((agent) =>
    startAgentWorker({
      queueName: outboundQueueName(agent.agentId),
      prefix: config.queuePrefix,
      connection: deps.connection,
      handlers,
      concurrency: concurrencyFor(config, agent),
      ratePerSec: agent.ratePerSec,
      limiterWindowMs: config.dispatch.limiterWindowMs,
      rateLimitPauseMs: config.dispatch.rateLimitPauseMs,
      keepCompleted: config.dispatch.keepCompleted,
      keepFailedMs: config.dispatch.keepFailedMs,
      log,
    }),
  );
  return {
    workers,
    async close() {
      await Promise.all(workers.map((w) => w.close()));
    },
  };
}
