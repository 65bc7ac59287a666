/**
 * Day partitions of messages and message_events (see migrations/001): a UTC
 * day D is `messages_pYYYYMMDD` and `message_events_pYYYYMMDD`, holding the
 * messages created in [D, D + 1 day) and their timelines. Created on demand,
 * before a write that needs them, in a short transaction of their own (a
 * CREATE … PARTITION OF locks the parent table: never inside a write), under
 * an advisory lock so two writers creating one day do not collide. Retention
 * drops whole days.
 */
import type { HistoryDb } from './db.ts';

export const DAY_MS = 86_400_000;
export const PARTITIONED_TABLES = ['messages', 'message_events'] as const;

/** The same lock key for creating and dropping: the two never interleave. */
const PARTITION_LOCK = 7_243_100_012;

/** The UTC midnight at or before `ms`. */
export function dayStart(ms: number): number {
  return Math.floor(ms / DAY_MS) * DAY_MS;
}

/** 'YYYY-MM-DD' of a UTC day. */
export function dayName(ms: number): string {
  return new Date(dayStart(ms)).toISOString().slice(0, 10);
}

function suffix(day: number): string {
  return dayName(day).replaceAll('-', '');
}

/** The day a partition's name says, or null when it is not one of ours. */
export function dayOfPartition(table: string, name: string): number | null {
  const m = new RegExp(`^${table}_p(\\d{4})(\\d{2})(\\d{2})$`).exec(name);
  return m ? Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])) : null;
}

export class Partitions {
  /** Days known to exist (created or seen by this process). */
  private readonly known = new Set<number>();

  constructor(private readonly db: HistoryDb) {}

  /** Makes sure the partitions of each day of `times` exist. */
  async ensure(times: Iterable<number>): Promise<void> {
    const missing = [...new Set([...times].map(dayStart))].filter((d) => !this.known.has(d)).sort((a, b) => a - b);
    if (missing.length === 0) return;
    await this.db.transaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock($1)', [PARTITION_LOCK]);
      for (const day of missing) {
        const from = new Date(day).toISOString();
        const to = new Date(day + DAY_MS).toISOString();
        for (const table of PARTITIONED_TABLES) {
          await tx.exec(
            `CREATE TABLE IF NOT EXISTS ${table}_p${suffix(day)} PARTITION OF ${table} FOR VALUES FROM ('${from}') TO ('${to}')`,
          );
        }
      }
    });
    for (const day of missing) this.known.add(day);
  }

  /** Forget what we know: a partition may have been dropped under us (by retention in another process). */
  forget(): void {
    this.known.clear();
  }

  /** The days that have a messages partition, oldest first. */
  async days(): Promise<number[]> {
    const rows = await this.db.query<{ name: string }>(
      "SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'messages'::regclass",
    );
    return rows
      .map((r) => dayOfPartition('messages', r.name))
      .filter((d): d is number => d !== null)
      .sort((a, b) => a - b);
  }

  /** Drops every day that ends at or before `cutoff` (both tables); returns those days. */
  async dropBefore(cutoff: number): Promise<number[]> {
    const dropped: number[] = [];
    await this.db.transaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock($1)', [PARTITION_LOCK]);
      const rows = await tx.query<{ name: string; parent: string }>(
        'SELECT c.relname AS name, p.relname AS parent FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid ' +
          "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname IN ('messages', 'message_events')",
      );
      for (const { name, parent } of rows) {
        const day = dayOfPartition(parent, name);
        if (day === null || day + DAY_MS > cutoff) continue;
        await tx.exec(`DROP TABLE IF EXISTS ${name}`);
        if (parent === 'messages') dropped.push(day);
      }
    });
    for (const day of dropped) this.known.delete(day);
    return dropped.sort((a, b) => a - b);
  }
}
