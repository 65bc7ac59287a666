/**
 * Traffic through the api process, and the verdict: every message's status
 * (Redis) against the emulator's truth (what each phone received, how
 * often, which SMS), plus recovery times after a kill.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { canMove, type MessageState } from '../../src/status/states.ts';
import { AGENT, PREFIX, type Cluster } from './cluster.ts';

export interface MessageSpec {
  to: string;
  messageTrafficType?: string;
  ttl?: string;
  contentMessage: { text: string };
  fallback?: { sms: { text: string } };
}

export interface Sent {
  messageId: string;
  to: string;
  fallback: boolean;
  /** When the API answered 202 (ms since epoch). */
  acceptedAt: number;
}

/** +1555 then 6 digits then 1: one phone per message, never ending in 0 (the emulator's "not RCS" rule). */
export const phoneOf = (i: number): string => `+1555${String(i).padStart(6, '0')}1`;

export function messages(n: number, make: (i: number) => Partial<MessageSpec> = () => ({}), from = 0): MessageSpec[] {
  const out: MessageSpec[] = [];
  for (let i = from; i < from + n; i += 1) out.push({ to: phoneOf(i), contentMessage: { text: `chaos #${i}` }, ...make(i) });
  return out;
}

export interface SubmitOptions {
  chunk?: number;
  inFlight?: number;
  /** Idempotency-Key base of each batch (`<base>-<k>`), so a retried batch queues nothing twice. */
  keyBase: string;
  /** Retry a refused batch (non-202, network) until this deadline; else throw. */
  deadlineMs?: number;
  onAccepted?: (count: number) => void;
  stop?: () => boolean;
  /** Pause of each poster after each accepted batch (a paced producer). */
  pauseMs?: number;
}

/**
 * POSTs the messages to /v1/messages:batch in chunks, a few in flight; a
 * refused chunk is retried with the same Idempotency-Key. Returns what the
 * API accepted (202), with the time of each 202.
 */
export async function submit(c: Cluster, specs: MessageSpec[], o: SubmitOptions): Promise<{ sent: Sent[]; refused: number }> {
  const chunk = o.chunk ?? 500;
  const batches: MessageSpec[][] = [];
  for (let i = 0; i < specs.length; i += chunk) batches.push(specs.slice(i, i + chunk));
  const sent: Sent[] = [];
  let refused = 0;
  let next = 0;
  const deadline = Date.now() + (o.deadlineMs ?? 300_000);
  const worker = async (): Promise<void> => {
    for (;;) {
      if (o.stop?.()) return;
      const k = next++;
      const batch = batches[k];
      if (!batch) return;
      for (;;) {
        let ok = false;
        try {
          const r = await c.api('POST', '/v1/messages:batch', { messages: batch }, { 'idempotency-key': `${o.keyBase}-${k}` });
          if (r.status === 202) {
            const at = Date.now();
            const ids = r.body.messageIds as string[];
            ids.forEach((id, i) => {
              sent.push({ messageId: id, to: batch[i]!.to, fallback: batch[i]!.fallback !== undefined, acceptedAt: at });
              c.accepted.push(id);
            });
            o.onAccepted?.(sent.length);
            ok = true;
          } else {
            refused += 1;
          }
        } catch {
          refused += 1;
        }
        if (ok) {
          if (o.pauseMs) await sleep(o.pauseMs);
          break;
        }
        if (Date.now() > deadline) throw new Error(`batch ${k} still refused at the submit deadline`);
        await sleep(200);
      }
    }
  };
  await Promise.all(Array.from({ length: o.inFlight ?? 2 }, worker));
  return { sent, refused };
}

// ---------------------------------------------------------------- truth

export interface EmuMessage {
  messageId: string;
  phone: string;
  count: number;
  receivedAt: number;
  delivered: boolean;
  read: boolean;
  revoked: boolean;
  ttlEvent: string | null;
}

