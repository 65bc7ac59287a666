/**
 * The history column of the chaos suite: each scenario's archive (a fresh
 * database on the local PostgreSQL, written by the archiver process from the
 * history feed) against the timelines Redis holds, once the feed is drained.
 *
 *   CHAOS_PG_URL / HISTORY_TEST_PG_URL   the admin URL (default postgres://postgres@127.0.0.1:5432/test):
 *                                        a database is created from it per scenario and dropped after
 *   CHAOS_HISTORY=off                    no archiver and no history column (a machine without PostgreSQL)
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import postgres from 'postgres';
import { historyFeedKey } from '../../src/status/store.ts';
import { AGENT, PREFIX, type Cluster } from './cluster.ts';

export const ADMIN_PG_URL = process.env.CHAOS_PG_URL ?? process.env.HISTORY_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
export const HISTORY_ON = (process.env.CHAOS_HISTORY ?? 'on') !== 'off';
/** The history feed's key (a function: cluster.ts and this module import each other). */
export const feedKey = (): string => historyFeedKey(PREFIX);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export interface ScenarioDb {
  url: string;
  name: string;
  drop(): Promise<void>;
}

/** A fresh database for one scenario; drop() removes it (connections and all). */
export async function createDatabase(scenario: string): Promise<ScenarioDb> {
  const name = `rbm_chaos_${scenario
    .replace(/[^a-z0-9]+/gi, '_')
    .toLowerCase()
    .slice(0, 30)}_${randomBytes(4).toString('hex')}`;
  const admin = postgres(ADMIN_PG_URL, { max: 1, onnotice: () => {}, connect_timeout: 10 });
  try {
    await admin.unsafe(`CREATE DATABASE ${name}`);
  } catch (err) {
    await admin.end({ timeout: 1 });
    throw new Error(
      `chaos history: cannot create a database at ${ADMIN_PG_URL} (CHAOS_HISTORY=off runs without): ${(err as Error).message}`,
    );
  }
  const url = new URL(ADMIN_PG_URL);
  url.pathname = `/${name}`;
  let dropped = false;
  return {
    url: url.toString(),
    name,
    async drop() {
      if (dropped) return;
      dropped = true;
      try {
        await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await admin.end({ timeout: 5 });
      }
    },
  };
}

interface Entry {
  state: string;
  at: number;
  event?: string | null;
  detail?: string | null;
  error?: { code?: string; message?: string } | null;
}

/** One timeline entry as a comparable string: every field the archive keeps. */
const keyOf = (e: Entry): string =>
  JSON.stringify([e.state, Number(e.at), e.event || '', e.detail || '', e.error?.code || '', e.error?.message || '']);

export interface HistoryVerdict {
  /** Messages compared: the accepted ones, every status record of the agent and every message in the archive. */
  messages: number;
  /** Messages whose archive misses an entry of their Redis timeline. */
  lost: number;
  /** Messages whose archive holds an entry their Redis timeline does not (or holds one more often). */
  twice: number;
  /**
   * The archived final state (messages.state) ≠ Redis's state. The archive folds a message's state from its
   * entries by (time, rank), Redis keeps the order the moves were applied in: the two part when a move applied
   * later carries an earlier time (its process took `now` before another's move landed).
   */
  stateDiffers: number;
  /** Messages whose Redis timeline holds one entry twice, identical to the ms (a replayed transition): the archive,
   * idempotent on (agent, message, state, at), keeps it once, so these count in `lost` too. */
  redisDuplicates: number;
  /** Same entries, another order (the archive orders by time, Redis by arrival): a note, not a fault. */
  orderDiffers: number;
  /** Messages Redis has no record of while the archive has entries (in `twice` too). */
  archiveOnly: number;
  entriesRedis: number;
  entriesArchive: number;
  /** ms from the settle until the feed was empty; null when it never was within the bound. */
  drainedInMs: number | null;
  feedLeft: number;
  /** Comparisons made (a mismatch is looked at again, 2 s later, up to 5 times: a late webhook adds an entry meanwhile). */
  looks: number;
  examples: Record<string, string[]>;
}

