/**
 * The chaos scenarios (issue 8, item 6). Each builds its own world (fresh
 * redis-server, emulator and split processes), injects one kind of fault,
 * and is judged against the emulator's truth. Sizes and durations scale with
 * CHAOS_SCALE (floors keep every scenario meaningful).
 */
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import postgres from 'postgres';
import { feedKey, historyVerdict, type HistoryVerdict } from './archive.ts';
import { AGENT, Cluster, PREFIX, waitUntil, type ClusterOptions, type Fsync } from './cluster.ts';
import { inFlight, messages, phoneOf, recovery, settle, states, submit, truth, type Sent, type Verdict } from './probe.ts';

export interface Recovery {
  what: string;
  /** ms from the kill (or restart, or fault end) until the in-flight work moved again; null = not within the bound. */
  ms: number | null;
  inFlight: number;
  left?: string[];
}

export interface Row {
  scenario: string;
  verdict?: Verdict;
  /** The archive against Redis's timelines, after the feed drained (absent with CHAOS_HISTORY=off). */
  history?: HistoryVerdict;
  recoveries: Recovery[];
  /** A scenario-specific target (rate, token requests…): text and whether it was met. */
  target?: { text: string; ok: boolean };
  notes: string[];
  error?: string;
  /** Figures a scenario reports beyond the table (rates, loss windows). */
  extra?: Record<string, unknown>;
  logs: string;
  seconds: number;
}

export interface Ctx {
  scale: number;
  settleMs: number;
  baseDir: string;
  recoveryLimitMs: number;
}

const sz = (ctx: Ctx, n: number, min: number): number => Math.max(min, Math.round(n * ctx.scale));
const dur = (ctx: Ctx, ms: number, min: number): number => Math.max(min, Math.round(ms * ctx.scale));
const envNum = (name: string, dflt: number): number => (process.env[name] ? Number(process.env[name]) : dflt);
const OUTBOUND = `rbm-outbound.${AGENT}`;
const RECOVERY_BOUND_MS = 120_000;

export interface Scenario {
  name: string;
  run(ctx: Ctx, row: Row): Promise<void>;
}

/** Builds the world, runs the body, always tears it down. */
async function inWorld(
  ctx: Ctx,
  row: Row,
  opts: Omit<ClusterOptions, 'name' | 'baseDir'>,
  body: (c: Cluster) => Promise<void>,
): Promise<void> {
  const c = await Cluster.start({ name: row.scenario, baseDir: ctx.baseDir, ...opts });
  row.logs = c.dir;
  try {
    await body(c);
    row.notes.push(...(await failedJobs(c)));
    if (c.history && row.verdict) {
      const h = await historyVerdict(c, c.accepted);
      row.history = h;
      row.notes.push(
        `history: ${h.messages} messages compared, ${h.entriesRedis} timeline entries in Redis, ${h.entriesArchive} archived; ` +
          `feed ${h.drainedInMs === null ? `NOT drained (${h.feedLeft} left)` : `drained ${(h.drainedInMs / 1000).toFixed(1)} s after the settle`}; ` +
          `${h.stateDiffers} final states differ, ${h.orderDiffers} timelines in another order, ${h.archiveOnly} archived messages without a Redis record, ` +
          `${h.redisDuplicates} Redis timelines holding an entry twice` +
          `${h.looks > 1 ? `; ${h.looks} looks` : ''}`,
      );
    }
  } finally {
    await c.close();
  }
}

/** Jobs that failed for good, per queue, with a sample reason: where a stuck or wrong message's trail usually ends. */
async function failedJobs(c: Cluster): Promise<string[]> {
  const out: string[] = [];
  for (const q of [OUTBOUND, 'rbm-inbound', 'sms-outbound']) {
    const key = `${PREFIX}:${q}:failed`;
    const n = await c.db.zcard(key).catch(() => 0);
    if (n === 0) continue;
    const [first] = await c.db.zrange(key, 0, 0);
    const reason = first ? await c.db.hget(`${PREFIX}:${q}:${first}`, 'failedReason') : null;
    out.push(`${n} job(s) failed for good on ${q}, e.g. ${first}: ${reason ?? '?'}`);
  }
  return out;
}

