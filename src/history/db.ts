/**
 * One small interface over the two PostgreSQL clients history runs on, so its
 * SQL is written once: `postgres` (porsager/postgres) against a server when a
 * DATABASE_URL is given, the embedded `@electric-sql/pglite` (PostgreSQL in
 * WASM, one process) under a data directory otherwise.
 *
 * Why `postgres` over `pg`: pure JS with no native part, pipelining and
 * prepared statements by default, and the fastest Node client in its own and
 * third-party benchmarks; history's writes are a few large statements, its
 * reads short ones, both of which it serves well.
 *
 * Results are rows of plain JS values only if the SQL makes them so: the two
 * clients parse int8, numeric and timestamptz differently, so the store's
 * queries cast counts to int and times to ms (float8) themselves. Every
 * session runs in UTC, so a "day" is a UTC day in both.
 */
import { mkdirSync } from 'node:fs';
import type { ParameterOrJSON, Sql, TransactionSql } from 'postgres';
import type { Logger } from '../logger.ts';
import { maskUrlPassword } from '../mask.ts';
import { lockDataDir } from './dir-lock.ts';
import { HistoryError } from './errors.ts';

export type Row = Record<string, unknown>;

/** What a transaction can do: the same as the database, on one connection. */
export interface HistoryTx {
  /** One statement with $1… parameters (strings, numbers, booleans, null; arrays and JSON as text with a cast). */
  query<T extends Row = Row>(sql: string, params?: readonly unknown[]): Promise<T[]>;
  /** Several statements, no parameters (a migration file). */
  exec(sql: string): Promise<void>;
}

export interface HistoryDb extends HistoryTx {
  readonly kind: 'postgres' | 'pglite';
  /** Runs fn in one transaction: committed when it resolves, rolled back when it throws. */
  transaction<T>(fn: (tx: HistoryTx) => Promise<T>): Promise<T>;
  /** Idempotent. */
  close(): Promise<void>;
}

export interface DbOptions {
  /** A postgres:// URL: a server. Absent: the embedded PGlite. */
  url?: string | undefined;
  /** PGlite's data directory, or `memory://` (tests). Default `.data/history`. */
  dataDir?: string | undefined;
  /** Most connections to the server (default 10). */
  maxConnections?: number | undefined;
  log?: Pick<Logger, 'info' | 'warn'> | undefined;
}

export const DEFAULT_DATA_DIR = '.data/history';

export async function openDb(options: DbOptions): Promise<HistoryDb> {
  return options.url ? openPostgres(options.url, options) : openPglite(options.dataDir ?? DEFAULT_DATA_DIR, options);
}

/** A connection that cannot be made or was lost is HISTORY_UNAVAILABLE (try again); anything else is thrown as it came. */
function unavailable(err: unknown, where: string): unknown {
  const code = String((err as { code?: unknown } | null)?.code ?? '');
  // Node's socket errors, postgres.js's own connection codes, SQLSTATE classes 08 (connection), 53 (resources), 57P (shutdown).
  const lost = /^E[A-Z]+$|^CONNECT(ION)?_|^08|^53|^57P/.test(code);
  return lost ? new HistoryError('HISTORY_UNAVAILABLE', `the history database at ${where} does not answer (${code})`, { cause: err }) : err;
}

async function openPostgres(url: string, options: DbOptions): Promise<HistoryDb> {
  const { default: postgres } = await import('postgres');
  const where = maskUrlPassword(url);
  const sql = postgres(url, {
    max: options.maxConnections ?? 10,
    connect_timeout: 10,
    // CREATE … IF NOT EXISTS and friends: not worth a log line each.
    onnotice: () => {},
    // No JIT: a report over a month of one agent costs enough to trigger it, and compiling takes longer (~200 ms) than the query.
    connection: { TimeZone: 'UTC', application_name: 'rbm-dispatch-history', jit: 'off' },
  });
  const on = (s: Sql | TransactionSql): HistoryTx => ({
    async query<T extends Row>(text: string, params: readonly unknown[] = []) {
      try {
        // Static SQL texts only: prepared once per connection.
        return (await s.unsafe(text, params as ParameterOrJSON<never>[], { prepare: true })) as unknown as T[];
      } catch (err) {
        throw unavailable(err, where);
      }
    },
    async exec(text: string) {
      try {
        await s.unsafe(text); // no parameters: the simple protocol, which takes several statements
      } catch (err) {
        throw unavailable(err, where);
      }
    },
  });
  let closed = false;
  const db: HistoryDb = {
    kind: 'postgres',
    ...on(sql),
    async transaction<T>(fn: (tx: HistoryTx) => Promise<T>): Promise<T> {
      try {
        return (await sql.begin((tx) => fn(on(tx)))) as T;
      } catch (err) {
        throw unavailable(err, where);
      }
    },
    async close() {
      if (closed) return;
      closed = true;
      await sql.end({ timeout: 5 });
    },
  };
  await db.query('SELECT 1');
  options.log?.info({ url: where }, 'history: PostgreSQL');
  return db;
}

async function openPglite(dataDir: string, options: DbOptions): Promise<HistoryDb> {
  const { PGlite } = await import('@electric-sql/pglite');
  let release = () => {};
  if (!dataDir.includes('://')) {
    mkdirSync(dataDir, { recursive: true });
    release = lockDataDir(dataDir);
  }
  const pg = await PGlite.create(dataDir).catch((err: unknown) => {
    release();
    throw err;
  });
  await pg.exec("SET TIME ZONE 'UTC'");
  type Q = Pick<typeof pg, 'query' | 'exec'>;
  const on = (q: Q): HistoryTx => ({
    async query<T extends Row>(text: string, params: readonly unknown[] = []) {
      return (await q.query<T>(text, params as unknown[])).rows;
    },
    async exec(text: string) {
      await q.exec(text);
    },
  });
  let closed = false;
  options.log?.info({ dataDir }, 'history: embedded PostgreSQL (PGlite)');
  return {
    kind: 'pglite',
    ...on(pg),
    transaction: (fn) => pg.transaction((tx) => fn(on(tx))),
    async close() {
      if (closed) return;
      closed = true;
      await pg.close();
      release();
    },
  };
}