export interface Truth {
  messages: Map<string, EmuMessage>;
  /** Distinct delivered messages per phone. */
  deliveredPerPhone: Map<string, number>;
  smsPerPhone: Map<string, number>;
}

export async function truth(c: Cluster): Promise<Truth> {
  const [m, s] = await Promise.all([c.emu('GET', `/_emulator/messages?agentId=${AGENT}`), c.emu('GET', '/_emulator/sms')]);
  if (m.status !== 200 || s.status !== 200) throw new Error(`emulator truth: ${m.status}/${s.status}`);
  const messages = new Map<string, EmuMessage>();
  const deliveredPerPhone = new Map<string, number>();
  for (const x of m.body.messages as EmuMessage[]) {
    messages.set(x.messageId, x);
    if (x.delivered) deliveredPerPhone.set(x.phone, (deliveredPerPhone.get(x.phone) ?? 0) + 1);
  }
  const smsPerPhone = new Map<string, number>(Object.entries(s.body.perNumber as Record<string, number>));
  return { messages, deliveredPerPhone, smsPerPhone };
}

/** Each message's state from Redis; a message with no record is QUEUED while its job exists, else MISSING. */
export async function states(c: Cluster, ids: string[]): Promise<Map<string, { state: string; attempts: number; error: string }>> {
  const out = new Map<string, { state: string; attempts: number; error: string }>();
  for (let i = 0; i < ids.length; i += 2000) {
    const page = ids.slice(i, i + 2000);
    const p = c.db.pipeline();
    for (const id of page) {
      p.hmget(`${PREFIX}:status:${AGENT}:${id}`, 'state', 'attempts', 'lastErrorCode');
      p.exists(`${PREFIX}:rbm-outbound.${AGENT}:msg-${id}`);
    }
    const res = (await p.exec()) ?? [];
    page.forEach((id, j) => {
      const [err, h] = res[2 * j] ?? [];
      const [, job] = res[2 * j + 1] ?? [];
      if (err) throw err;
      const [state, attempts, code] = (h ?? []) as Array<string | null>;
      out.set(id, { state: state ?? (job === 1 ? 'QUEUED' : 'MISSING'), attempts: Number(attempts ?? 0), error: code ?? '' });
    });
  }
  return out;
}

// ---------------------------------------------------------------- verdict

const TERMINAL = new Set(['READ', 'DELIVERED', 'FALLBACK_SENT', 'FALLBACK_FAILED', 'FAILED']);
const TERMINAL_WITHOUT_SMS = new Set(['EXPIRED', 'REVOKED', 'NOT_RCS']);

function isTerminal(state: string, fallback: boolean): boolean {
  return TERMINAL.has(state) || (!fallback && TERMINAL_WITHOUT_SMS.has(state));
}

/** What the record should say, given what RBM (the emulator) did. */
function expected(m: Sent, t: EmuMessage | undefined): string[] {
  if (t?.read) return ['READ'];
  if (t?.delivered) return ['DELIVERED'];
  if (m.fallback) return ['FALLBACK_SENT'];
  if (t) return t.revoked ? ['EXPIRED'] : ['SENT'];
  return ['FAILED', 'EXPIRED'];
}

export interface Verdict {
  messages: number;
  /** Never reached RBM and not in a final state (no record, or stuck before sending). */
  lost: number;
  /** Phones that received two or more distinct messages (one message per phone is sent). */
  twice: number;
  /** Phones with 0 or 2+ SMS where exactly one was due (RCS never delivered, the message had a fallback). */
  smsBad: number;
  /** Phones that got an SMS although RCS delivered the message (or none was due). */
  smsNotDue: number;
  /** Final (at the end of the settle time) state ≠ what the emulator's truth implies. */
  wrong: number;
  /** Not settled at the end of the settle time (not final, or can still move to what it should be). */
  stuck: number;
  /** FAILED or EXPIRED although the scenario promises delivery (RBM accepts every message eventually). */
  failed: number;
  /** Suppressed duplicate sends of one messageId (harmless: RBM ignores a reused ID). */
  dupSends: number;
  maxAttempts: number;
  byState: Record<string, number>;
  /** Up to 5 examples per bad column: messageId, state, truth. */
  examples: Record<string, string[]>;
  settledInMs: number | null;
}

