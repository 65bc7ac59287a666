/**
 * History: settled messages in PostgreSQL. openHistory() connects (a server
 * when `url` is given, the embedded PGlite under `dataDir` otherwise),
 * applies the migrations, makes today's and tomorrow's partitions and hands
 * back the store. The config values (DATABASE_URL, HISTORY_STORE_TEXT,
 * HISTORY_RETENTION_DAYS, HISTORY_PHONE_KEY for phoneHash) come in as
 * parameters: this module reads no environment.
 */
import type { Logger } from '../logger.ts';
import { openDb } from './db.ts';
import { migrate } from './migrate.ts';
import { DAY_MS, Partitions } from './partitions.ts';
import { HistoryStore } from './store.ts';

export { DEFAULT_DATA_DIR, type HistoryDb, type HistoryTx } from './db.ts';
export { HistoryError } from './errors.ts';
export { phoneHash } from './phone-hash.ts';
export { HistoryStore, MAX_BY_PHONE, MAX_TIMELINE } from './store.ts';
export { MAX_REPORT_GROUPS, type ExportRow } from './report.ts';
export * from './types.ts';

export interface OpenHistoryOptions {
  /** DATABASE_URL: PostgreSQL. Absent: embedded PGlite. */
  url?: string | undefined;
  /** PGlite's directory (default `.data/history`), or `memory://`. */
  dataDir?: string | undefined;
  log: Pick<Logger, 'info' | 'warn'>;
  /** HISTORY_STORE_TEXT. */
  storeText?: boolean | undefined;
  /** HISTORY_RETENTION_DAYS: writes of messages older than this are dropped (enforceRetention drops the stored ones). */
  retentionDays?: number | undefined;
  /** Most connections to the server (default 10). */
  maxConnections?: number | undefined;
  now?: () => number;
}

export async function openHistory(options: OpenHistoryOptions): Promise<HistoryStore> {
  const db = await openDb(options);
  try {
    const { applied } = await migrate(db);
    if (applied.length > 0) options.log.info({ applied }, 'history: migrations applied');
    const partitions = new Partitions(db);
    const now = (options.now ?? Date.now)();
    await partitions.ensure([now, now + DAY_MS]);
    return new HistoryStore(db, partitions, {
      storeText: options.storeText ?? false,
      retentionDays: options.retentionDays,
      ...(options.now ? { now: options.now } : {}),
    });
  } catch (err) {
    await db.close();
    throw err;
  }
}