async function waitAccepted(c: Cluster, n: number, timeoutMs = 600_000): Promise<void> {
  await waitUntil(
    `RBM to accept ${n} messages`,
    async () => ((await c.counters()).messagesAccepted >= n ? true : undefined),
    timeoutMs,
    100,
  );
}

/** Time from `since` until RBM accepts more than it had at `since` (throughput resumed). */
async function resumed(c: Cluster, since: number, before: number): Promise<number> {
  await waitUntil(
    'throughput to resume',
    async () => ((await c.counters()).messagesAccepted > before ? true : undefined),
    RECOVERY_BOUND_MS,
    100,
  );
  return Date.now() - since;
}

async function countInLogs(c: Cluster, files: string[], re: RegExp): Promise<number> {
  let n = 0;
  for (const f of files) {
    const text = await readFile(`${c.dir}/${f}`, 'utf8').catch(() => '');
    for (const line of text.split('\n')) if (re.test(line)) n += 1;
  }
  return n;
}

// ---------------------------------------------------------------- 1

const dispatcherKill: Scenario = {
  name: 'dispatcher-kill9-x4',
  async run(ctx, row) {
    const n = sz(ctx, 5000, 200);
    const rate = envNum('CHAOS_RATE', 100);
    await inWorld(ctx, row, { agentRate: rate }, async (c) => {
      const { sent } = await submit(c, messages(n), { keyBase: 'drain' });
      const pending: Array<Promise<Recovery>> = [];
      for (let k = 1; k <= 4; k += 1) {
        await waitAccepted(c, Math.floor((k * n) / 5));
        const idx = (k - 1) % 2;
        const t = Date.now();
        await c.kill9('dispatch', idx);
        const snap = await inFlight(c, [OUTBOUND]);
        pending.push(recovery(c, snap, t, RECOVERY_BOUND_MS).then((r) => ({ what: `kill ${k} (dispatch-${idx})`, ...r })));
        await c.startRole('dispatch', idx);
      }
      row.recoveries.push(...(await Promise.all(pending)));
      row.verdict = await settle(c, sent, ctx.settleMs);
      row.notes.push(`${n} messages at ${rate}/s, a dispatcher killed at 20/40/60/80 % of the drain and restarted at once`);
    });
  },
};

// ---------------------------------------------------------------- 1b

const archiverKill: Scenario = {
  name: 'archiver-kill9-x3',
  async run(ctx, row) {
    const n = sz(ctx, 5000, 200);
    // A drain of about 60 s whatever the scale, so that three kills, each awaited until its work moved again, fit in it.
    const rate = Math.max(5, Math.round(n / 60));
    await inWorld(ctx, row, { agentRate: rate }, async (c) => {
      if (!c.history) throw new Error('archiver-kill9-x3 needs the archiver (CHAOS_HISTORY is off)');
      const pg = postgres(c.history.url, { max: 1, onnotice: () => {} });
      try {
        const { sent } = await submit(c, messages(n), { keyBase: 'arch' });
        const atKill: string[] = [];
        for (let k = 1; k <= 3; k += 1) {
          await waitAccepted(c, Math.floor((k * n) / 4));
          // Killed inside a write when one is caught within 5 s (its transaction open, its batch read and not
          // acknowledged), else with a batch in hand, else as it is.
          const deadline = Date.now() + 5000;
          let caught = 'nothing in hand';
          for (; Date.now() < deadline; await sleep(10)) {
            const [[count], [open]] = await Promise.all([
              c.db.xpending(feedKey(), 'archiver') as Promise<[number]>,
              pg<Array<{ n: number }>>`SELECT count(*)::int AS n FROM pg_stat_activity
                WHERE datname = current_database() AND application_name = 'rbm-dispatch-history' AND xact_start IS NOT NULL`,
            ]);
            if (count > 0 && open!.n > 0) {
              caught = `inside a write (${count} entries pending)`;
              break;
            }
            if (count > 0) caught = `a batch in hand (${count} entries pending)`;
          }
          const t = Date.now();
          await c.kill9('archiver');
          const snap = await inFlight(c, [], [{ key: feedKey(), group: 'archiver' }]);
          atKill.push(`kill ${k}: ${caught}, ${await c.db.xlen(feedKey())} in the feed`);
          const rec = recovery(c, snap, t, RECOVERY_BOUND_MS);
          await c.startRole('archiver');
          // The next kill only after this one's entries were written: kills that overlap measure nothing.
          row.recoveries.push({ what: `kill ${k} (archiver)`, ...(await rec) });
        }
        row.verdict = await settle(c, sent, ctx.settleMs);
        row.notes.push(
          `${n} messages at ${rate}/s; the archiver killed at 25/50/75 % of the drain (each after the previous recovery) and restarted at once`,
          ...atKill,
        );
      } finally {
        await pg.end({ timeout: 5 });
      }
    });
  },
};

