/**
 * The archiver alone: the history feed (every status change) to PostgreSQL,
 * DATABASE_URL (or the embedded PGlite under HISTORY_DATA_DIR, which only one
 * process may open). Run one or more beside the workers: they share the feed
 * as a consumer group, each change written once.
 */
import { composeAlone, runProcess } from './lifecycle.ts';

runProcess('rbm-dispatch archiver', async () => {
  const { config, log, service } = await composeAlone('the archiver');
  await service.startArchiver();
  log.info({ database: config.history.databaseUrl ? 'postgres' : `pglite:${config.history.dataDir}` }, 'archiver running');
  return { log, timeoutMs: config.shutdownTimeoutMs, steps: [['service', () => service.close()]] };
});