export function judge(
  sent: Sent[],
  st: Map<string, { state: string; attempts: number; error: string }>,
  t: Truth,
  promiseDelivery: boolean,
): Verdict {
  const v: Verdict = {
    messages: sent.length,
    lost: 0,
    twice: 0,
    smsBad: 0,
    smsNotDue: 0,
    wrong: 0,
    stuck: 0,
    failed: 0,
    dupSends: 0,
    maxAttempts: 0,
    byState: {},
    examples: {},
    settledInMs: null,
  };
  const ex = (col: string, m: Sent, s: string, tm: EmuMessage | undefined, extra = ''): void => {
    v.examples[col] ??= [];
    const list = v.examples[col];
    if (list.length < 5)
      list.push(
        `${m.messageId} ${s}${s === 'FAILED' || s === 'FALLBACK_FAILED' ? '' : ''} rbm:${tm ? `${tm.delivered ? 'delivered' : tm.revoked ? `revoked(${tm.ttlEvent ?? 'revoke'})` : 'accepted'}${tm.read ? '+read' : ''}` : 'never'}${extra}`,
      );
  };
  for (const m of sent) {
    const s = st.get(m.messageId) ?? { state: 'MISSING', attempts: 0, error: '' };
    const tm = t.messages.get(m.messageId);
    v.byState[s.state] = (v.byState[s.state] ?? 0) + 1;
    v.maxAttempts = Math.max(v.maxAttempts, s.attempts);
    if (tm && tm.count > 1) v.dupSends += tm.count - 1;
    const terminal = isTerminal(s.state, m.fallback);
    const exp = expected(m, tm);
    if (!tm && !terminal) {
      v.lost += 1;
      ex('lost', m, s.state, tm);
    }
    if ((t.deliveredPerPhone.get(m.to) ?? 0) > 1) {
      v.twice += 1;
      ex('twice', m, s.state, tm);
    }
    const sms = t.smsPerPhone.get(m.to) ?? 0;
    const due = m.fallback && !tm?.delivered;
    if (due && sms !== 1) {
      v.smsBad += 1;
      ex('smsBad', m, s.state, tm, ` sms:${sms}`);
    }
    if (!due && sms > 0) {
      v.smsNotDue += 1;
      ex('smsNotDue', m, s.state, tm, ` sms:${sms}`);
    }
    if (!exp.includes(s.state)) {
      v.wrong += 1;
      ex('wrong', m, s.state, tm, ` want ${exp.join('|')}${s.error ? ` err ${s.error}` : ''}`);
    }
    const settled = exp.includes(s.state) || (terminal && !exp.some((e) => safeCanMove(s.state, e)));
    if (!settled) {
      v.stuck += 1;
      ex('stuck', m, s.state, tm);
    }
    if (promiseDelivery && (s.state === 'FAILED' || s.state === 'EXPIRED')) {
      v.failed += 1;
      ex('failed', m, s.state, tm, s.error ? ` err ${s.error}` : '');
    }
  }
  return v;
}

function safeCanMove(from: string, to: string): boolean {
  try {
    return canMove(from as MessageState, to as MessageState);
  } catch {
    return false;
  }
}

/**
 * Waits (polling, bounded by settleMs) until every message is settled
 * against the emulator's truth, then returns the verdict of that moment.
 */