// ---------------------------------------------------------------- 2

const dispatchersDown: Scenario = {
  name: 'dispatchers-down-150s',
  async run(ctx, row) {
    const n = sz(ctx, 2000, 200);
    const down = dur(ctx, 150_000, 20_000);
    // 300 ms per RBM call: many messages are SENDING when the kill comes; RBM still takes them (the socket dies, the call was made).
    await inWorld(
      ctx,
      row,
      { agentRate: 200, beforeService: async (c) => void (await c.emu('PUT', '/_emulator/faults', { latencyMs: 300 })) },
      async (c) => {
        const { sent } = await submit(c, messages(n), { keyBase: 'down' });
        await waitAccepted(c, Math.floor(n * 0.4));
        const t = Date.now();
        await Promise.all([c.kill9('dispatch', 0), c.kill9('dispatch', 1)]);
        const snap = await inFlight(c, [OUTBOUND]);
        const ids = sent.map((m) => m.messageId);
        const st = await states(c, ids);
        const sending = [...st.values()].filter((s) => s.state === 'SENDING').length;
        await sleep(down); // the scenario: nobody dispatches while the webhooks of what RBM took keep coming
        const before = (await c.counters()).messagesAccepted;
        const tStart = Date.now();
        await Promise.all([c.startRole('dispatch', 0), c.startRole('dispatch', 1)]);
        const tUp = Date.now(); // measured from "dispatch worker running": the outage was the scenario, not the recovery
        row.notes.push(`the restarted dispatchers took ${((tUp - tStart) / 1000).toFixed(1)} s to start`);
        const [orphans, resume] = await Promise.all([recovery(c, snap, tUp, RECOVERY_BOUND_MS), resumed(c, tUp, before)]);
        row.recoveries.push(
          { what: 'jobs in flight at the kill, after the restart', ...orphans },
          { what: 'throughput after the restart', ms: resume, inFlight: 0 },
        );
        row.verdict = await settle(c, sent, ctx.settleMs);
        row.notes.push(
          `${n} messages, RBM latency 300 ms; both dispatchers killed at ${before} accepted (${sending} SENDING, ${snap.jobs.size} jobs active), down ${Math.round((tUp - t) / 1000)} s, then restarted`,
        );
      },
    );
  },
};

// ---------------------------------------------------------------- 3