async function feedDrained(c: Cluster, timeoutMs: number): Promise<{ ms: number | null; left: number }> {
  const t0 = Date.now();
  let left = -1;
  for (;;) {
    try {
      left = await c.db.xlen(feedKey());
      if (left === 0) return { ms: Date.now() - t0, left };
    } catch {
      // Redis away for a moment
    }
    if (Date.now() - t0 > timeoutMs) return { ms: null, left };
    await sleep(200);
  }
}

/** Every status record's id of the agent (SCAN), and each id's state and timeline. */
async function redisTimelines(c: Cluster, ids: Set<string>): Promise<Map<string, { state: string; timeline: Entry[] }>> {
  const prefix = `${PREFIX}:status:${AGENT}:`;
  let cursor = '0';
  do {
    const [next, keys] = await c.db.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    cursor = next;
    for (const k of keys) {
      const id = k.slice(prefix.length);
      if (UUID.test(id)) ids.add(id.toLowerCase());
    }
  } while (cursor !== '0');
  const out = new Map<string, { state: string; timeline: Entry[] }>();
  const list = [...ids];
  for (let i = 0; i < list.length; i += 2000) {
    const page = list.slice(i, i + 2000);
    const p = c.db.pipeline();
    for (const id of page) p.hmget(`${prefix}${id}`, 'state', 'timeline', 'createdAt');
    const res = (await p.exec()) ?? [];
    page.forEach((id, j) => {
      const [err, h] = res[j] ?? [];
      if (err) throw err;
      const [state, timeline, createdAt] = (h ?? []) as Array<string | null>;
      if (state === null || state === undefined) return; // no record
      // As StatusStore.get: a record that never moved holds no timeline, only its QUEUED at createdAt.
      const entries = timeline ? (JSON.parse(timeline) as Entry[]) : [{ state: 'QUEUED', at: Number(createdAt) }];
      out.set(id, { state, timeline: entries });
    });
  }
  return out;
}

async function archived(sql: postgres.Sql): Promise<{ events: Map<string, Entry[]>; states: Map<string, string> }> {
  const events = new Map<string, Entry[]>();
  const rows = await sql.unsafe<
    Array<{
      id: string;
      state: string;
      at: number;
      event: string | null;
      detail: string | null;
      code: string | null;
      message: string | null;
    }>
  >(
    `SELECT message_id::text AS id, state, (extract(epoch from at) * 1000)::float8 AS at, event, detail,
            error_code AS code, error_message AS message
     FROM message_events WHERE agent_id = $1 ORDER BY message_id, at, history_state_rank(state)`,
    [AGENT],
  );
  for (const r of rows) {
    const list = events.get(r.id) ?? [];
    list.push({
      state: r.state,
      at: r.at,
      event: r.event,
      detail: r.detail,
      error: r.code ? { code: r.code, message: r.message ?? '' } : null,
    });
    events.set(r.id, list);
  }
  const states = new Map<string, string>();
  for (const r of await sql.unsafe<Array<{ id: string; state: string }>>(
    'SELECT message_id::text AS id, state FROM messages WHERE agent_id = $1',
    [AGENT],
  )) {
    states.set(r.id, r.state);
  }
  return { events, states };
}