export async function settle(c: Cluster, sent: Sent[], settleMs: number, promiseDelivery = false): Promise<Verdict> {
  const t0 = Date.now();
  const ids = sent.map((m) => m.messageId);
  let v: Verdict | undefined;
  for (;;) {
    try {
      v = judge(sent, await states(c, ids), await truth(c), promiseDelivery);
      if (v.stuck === 0 && v.wrong === 0 && v.lost === 0) {
        v.settledInMs = Date.now() - t0;
        // A last look a little later: nothing may move away from the right state (an SMS that comes late, a duplicate).
        await sleep(2000);
        const again = judge(sent, await states(c, ids), await truth(c), promiseDelivery);
        again.settledInMs = v.settledInMs;
        return again;
      }
    } catch {
      // Redis or the emulator briefly unreachable: keep polling until the deadline.
    }
    if (Date.now() - t0 > settleMs) {
      if (!v) throw new Error('could not read any status or truth during the settle time');
      return v;
    }
    await sleep(2000);
  }
}

// ---------------------------------------------------------------- recovery

export interface InFlight {
  /** BullMQ job key → processedOn at the snapshot. */
  jobs: Map<string, string>;
  /** Stream key → entry IDs pending in the group at the snapshot. */
  pending: Map<string, { group: string; ids: Set<string> }>;
}

/** The jobs active in these queues and the entries pending in these stream groups, right now. */
export async function inFlight(c: Cluster, queues: string[], streams: Array<{ key: string; group: string }> = []): Promise<InFlight> {
  const jobs = new Map<string, string>();
  for (const q of queues) {
    const active = await c.db.lrange(`${PREFIX}:${q}:active`, 0, -1);
    for (const id of active) {
      const key = `${PREFIX}:${q}:${id}`;
      jobs.set(key, (await c.db.hget(key, 'processedOn')) ?? '');
    }
  }
  const pending = new Map<string, { group: string; ids: Set<string> }>();
  for (const s of streams) {
    const list = (await c.db.xpending(s.key, s.group, '-', '+', 100_000).catch(() => [])) as Array<[string, string, number, number]>;
    pending.set(s.key, { group: s.group, ids: new Set(list.map((e) => e[0])) });
  }
  return { jobs, pending };
}

/** Of the snapshot, what has not moved yet: a job still there, unfinished, not re-run, not delayed; an entry still pending. */
async function unmoved(c: Cluster, snap: InFlight): Promise<string[]> {
  const left: string[] = [];
  for (const [key, processedOn] of snap.jobs) {
    const [p, f] = await c.db.hmget(key, 'processedOn', 'finishedOn');
    if (p === null && f === null) continue; // gone (removed on completion)
    if (f !== null) continue;
    if ((p ?? '') !== processedOn) continue; // picked up again
    const queueKey = key.slice(0, key.lastIndexOf(':'));
    const id = key.slice(key.lastIndexOf(':') + 1);
    if ((await c.db.zscore(`${queueKey}:delayed`, id)) !== null) continue; // moved to a retry
    left.push(key);
  }
  for (const [key, { group, ids }] of snap.pending) {
    if (ids.size === 0) continue;
    const list = (await c.db.xpending(key, group, '-', '+', 100_000)) as Array<[string, string, number, number]>;
    for (const e of list) if (ids.has(e[0])) left.push(`${key}#${e[0]}`);
  }
  return left;
}

/**
 * Milliseconds from `since` until every job and entry of the snapshot has
 * moved (bounded by timeoutMs; null when some never did, with what was left).
 */
export async function recovery(
  c: Cluster,
  snap: InFlight,
  since: number,
  timeoutMs: number,
): Promise<{ ms: number | null; inFlight: number; left: string[] }> {
  const n = snap.jobs.size + [...snap.pending.values()].reduce((a, p) => a + p.ids.size, 0);
  let left: string[] = [];
  for (;;) {
    try {
      left = await unmoved(c, snap);
      if (left.length === 0) return { ms: Date.now() - since, inFlight: n, left };
    } catch {
      // Redis unreachable for a moment: poll again
    }
    if (Date.now() - since > timeoutMs) return { ms: null, inFlight: n, left: left.slice(0, 5) };
    await sleep(100);
  }
}
