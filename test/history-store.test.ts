/**
 * The history store (src/history/) against real databases, the same cases
 * for both: a fresh database on the local PostgreSQL (created here, dropped
 * after; HISTORY_TEST_PG_URL names the server's admin database, default
 * postgres://postgres@127.0.0.1:5432/test) and the embedded PGlite in memory.
 * One store per backend (PGlite takes seconds to start); each case uses its
 * own agents and numbers, so cases do not see each other's rows.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PayloadError } from '../src/errors.ts';
import { openDb } from '../src/history/db.ts';
import { STATE_RANK } from '../src/history/fold.ts';
import { openHistory, phoneHash, type HistoryChange, type HistoryStore } from '../src/history/index.ts';
import { loadMigrations, migrate } from '../src/history/migrate.ts';
import { DAY_MS, Partitions } from '../src/history/partitions.ts';
import { storedPhoneKey } from '../src/history/settings.ts';
import { HistoryStore as Store } from '../src/history/store.ts';
import type { MessageState } from '../src/status/states.ts';

const ADMIN_URL = process.env.HISTORY_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const log = { info: () => {}, warn: () => {} };
/** A fixed clock: noon UTC, 15 June 2025. */
const NOW = Date.UTC(2025, 5, 15, 12);
const KEY = 'test-phone-key';

async function createDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `rbm_history_test_${randomBytes(6).toString('hex')}`;
  const admin = postgres(ADMIN_URL, { max: 1, onnotice: () => {} });
  await admin.unsafe(`CREATE DATABASE ${name}`);
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.end();
    },
  };
}

/** A message's changes through the given states, `step` ms apart from `createdAt`, with its facts on each. */
function lifecycle(
  states: MessageState[],
  fields: Partial<HistoryChange> & { agentId: string; createdAt: number; to?: string },
  step = 100,
): HistoryChange[] {
  const messageId = fields.messageId ?? randomUUID();
  const to = fields.to ?? '+14155550100';
  const { to: _to, ...rest } = fields;
  return states.map((state, i) => ({
    toMasked: `${to.slice(0, 5)}***${to.slice(-4)}`,
    toHash: phoneHash(KEY, to),
    trafficType: 'TRANSACTION',
    ...rest,
    messageId,
    state,
    previousState: i === 0 ? null : states[i - 1]!,
    at: fields.createdAt + i * step,
  }));
}

const backends = [
  { name: 'PostgreSQL', server: true },
  { name: 'PGlite', server: false },
] as const;