const expiryWave: Scenario = {
  name: 'inbound+sms-kill9-expiry-wave',
  async run(ctx, row) {
    const n = sz(ctx, 1500, 100);
    await inWorld(ctx, row, { agentRate: 500 }, async (c) => {
      // Every phone offline: nothing is delivered, every OTP expires at RBM and is owed one SMS.
      const phones = Array.from({ length: n }, (_, i) => phoneOf(i));
      for (let i = 0; i < phones.length; i += 50) {
        await Promise.all(
          phones.slice(i, i + 50).map((p) => c.emu('PUT', `/_emulator/phones/${encodeURIComponent(p)}`, { online: false })),
        );
      }
      const specs = messages(n, (i) => ({
        messageTrafficType: 'AUTHENTICATION',
        ttl: '5s',
        contentMessage: { text: `Your code is ${String(100000 + i)}` },
        fallback: { sms: { text: `Your code is ${String(100000 + i)}` } },
      }));
      // Paced at about 200/s (batches of 100, one in flight, 0.5 s apart) so that a loaded machine still sends each OTP within its 5 s:
      // the wave is RBM expiring them, not our own queue.
      const { sent } = await submit(c, specs, { keyBase: 'otp', chunk: 100, inFlight: 1, pauseMs: 500 });

      const wave = await waitUntil(
        'a quarter of the TTL events',
        async () => ((await c.counters()).ttlRevoked >= n / 4 ? true : undefined),
        120_000,
        50,
      ).catch(() => false);
      if (!wave)
        row.notes.push(
          `fewer than ${Math.ceil(n / 4)} TTL events at RBM within 120 s (${(await c.counters()).ttlRevoked}): inbound killed anyway`,
        );
      let t = Date.now();
      await c.kill9('inbound');
      let snap = await inFlight(c, ['rbm-inbound'], [{ key: `${PREFIX}:webhook-events`, group: 'inbound' }]);
      const inbound = recovery(c, snap, t, RECOVERY_BOUND_MS);
      await c.startRole('inbound');
      row.notes.push(`inbound restarted and running ${((Date.now() - t) / 1000).toFixed(1)} s after the kill`);
      row.recoveries.push({ what: 'kill inbound', ...(await inbound) });

      const half = await waitUntil(
        'a quarter of the SMS',
        async () => ((await c.counters()).smsReceived >= n / 4 ? true : undefined),
        180_000,
        50,
      ).catch(() => false);
      if (!half) row.notes.push(`fewer than ${Math.ceil(n / 4)} SMS within 180 s (${(await c.counters()).smsReceived}): sms killed anyway`);
      t = Date.now();
      await c.kill9('sms');
      snap = await inFlight(c, ['sms-outbound']);
      const sms = recovery(c, snap, t, RECOVERY_BOUND_MS);
      await c.startRole('sms');
      row.notes.push(`sms restarted and running ${((Date.now() - t) / 1000).toFixed(1)} s after the kill`);
      row.recoveries.push({ what: 'kill sms', ...(await sms) });

      row.verdict = await settle(c, sent, ctx.settleMs);
      row.notes.push(
        `${n} OTPs (AUTHENTICATION, ttl 5s, SMS fallback) to offline phones; inbound killed at 25 % of the TTL events, sms at 25 % of the SMS`,
      );
    });
  },
};

// ---------------------------------------------------------------- 4

function redisScenario(name: string, signal: 'SIGTERM' | 'SIGKILL', fsync: Fsync): Scenario {
  return {
    name,
    async run(ctx, row) {
      const n = sz(ctx, 4000, 400);
      const downMs = envNum('CHAOS_REDIS_DOWN_MS', 3000);
      await inWorld(ctx, row, { agentRate: 1000, fsync }, async (c) => {
        const start = Date.now();
        let kill: Promise<void> | undefined;
        let tKill = 0;
        let tUp = 0;
        let atKill = 0;
        let rbmAtKill = 0;
        const resumeP: Array<Promise<number>> = [];
        const { sent, refused } = await submit(c, messages(n), {
          keyBase: 'redis',
          chunk: 100,
          onAccepted: (count) => {
            if (kill || count < n * 0.4) return;
            kill = (async () => {
              rbmAtKill = (await c.counters()).messagesAccepted;
              atKill = count;
              tKill = Date.now();
              await c.redis.stop(signal);
              await sleep(downMs); // the outage itself
              await c.redis.restart();
              tUp = Date.now();
              const before = (await c.counters()).messagesAccepted;
              resumeP.push(resumed(c, tUp, before));
            })();
          },
        });
        await kill;
        const resume = await Promise.all(resumeP);
        row.recoveries.push({ what: 'throughput after Redis came back', ms: resume[0] ?? null, inFlight: 0 });
        row.verdict = await settle(c, sent, ctx.settleMs);
        const lostAll = await lostMessages(c, sent, row.verdict);
        const window = lostAll.length ? Math.max(...lostAll.map((m) => tKill - m.acceptedAt)) : 0;
        const intake = atKill / ((tKill - start) / 1000);
        const drain = rbmAtKill / ((tKill - start) / 1000);
        row.notes.push(
          `${n} messages posted in batches of 100 (2 in flight) as fast as the API takes them; Redis ${signal === 'SIGTERM' ? 'SIGTERM' : 'kill -9'} (appendfsync ${fsync}) at ${atKill} accepted, down ${downMs} ms; ${refused} batch posts refused meanwhile (retried, same Idempotency-Key)`,
        );
        row.notes.push(`before the kill: API intake ${intake.toFixed(0)} msg/s, RBM drain ${drain.toFixed(0)} msg/s`);
        row.notes.push(
          `lost: ${lostAll.length} accepted messages gone (no record, no job, never at RBM)${lostAll.length ? `, accepted up to ${window} ms before the kill` : ''}`,
        );
        row.extra = { intakePerSec: intake, drainPerSec: drain, lostCount: lostAll.length, lostWindowMs: window };
      });
    },
  };
}

