/**
 * The service's HTTP app as a process serves it (npm start, npm run api):
 * the producer API, the RBM webhook, metrics, health, the admin UI and the
 * status callback routes, all over one composed Service. `open` (emulator
 * mode) lets callers in without API keys and opens the admin UI; `history`
 * adds the archive's routes (reads, reports, erase).
 */
import type { FastifyInstance } from 'fastify';
import { buildApi } from '../src/api/app.ts';
import { createMetrics } from '../src/api/metrics.ts';
import type { Config } from '../src/config.ts';
import type { Logger } from '../src/logger.ts';
import type { Service } from '../src/service.ts';

export function serviceApp(
  service: Service,
  config: Readonly<Config>,
  log: Logger,
  opts: {
    open: boolean;
    clientTokens: Readonly<Record<string, string>>;
    /**
     * Serve the history routes (GET by ID from the archive, by number, reports, erase): where this process
     * can reach the archive its archiver writes: DATABASE_URL, or the embedded one when the archiver runs here.
     */
    history: boolean;
  },
): FastifyInstance {
  const metrics = createMetrics({ read: () => service.metricsSource.read(), webhookCounters: service.webhookCounters });
  return buildApi({
    producer: service.producer,
    revoke: service.revoke,
    apiKeys: config.apiKeys,
    openWithoutKeys: opts.open,
    logger: log,
    timeouts: config.http,
    webhook: {
      clientTokens: opts.clientTokens,
      directoryTokens: service.agents.clientTokens(),
      intake: service.intake,
      bodyLimitBytes: config.inbound.bodyLimitBytes,
      counters: service.webhookCounters,
      log,
      observeLag: metrics.observeWebhookLag,
    },
    metrics,
    admin: { queues: () => service.metricsSource.queues, adminKey: config.adminApiKey, open: opts.open },
    readiness: service.readiness(),
    agents: {
      directory: service.agents.directory,
      refresh: () => service.agents.refreshNow(),
      adminKey: config.adminApiKey,
      open: opts.open,
    },
    failures: { list: service.failures, redrive: service.redrive },
    callbacks: service.callbacks,
    ...(opts.history
      ? {
          history: {
            store: () => service.history(),
            phoneKey: () => service.historyPhoneKey(),
            agentIds: () => service.agents.knownIds(),
          },
          subscribers: { erase: (e164: string) => service.eraseSubscriber(e164), adminKey: config.adminApiKey, open: opts.open },
        }
      : {}),
  });
}