function compare(
  redis: Map<string, { state: string; timeline: Entry[] }>,
  arch: { events: Map<string, Entry[]>; states: Map<string, string> },
  ids: Set<string>,
): Omit<HistoryVerdict, 'drainedInMs' | 'feedLeft' | 'looks'> {
  const v: Omit<HistoryVerdict, 'drainedInMs' | 'feedLeft' | 'looks'> = {
    messages: 0,
    lost: 0,
    twice: 0,
    stateDiffers: 0,
    redisDuplicates: 0,
    orderDiffers: 0,
    archiveOnly: 0,
    entriesRedis: 0,
    entriesArchive: 0,
    examples: {},
  };
  const ex = (col: string, text: string): void => {
    v.examples[col] ??= [];
    if (v.examples[col].length < 5) v.examples[col].push(text);
  };
  const all = new Set([...ids, ...arch.events.keys()]);
  const show = (list: Entry[]): string => list.map((e) => `${e.state}@${e.at}${e.event ? `(${e.event})` : ''}`).join(' ');
  for (const id of all) {
    v.messages += 1;
    const r = redis.get(id);
    // A record still QUEUED has not moved: the archive derives its QUEUED on its first move out, so it holds nothing yet.
    const want = r && !(r.state === 'QUEUED' && r.timeline.length === 1) ? r.timeline : [];
    const got = arch.events.get(id) ?? [];
    v.entriesRedis += want.length;
    v.entriesArchive += got.length;
    const count = new Map<string, number>();
    for (const e of want) count.set(keyOf(e), (count.get(keyOf(e)) ?? 0) + 1);
    for (const e of got) count.set(keyOf(e), (count.get(keyOf(e)) ?? 0) - 1);
    const missing = [...count.values()].some((n) => n > 0);
    const dup = new Set(want.map(keyOf)).size < want.length;
    if (dup) v.redisDuplicates += 1;
    const extra = [...count.values()].some((n) => n < 0);
    if (missing) {
      v.lost += 1;
      ex('archLost', `${id}${dup ? ' (Redis holds an entry twice, identical)' : ''} redis: ${show(want)} | archive: ${show(got)}`);
    }
    if (extra) {
      v.twice += 1;
      ex('archTwice', `${id} redis: ${r ? show(want) : '(no record)'} | archive: ${show(got)}`);
    }
    if (!r && got.length > 0) v.archiveOnly += 1;
    if (!missing && !extra && want.map(keyOf).join() !== got.map(keyOf).join()) {
      v.orderDiffers += 1;
      ex('archOrder', `${id} redis: ${show(want)} | archive: ${show(got)}`);
    }
    const archState = arch.states.get(id);
    if (r && want.length > 0 && archState !== r.state) {
      v.stateDiffers += 1;
      ex('archState', `${id} redis ${r.state}, archive ${archState ?? '(no row)'}`);
    }
  }
  return v;
}

/**
 * After a scenario settled: waits (bounded) until the history feed is empty,
 * then compares every message's archived timeline with its Redis timeline.
 * A mismatch is looked at again (the feed drained again first) up to 5 times,
 * 2 s apart: a late webhook may add an entry between the two reads; a real
 * loss or duplicate stays.
 */
export async function historyVerdict(c: Cluster, accepted: readonly string[], drainMs = 120_000): Promise<HistoryVerdict> {
  if (!c.history) throw new Error('this world runs no archiver');
  const sql = postgres(c.history.url, { max: 1, onnotice: () => {}, connect_timeout: 10 });
  try {
    const t0 = Date.now();
    let drained = await feedDrained(c, drainMs);
    const drainedInMs = drained.ms;
    let v: ReturnType<typeof compare> | undefined;
    let looks = 0;
    while (looks < 5) {
      looks += 1;
      const ids = new Set(accepted.map((id) => id.toLowerCase()));
      const redis = await redisTimelines(c, ids);
      drained = await feedDrained(c, Math.max(5_000, drainMs - (Date.now() - t0)));
      v = compare(redis, await archived(sql), ids);
      if ((v.lost === 0 && v.twice === 0 && v.stateDiffers === 0) || drained.ms === null) break;
      await sleep(2000);
    }
    return { ...v!, drainedInMs, feedLeft: drained.left, looks };
  } finally {
    await sql.end({ timeout: 5 });
  }
}