async function lostMessages(c: Cluster, sent: Sent[], v: Verdict): Promise<Sent[]> {
  if (v.lost === 0) return [];
  const st = await states(
    c,
    sent.map((m) => m.messageId),
  );
  const t = await truth(c);
  return sent.filter((m) => !t.messages.has(m.messageId) && st.get(m.messageId)?.state === 'MISSING');
}

// ---------------------------------------------------------------- 5

const rbmFaults: Scenario = {
  name: 'rbm-30pct-5xx-5pct-resets',
  async run(ctx, row) {
    const n = sz(ctx, 2000, 200);
    await inWorld(
      ctx,
      row,
      {
        agentRate: 200,
        beforeService: async (c) => void (await c.emu('PUT', '/_emulator/faults', { status5xxRate: 0.3, resetRate: 0.05 })),
      },
      async (c) => {
        const { sent } = await submit(c, messages(n), { keyBase: 'faults' });
        row.verdict = await settle(c, sent, ctx.settleMs, true);
        const k = await c.counters();
        row.notes.push(
          `${n} messages; RBM answered 503 to 30 % and reset 5 % of calls (${(k as unknown as { faultsInjected: number }).faultsInjected} faults injected); ${row.verdict.dupSends} suppressed re-sends of an ID; max attempts ${row.verdict.maxAttempts}`,
        );
      },
    );
  },
};

// ---------------------------------------------------------------- 6

const quota: Scenario = {
  name: 'rbm-quota-50-under-200',
  async run(ctx, row) {
    const windowMs = dur(ctx, 60_000, 20_000);
    const n = Math.max(sz(ctx, 3000, 600), Math.ceil((50 * windowMs) / 1000) + 200);
    await inWorld(
      ctx,
      row,
      { agentRate: 200, beforeService: async (c) => void (await c.emu('PUT', `/_emulator/quotas/${AGENT}`, { ratePerSec: 50 })) },
      async (c) => {
        const { sent } = await submit(c, messages(n), { keyBase: 'quota' });
        const sample = async () => {
          const k = (await c.counters()).perAgent[AGENT] ?? { accepted: 0, rateLimited: 0 };
          return { at: Date.now(), ...k };
        };
        const s0 = await sample();
        await sleep(10_000);
        const s10 = await sample();
        await sleep(windowMs - 10_000);
        const s60 = await sample();
        const rate = (s60.accepted - s0.accepted) / ((s60.at - s0.at) / 1000);
        const calls = s60.accepted - s10.accepted + (s60.rateLimited - s10.rateLimited);
        const share = calls ? (s60.rateLimited - s10.rateLimited) / calls : 0;
        row.target = {
          text: `${rate.toFixed(1)}/s accepted of RBM's 50/s (${((rate / 50) * 100).toFixed(0)} %, target ≥ 80 %); 429 share after 10 s ${(share * 100).toFixed(1)} % (target ≤ 5 %)`,
          ok: rate >= 40 && share <= 0.05,
        };
        await c.emu('DELETE', `/_emulator/quotas/${AGENT}`); // then let the rest drain, for the other columns
        row.verdict = await settle(c, sent, ctx.settleMs, true);
        row.notes.push(
          `${n} messages queued at once, agent configured at 200/s, RBM quota 50/s (token bucket) for ${Math.round(windowMs / 1000)} s, then lifted; max attempts ${row.verdict.maxAttempts} (a 429 should use none)`,
        );
        row.extra = { acceptedPerSec: rate, share429After10s: share };
      },
    );
  },
};

// ---------------------------------------------------------------- 7