describe.each(backends)('history store on $name', ({ server }) => {
  let store: HistoryStore;
  let database: Awaited<ReturnType<typeof createDatabase>> | undefined;
  let url: string | undefined;

  beforeAll(async () => {
    if (server) {
      database = await createDatabase();
      url = database.url;
    }
    store = await openHistory({ url, dataDir: 'memory://', log, retentionDays: 400, now: () => NOW });
  });

  afterAll(async () => {
    await store?.close();
    await database?.drop();
  });

  it('applies each migration once: a second run is a no-op, and an edited one stops the open', async () => {
    const migrations = loadMigrations();
    expect(migrations.map((m) => m.version)).toEqual([1, 2, 3]);
    const recorded = await store.db.query<{ version: number; checksum: string }>('SELECT version, checksum FROM schema_migrations');
    expect(recorded).toEqual(migrations.map((m) => ({ version: m.version, checksum: m.checksum })));
    expect(await migrate(store.db)).toEqual({ applied: [] });
    const edited = migrations.map((m) => ({ ...m, checksum: 'x' }));
    await expect(migrate(store.db, edited)).rejects.toMatchObject({ code: 'HISTORY_SCHEMA' });
    await expect(migrate(store.db, [])).rejects.toMatchObject({ code: 'HISTORY_SCHEMA', message: expect.stringContaining('newer code') });
  });

  it('keeps one phone key for every process: made by the first to ask, the same after', async () => {
    const keys = await Promise.all([storedPhoneKey(store.db), storedPhoneKey(store.db)]);
    expect(keys[0]).toMatch(/^[A-Za-z0-9+/]{43}=$/);
    expect(keys[1]).toBe(keys[0]);
    expect(await storedPhoneKey(store.db)).toBe(keys[0]);
  });

  it('ranks same-time changes in SQL as fold.ts does', async () => {
    const rows = await store.db.query<{ state: MessageState; rank: number }>(
      'SELECT s AS state, history_state_rank(s) AS rank FROM jsonb_array_elements_text($1::text::jsonb) AS s',
      [JSON.stringify(Object.keys(STATE_RANK))],
    );
    expect(Object.fromEntries(rows.map((r) => [r.state, r.rank]))).toEqual(STATE_RANK);
  });

  it('writes a batch twice (an archiver retrying it) and adds nothing the second time', async () => {
    const agentId = 'idem';
    const batch = [
      ...lifecycle(['QUEUED', 'SENDING', 'SENT', 'DELIVERED', 'READ'], { agentId, createdAt: NOW - 3000 }),
      ...lifecycle(['QUEUED', 'SENDING', 'FAILED'], { agentId, createdAt: NOW - 2000, to: '+14155550101' }).map((c) =>
        c.state === 'FAILED' ? { ...c, errorCode: 'RBM_AUTH', errorMessage: 'refused' } : c,
      ),
    ];
    const count = async () =>
      (
        await store.db.query<{ m: number; e: number; x: string }>(
          "SELECT (SELECT count(*) FROM messages WHERE agent_id = 'idem')::int AS m, " +
            "(SELECT count(*) FROM message_events WHERE agent_id = 'idem')::int AS e, " +
            "(SELECT string_agg(xmin::text, ',' ORDER BY message_id) FROM messages WHERE agent_id = 'idem') AS x",
        )
      )[0]!;
    // Killed mid-batch: only the first three changes made it; then the whole batch again, then again.
    expect(await store.write(batch.slice(0, 3))).toEqual({ events: 3, messages: 1, tooOld: 0 });
    expect(await store.write(batch)).toEqual({ events: 5, messages: 2, tooOld: 0 });
    const first = await count();
    expect(first).toMatchObject({ m: 2, e: 8 });
    expect(await store.write(batch)).toEqual({ events: 0, messages: 0, tooOld: 0 });
    expect(await count()).toEqual(first); // xmin unchanged: the rows were not even rewritten

    const read = await store.message({ agentId, messageId: batch[0]!.messageId });
    expect(read).toMatchObject({ state: 'READ', channel: 'rcs', to: '+1415***0100', trafficType: 'TRANSACTION', createdAt: NOW - 3000 });
    expect(read!.updatedAt).toBe(NOW - 3000 + 400);
    expect(read!.timeline.map((e) => [e.state, e.at])).toEqual(batch.slice(0, 5).map((c) => [c.state, c.at]));
    const failed = await store.message({ agentId, messageId: batch[5]!.messageId });
    expect(failed).toMatchObject({ state: 'FAILED', lastError: { code: 'RBM_AUTH', message: 'refused' } });
    expect(failed!.timeline.at(-1)).toEqual({ state: 'FAILED', at: NOW - 2000 + 200, error: { code: 'RBM_AUTH', message: 'refused' } });
  });

  it('converges whatever order changes arrive in: state follows the latest change, never an older one', async () => {
    const agentId = 'order';
    const [queued, sending, sent, delivered, read] = lifecycle(['QUEUED', 'SENDING', 'SENT', 'DELIVERED', 'READ'], {
      agentId,
      createdAt: NOW - 5000,
    });
    await store.write([read!]);
    await store.write([delivered!, queued!]);
    await store.write([sending!, sent!]);
    const m = await store.message({ agentId, messageId: queued!.messageId });
    expect(m!.state).toBe('READ');
    expect(m!.updatedAt).toBe(read!.at);
    expect(m!.timeline.map((e) => e.state)).toEqual(['QUEUED', 'SENDING', 'SENT', 'DELIVERED', 'READ']);
    const [row] = await store.db.query<{ sent: number; delivered: number; read: number }>(
      'SELECT (extract(epoch from sent_at) * 1000)::float8 AS sent, (extract(epoch from delivered_at) * 1000)::float8 AS delivered, ' +
        '(extract(epoch from read_at) * 1000)::float8 AS read FROM messages WHERE agent_id = $1',
      [agentId],
    );
    expect(row).toEqual({ sent: sent!.at, delivered: delivered!.at, read: read!.at });

    // Two changes at one ms (a parked DELIVERED applied in the step that settles SENT), stored in two writes, newest first.
    const [, , tieSent, tieDelivered] = lifecycle(['QUEUED', 'SENDING', 'SENT', 'DELIVERED'], { agentId, createdAt: NOW - 4000 });
    tieDelivered!.at = tieSent!.at;
    await store.write([tieDelivered!]);
    await store.write([tieSent!]);
    expect((await store.message({ agentId, messageId: tieSent!.messageId }))!.state).toBe('DELIVERED');
  });

  it('takes a late DELIVERED after the SMS fallback: the message counts as delivered and as fallen back', async () => {
    const agentId = 'late';
    const changes = lifecycle(['QUEUED', 'SENDING', 'SENT', 'FALLBACK_QUEUED', 'FALLBACK_SENDING', 'FALLBACK_SENT'], {
      agentId,
      createdAt: NOW - 60_000,
    }).map((c) => (c.state === 'FALLBACK_QUEUED' ? { ...c, event: 'TTL_EXPIRATION_REVOKED' } : c));
    await store.write(changes);
    const before = await store.message({ agentId, messageId: changes[0]!.messageId });
    expect(before).toMatchObject({ state: 'FALLBACK_SENT', channel: 'sms', fallbackReason: 'TTL_EXPIRATION_REVOKED' });
    const late = {
      ...changes[0]!,
      state: 'DELIVERED' as const,
      previousState: 'FALLBACK_SENT' as const,
      at: NOW - 10_000,
      event: 'DELIVERED',
    };
    expect(await store.write([late])).toEqual({ events: 1, messages: 1, tooOld: 0 });
    expect(await store.write([late])).toEqual({ events: 0, messages: 0, tooOld: 0 });
    const after = await store.message({ agentId, messageId: late.messageId });
    expect(after).toMatchObject({ state: 'DELIVERED', channel: 'sms', fallbackReason: 'TTL_EXPIRATION_REVOKED', updatedAt: late.at });
    expect(after!.timeline).toHaveLength(7);
    const report = await store.report({ from: NOW - DAY_MS, to: NOW, agentIds: [agentId], groupBy: 'agent' });
    expect(report.rows).toEqual([
      expect.objectContaining({ key: agentId, total: 1, delivered: 1, fellBack: 1, failed: 0, timeToDeliveredP50Ms: 50_000 - 200 }),
    ]);
  });

  it("lists a number's messages newest first, only the given agents', a page at a time", async () => {
    const x = '+14155550200';
    const y = '+14155550201';
    const t = NOW - 10 * DAY_MS;
    const mine = [0, 1, 2, 3, 4].map((i) =>
      lifecycle(['QUEUED', 'SENT'], { agentId: 'phone-a', createdAt: t + Math.min(i, 3) * 1000, to: x }),
    );
    const other = lifecycle(['QUEUED'], { agentId: 'phone-b', createdAt: t + 500, to: x });
    const otherNumber = lifecycle(['QUEUED'], { agentId: 'phone-a', createdAt: t + 600, to: y });
    await store.write([...mine.flat(), ...other, ...otherNumber]);

    const seen: string[] = [];
    let before: string | undefined;
    for (let page = 0; page < 5; page++) {
      const r = await store.byPhone(phoneHash(KEY, x), ['phone-a'], { limit: 2, ...(before ? { before } : {}) });
      seen.push(...r.messages.map((m) => m.messageId));
      for (const m of r.messages) expect(m).toMatchObject({ agentId: 'phone-a', to: '+1415***0200', state: 'SENT' });
      if (!r.next) break;
      before = r.next;
    }
    // Two share a createdAt (t + 3000): the cursor still lists each once.
    expect(seen).toHaveLength(5);
    expect(new Set(seen)).toEqual(new Set(mine.map((m) => m[0]!.messageId)));
    const all = await store.byPhone(phoneHash(KEY, x), ['phone-a'], { limit: 100 });
    expect(all.messages.map((m) => m.createdAt)).toEqual([t + 3000, t + 3000, t + 2000, t + 1000, t]);
    expect(all.next).toBeUndefined();
    const both = await store.byPhone(phoneHash(KEY, x), ['phone-a', 'phone-b'], { limit: 100 });
    expect(both.messages.map((m) => m.agentId).sort()).toEqual(['phone-a', 'phone-a', 'phone-a', 'phone-a', 'phone-a', 'phone-b']);
    await expect(store.byPhone(phoneHash(KEY, x), ['phone-a'], { limit: 101 })).rejects.toBeInstanceOf(PayloadError);
    await expect(store.byPhone(phoneHash(KEY, x), ['phone-a'], { before: 'junk' })).rejects.toBeInstanceOf(PayloadError);
  });

  it('reports counts, rates and time to DELIVERED as computed by hand', async () => {
    const agentId = 'rep';
    const day1 = Date.UTC(2025, 5, 1);
    const day2 = Date.UTC(2025, 5, 2);
    /** [created, states, sent→delivered ms, trafficType, batch] */
    const specs: Array<[number, MessageState[], number, string, string | undefined]> = [
      [day1 + 1000, ['QUEUED', 'SENT', 'DELIVERED'], 100, 'TRANSACTION', 'b1'],
      [day1 + 2000, ['QUEUED', 'SENT', 'DELIVERED', 'READ'], 200, 'TRANSACTION', 'b1'],
      [day1 + 3000, ['QUEUED', 'SENT', 'DELIVERED', 'READ'], 300, 'PROMOTION', 'b1'],
      [day1 + 4000, ['QUEUED', 'SENT', 'DELIVERED'], 400, 'PROMOTION', undefined],
      [day1 + 5000, ['QUEUED', 'SENT', 'FALLBACK_QUEUED', 'FALLBACK_SENDING', 'FALLBACK_SENT'], 0, 'PROMOTION', undefined],
      [day1 + 6000, ['QUEUED', 'SENDING', 'FAILED'], 0, 'PROMOTION', undefined],
      [day2 + 1000, ['QUEUED', 'SENT', 'DELIVERED'], 1000, 'TRANSACTION', 'b2'],
      [day2 + 2000, ['QUEUED', 'SENT', 'FALLBACK_QUEUED', 'FALLBACK_SENDING', 'FALLBACK_FAILED'], 0, 'TRANSACTION', 'b2'],
      // Outside the range (the day after) and of another agent: in no row.
      [day2 + DAY_MS, ['QUEUED', 'SENT', 'DELIVERED'], 5, 'TRANSACTION', 'b2'],
    ];
    const changes = specs.flatMap(([createdAt, states, ttd, trafficType, batchId]) =>
      lifecycle(states, { agentId, createdAt, trafficType, ...(batchId ? { batchId } : {}) }, 50).map((c) => {
        const sent = createdAt + states.indexOf('SENT') * 50;
        if (c.state === 'DELIVERED') return { ...c, at: sent + ttd };
        if (c.state === 'READ') return { ...c, at: sent + ttd + 10 };
        if (c.state === 'FALLBACK_QUEUED') return { ...c, event: 'TTL_EXPIRATION_REVOKED' };
        return c;
      }),
    );
    await store.write(changes);
    await store.write(lifecycle(['QUEUED', 'SENT', 'DELIVERED'], { agentId: 'rep-other', createdAt: day1 + 500 }));
    const q = { from: day1, to: day2 + DAY_MS, agentIds: [agentId] };

    const byDay = await store.report({ ...q, groupBy: 'day' });
    expect(byDay.truncated).toBe(false);
    expect(byDay.rows).toEqual([
      {
        key: '2025-06-01',
        total: 6,
        delivered: 4,
        read: 2,
        fellBack: 1,
        failed: 1,
        deliveredRate: 4 / 6,
        readRate: 2 / 6,
        fallbackRate: 1 / 6,
        // Nearest rank of [100, 200, 300, 400]: p50 is the 2nd, p95 the 4th.
        timeToDeliveredP50Ms: 200,
        timeToDeliveredP95Ms: 400,
      },
      {
        key: '2025-06-02',
        total: 2,
        delivered: 1,
        read: 0,
        fellBack: 0,
        failed: 1,
        deliveredRate: 0.5,
        readRate: 0,
        fallbackRate: 0,
        timeToDeliveredP50Ms: 1000,
        timeToDeliveredP95Ms: 1000,
      },
    ]);
    const pick = (r: Awaited<ReturnType<HistoryStore['report']>>) => r.rows.map((x) => [x.key, x.total, x.delivered, x.failed]);
    expect(pick(await store.report({ ...q, groupBy: 'trafficType' }))).toEqual([
      ['PROMOTION', 4, 2, 1],
      ['TRANSACTION', 4, 3, 1],
    ]);
    expect(pick(await store.report({ ...q, groupBy: 'state' }))).toEqual([
      ['DELIVERED', 3, 3, 0],
      ['FAILED', 1, 0, 1],
      ['FALLBACK_FAILED', 1, 0, 1],
      ['FALLBACK_SENT', 1, 0, 0],
      ['READ', 2, 2, 0],
    ]);
    expect(pick(await store.report({ ...q, groupBy: 'batch' }))).toEqual([
      ['b1', 3, 3, 0],
      ['b2', 2, 1, 1],
      [null, 3, 1, 1],
    ]);
    expect(pick(await store.report({ ...q, groupBy: 'fallbackReason' }))).toEqual([
      ['TTL_EXPIRATION_REVOKED', 2, 0, 1],
      [null, 6, 5, 1],
    ]);
    expect(pick(await store.report({ ...q, agentIds: [agentId, 'rep-other'], groupBy: 'agent' }))).toEqual([
      ['rep', 8, 5, 2],
      ['rep-other', 1, 1, 0],
    ]);
    await expect(store.report({ ...q, groupBy: 'week' as never })).rejects.toBeInstanceOf(PayloadError);
    await expect(store.report({ ...q, to: q.from + 401 * DAY_MS, groupBy: 'day' })).rejects.toBeInstanceOf(PayloadError);
  });

  it('exports a range as CSV, page by page, every message once', async () => {
    const agentId = 'export';
    const t = NOW - 20 * DAY_MS;
    // 2,100 messages over three pages, 300 of them at one ms across the first page's end (the keyset must not skip or repeat).
    const changes = Array.from({ length: 2100 }, (_, i) =>
      lifecycle(['QUEUED'], {
        agentId,
        createdAt: t + (i >= 900 && i < 1200 ? 900 : i),
        to: '+14155550300',
        batchId: i === 7 ? 'a,"b"' : 'x',
      }),
    ).flat();
    await store.write(changes);
    let csv = '';
    for await (const chunk of store.exportCsv({ from: t, to: t + DAY_MS, agentIds: [agentId] })) csv += chunk;
    const lines = csv.trimEnd().split('\r\n');
    expect(lines[0]).toBe(
      'messageId,agentId,state,channel,to,trafficType,batchId,fallbackReason,lastErrorCode,createdAt,sentAt,deliveredAt,readAt,fallbackSentAt,failedAt',
    );
    expect(lines).toHaveLength(2101);
    expect(new Set(lines.slice(1).map((l) => l.slice(0, 36)))).toEqual(new Set(changes.map((c) => c.messageId)));
    expect(lines.find((l) => l.includes('"a,""b"""'))).toBeDefined();
    expect(lines[1]).toContain(`,export,QUEUED,rcs,+1415***0300,TRANSACTION,`);
  });

  it("erases a number's messages and timelines, and nobody else's", async () => {
    const gone = '+14155550400';
    const kept = '+14155550401';
    await store.write([
      ...lifecycle(['QUEUED', 'SENT', 'DELIVERED'], { agentId: 'erase', createdAt: NOW - 2 * DAY_MS, to: gone }),
      ...lifecycle(['QUEUED', 'SENT'], { agentId: 'erase-b', createdAt: NOW - 1000, to: gone }),
      ...lifecycle(['QUEUED', 'SENT'], { agentId: 'erase', createdAt: NOW - 1000, to: kept }),
    ]);
    expect(await store.erase(phoneHash(KEY, gone))).toEqual({ messages: 2, events: 5 });
    expect((await store.byPhone(phoneHash(KEY, gone), ['erase', 'erase-b'])).messages).toEqual([]);
    expect((await store.byPhone(phoneHash(KEY, kept), ['erase'])).messages).toHaveLength(1);
    expect(await store.erase(phoneHash(KEY, gone))).toEqual({ messages: 0, events: 0 });
  });

  it('keeps text only when asked to', async () => {
    const partitions = new Partitions(store.db);
    const withText = new Store(store.db, partitions, { storeText: true, now: () => NOW });
    const a = lifecycle(['QUEUED'], { agentId: 'text', createdAt: NOW - 1000, text: 'hello' });
    const b = lifecycle(['QUEUED'], { agentId: 'text', createdAt: NOW - 1000, text: 'hello' });
    await store.write(a);
    await withText.write(b);
    expect(await store.message({ agentId: 'text', messageId: a[0]!.messageId })).not.toHaveProperty('text');
    expect(await store.message({ agentId: 'text', messageId: b[0]!.messageId })).toMatchObject({ text: 'hello' });
  });

  it('drops whole days past retention, and does not write changes of messages older than it', async () => {
    const agentId = 'retention';
    const at = (days: number) => NOW - days * DAY_MS;
    const old = lifecycle(['QUEUED', 'SENT'], { agentId, createdAt: at(100) });
    const edge = lifecycle(['QUEUED', 'SENT'], { agentId, createdAt: at(91) });
    const young = lifecycle(['QUEUED', 'SENT'], { agentId, createdAt: at(89) });
    await store.write([...old, ...edge, ...young]);
    const daysBefore = await store.days();
    for (const d of [100, 91, 89]) expect(daysBefore).toContain(new Date(at(d)).toISOString().slice(0, 10));

    const result = await store.enforceRetention(NOW, 90);
    expect(result.cutoff).toBe(Date.UTC(2025, 2, 17)); // 90 days before 15 June, at midnight
    expect(result.droppedDays).toContain(new Date(at(100)).toISOString().slice(0, 10));
    expect(result.droppedDays).toContain(new Date(at(91)).toISOString().slice(0, 10));
    expect(result.droppedDays.every((d) => Date.parse(d) < result.cutoff)).toBe(true);
    expect(await store.message({ agentId, messageId: old[0]!.messageId })).toBeNull();
    expect(await store.message({ agentId, messageId: edge[0]!.messageId })).toBeNull();
    expect(await store.message({ agentId, messageId: young[0]!.messageId })).toMatchObject({ state: 'SENT' });
    expect(await store.enforceRetention(NOW, 90)).toMatchObject({ droppedDays: [] });

    // This store was opened with 400 days: older than that is not written at all; a late change inside it recreates its day.
    const ancient = lifecycle(['QUEUED'], { agentId, createdAt: at(401) });
    expect(await store.write(ancient)).toEqual({ events: 0, messages: 0, tooOld: 1 });
    expect(await store.write([{ ...old[1]!, state: 'DELIVERED', at: old[1]!.at + 5 }])).toEqual({ events: 1, messages: 1, tooOld: 0 });
  });

  it('refuses a bad change with the field and the item named, writing nothing of the batch', async () => {
    const good = lifecycle(['QUEUED'], { agentId: 'bad', createdAt: NOW - 1000 });
    const bad = { ...good[0]!, messageId: 'not-a-uuid' };
    const err = await store.write([...good, bad]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PayloadError);
    expect(err).toMatchObject({ index: 1, problems: [{ path: 'messageId', problem: "expected a UUID, got 'not-a-uuid'" }] });
    expect(await store.message({ agentId: 'bad', messageId: good[0]!.messageId })).toBeNull();
    expect(await store.message({ agentId: 'bad', messageId: 'not-a-uuid' })).toBeNull();
  });
});

describe('history migrations on PostgreSQL', () => {
  it('two processes opening one new database together apply each migration once', async () => {
    const database = await createDatabase();
    const dbs = await Promise.all([openDb({ url: database.url }), openDb({ url: database.url }), openDb({ url: database.url })]);
    try {
      const results = await Promise.all(dbs.map((db) => migrate(db)));
      expect(results.flatMap((r) => r.applied).sort()).toEqual(loadMigrations().map((m) => m.version));
      const rows = await dbs[0]!.query<{ version: number }>('SELECT version FROM schema_migrations ORDER BY version');
      expect(rows.map((r) => r.version)).toEqual(loadMigrations().map((m) => m.version));
    } finally {
      await Promise.all(dbs.map((db) => db.close()));
      await database.drop();
    }
  });

  it('answers HISTORY_UNAVAILABLE when nothing listens', async () => {
    await expect(openDb({ url: 'postgres://postgres@127.0.0.1:1/none' })).rejects.toMatchObject({ code: 'HISTORY_UNAVAILABLE' });
  });
});
