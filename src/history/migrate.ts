/**
 * Plain numbered SQL files (migrations/NNN_name.sql), applied at open in
 * order, each once, each in its own transaction, recorded in
 * schema_migrations with a checksum of its text. Each transaction first takes
 * a transaction-scoped advisory lock, so two processes starting together
 * queue up: the second finds the first's migration recorded and skips it.
 * (PGlite is one process; the lock costs nothing there.)
 *
 * A migration is never edited once applied: a changed checksum, or a
 * recorded version this code does not have (newer code migrated the
 * database), stops the open with HISTORY_SCHEMA.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import type { HistoryDb } from './db.ts';
import { HistoryError } from './errors.ts';

export interface Migration {
  version: number;
  name: string;
  sql: string;
  checksum: string;
}

/** Any constant bigint: the key of the advisory lock every migrating process takes. */
const MIGRATION_LOCK = 7_243_100_011;

const MIGRATIONS_DIR = new URL('./migrations/', import.meta.url);

/** The migration files, in order; two files with one number are a mistake caught here. */
export function loadMigrations(dir: URL = MIGRATIONS_DIR): Migration[] {
  const migrations = readdirSync(dir)
    .filter((f) => f.endsWith('.sql'))
    .map((file) => {
      const m = /^(\d+)_([a-z0-9_]+)\.sql$/.exec(file);
      if (!m) throw new HistoryError('HISTORY_SCHEMA', `migration file ${file}: expected NNN_name.sql (lower case, digits, _)`);
      const sql = readFileSync(new URL(file, dir), 'utf8');
      return { version: Number(m[1]), name: m[2]!, sql, checksum: createHash('sha256').update(sql).digest('hex') };
    })
    .sort((a, b) => a.version - b.version);
  migrations.forEach((m, i) => {
    if (i > 0 && migrations[i - 1]!.version === m.version) {
      throw new HistoryError('HISTORY_SCHEMA', `two migrations numbered ${m.version}: ${migrations[i - 1]!.name} and ${m.name}`);
    }
  });
  return migrations;
}

export interface MigrateResult {
  /** Versions this call applied (empty when the schema was up to date). */
  applied: number[];
}

export async function migrate(db: HistoryDb, migrations: readonly Migration[] = loadMigrations()): Promise<MigrateResult> {
  const applied: number[] = [];
  // First pass under the lock: the bookkeeping table, and a check of what is recorded against what we have.
  await db.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
    await tx.exec(
      'CREATE TABLE IF NOT EXISTS schema_migrations (version int PRIMARY KEY, name text NOT NULL, ' +
        'checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())',
    );
    const recorded = await tx.query<{ version: number; name: string; checksum: string }>(
      'SELECT version, name, checksum FROM schema_migrations ORDER BY version',
    );
    const known = new Map(migrations.map((m) => [m.version, m]));
    for (const r of recorded) {
      const m = known.get(r.version);
      if (!m) {
        throw new HistoryError(
          'HISTORY_SCHEMA',
          `the history database has migration ${r.version} (${r.name}), which this code does not know: it was migrated by newer code`,
        );
      }
      if (m.checksum !== r.checksum) {
        throw new HistoryError('HISTORY_SCHEMA', `migration ${r.version} (${r.name}) was edited after it was applied (checksum differs)`);
      }
    }
  });
  for (const m of migrations) {
    await db.transaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
      const done = await tx.query('SELECT 1 FROM schema_migrations WHERE version = $1', [m.version]);
      if (done.length > 0) return;
      try {
        await tx.exec(m.sql);
      } catch (err) {
        if (err instanceof HistoryError) throw err; // the database went away: not the migration's fault
        throw new HistoryError('HISTORY_SCHEMA', `migration ${m.version} (${m.name}) failed: ${(err as Error).message}`, { cause: err });
      }
      await tx.query('INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)', [m.version, m.name, m.checksum]);
      applied.push(m.version);
    });
  }
  return { applied };
}