const tokenDown: Scenario = {
  name: 'token-endpoint-down-60s',
  async run(ctx, row) {
    const n = sz(ctx, 1000, 100);
    const outage = dur(ctx, 60_000, 15_000);
    await inWorld(
      ctx,
      row,
      {
        agentRate: 200,
        beforeService: async (c) => void (await c.emu('PUT', '/_emulator/token/faults', { failNext: [{ kind: '503', forMs: 3_600_000 }] })),
      },
      async (c) => {
        const t0 = Date.now();
        const { sent } = await submit(c, messages(n), { keyBase: 'token' });
        await sleep(Math.max(0, outage - (Date.now() - t0))); // the outage: the token endpoint answers 503 from before the start
        const k0 = await c.counters();
        await c.emu('DELETE', '/_emulator/token/faults');
        const tUp = Date.now();
        row.recoveries.push({
          what: 'throughput after the token endpoint came back',
          ms: await resumed(c, tUp, k0.messagesAccepted),
          inFlight: 0,
        });
        row.verdict = await settle(c, sent, ctx.settleMs, true);
        const k1 = await c.counters();
        row.notes.push(
          `${n} messages sent while the token endpoint answered 503 for ${Math.round(outage / 1000)} s: ${k0.tokenFaults} token requests answered 503, ${k0.messagesAccepted} accepted by RBM during it; after: ${k1.tokensIssued} tokens issued`,
        );
      },
    );
  },
};

const once401: Scenario = {
  name: 'rbm-401-once',
  async run(ctx, row) {
    const n = sz(ctx, 300, 150);
    await inWorld(ctx, row, { agentRate: 200 }, async (c) => {
      const warm = await submit(c, messages(20), { keyBase: 'warm' });
      await settle(c, warm.sent, 60_000);
      const k0 = await c.counters();
      await c.emu('PUT', '/_emulator/faults', { failNext: [{ kind: '401', count: 1 }] });
      const { sent } = await submit(
        c,
        messages(n, () => ({}), 1000),
        { keyBase: 'after401' },
      );
      row.verdict = await settle(c, sent, ctx.settleMs, true);
      const k1 = await c.counters();
      const fresh = k1.tokensIssued - k0.tokensIssued;
      const stuckLines = await countInLogs(c, ['dispatch-0.log', 'dispatch-1.log'], /No refresh token|refresh handler/);
      row.target = { text: `${fresh} new token request(s) after one 401 (target exactly 1)`, ok: fresh === 1 };
      row.notes.push(
        `one 401 from RBM, then ${n} messages; token requests before ${k0.tokensIssued}, after ${k1.tokensIssued} (${k1.tokensRefused - k0.tokensRefused} refused); ${stuckLines} dispatcher log lines about a missing refresh token`,
      );
    });
  },
};

// ---------------------------------------------------------------- 8

const webhooks: Scenario = {
  name: 'webhooks-dup20-reorder3s-late2s',
  async run(ctx, row) {
    const n = sz(ctx, 2000, 200);
    await inWorld(ctx, row, { agentRate: 200 }, async (c) => {
      await c.emu('PUT', '/_emulator/defaults', { readProbability: 1, readDelayMs: 500 });
      await c.emu('PUT', '/_emulator/webhook', { duplicateRate: 0.2, reorderWindowMs: 3000, extraDelayMs: 2000 });
      const { sent } = await submit(c, messages(n), { keyBase: 'hooks' });
      row.verdict = await settle(c, sent, ctx.settleMs, true);
      const k = (await c.counters()) as unknown as { webhooksSent: number; webhookAttempts: number };
      row.notes.push(
        `${n} messages, each DELIVERED then READ 0.5 s later; every webhook 2 s late plus 0-3 s random (READ often before DELIVERED), 20 % sent twice: ${k.webhookAttempts} webhook POSTs for ${k.webhooksSent} envelopes`,
      );
    });
  },
};

export const SCENARIOS: Scenario[] = [
  dispatcherKill,
  archiverKill,
  dispatchersDown,
  expiryWave,
  redisScenario('redis-sigterm', 'SIGTERM', 'everysec'),
  redisScenario('redis-kill9-everysec', 'SIGKILL', 'everysec'),
  redisScenario('redis-kill9-always', 'SIGKILL', 'always'),
  rbmFaults,
  quota,
  tokenDown,
  once401,
  webhooks,
];
