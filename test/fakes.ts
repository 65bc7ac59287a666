/**
 * Plain in-memory fakes of the handlers' ports, for the *.unit.test.ts files:
 * no Redis, no network, no timers. The status fake keeps the real edge table
 * (src/status/states.ts) and the store's lazy creation, so a handler meets the
 * same refusals it would meet in Redis; everything else is recorded for the
 * tests to read.
 */
import type { FallbackOutcome, FallbackRequest } from '../src/fallback/fallback.ts';
import type { DeadlinePort } from '../src/fallback/ports.ts';
import type { Logger } from '../src/handlers/types.ts';
import { canMove, isWaiting, type MessageState } from '../src/status/states.ts';
import type { MessageRef, MessageStatus, ParkResult, StatusPort, TransitionOptions, TransitionResult } from '../src/status/store.ts';

export interface LogLine {
  level: 'info' | 'warn' | 'error' | 'debug';
  obj: Record<string, unknown>;
  msg: string | undefined;
}

/** A logger that keeps what it was told. */
export function recordingLog(): Logger & { lines: LogLine[]; text(): string } {
  const lines: LogLine[] = [];
  const at =
    (level: LogLine['level']) =>
    (obj: object, msg?: string): void =>
      void lines.push({ level, obj: obj as Record<string, unknown>, msg });
  return { lines, info: at('info'), warn: at('warn'), error: at('error'), debug: at('debug'), text: () => JSON.stringify(lines) };
}

export interface FakeRecord {
  state: MessageState;
  fields: Record<string, string>;
  attempts: number;
  trafficType?: string | undefined;
  lastError?: { code: string; message: string };
  moves: Array<{ to: MessageState; options: TransitionOptions }>;
  parked: Array<{ eventType: string; event: unknown }>;
}

/** The status store in memory: the real edges, lazy creation as QUEUED, every call recorded. */
export function fakeStatus(initial: Record<string, Partial<FakeRecord> & { state: MessageState }> = {}) {
  const records = new Map<string, FakeRecord>();
  const key = (ref: MessageRef) => `${ref.agentId}/${ref.messageId}`;
  for (const [k, r] of Object.entries(initial)) records.set(k, { fields: {}, attempts: 0, moves: [], parked: [], ...r });
  /** Every transition asked for, allowed or not. */
  const calls: Array<{ ref: MessageRef; to: MessageState; options: TransitionOptions; result: TransitionResult }> = [];
  /** Answers instead of the edge table, once each, in order (a parked DELIVERED applied in the same step, a race). */
  const scripted: Array<(ref: MessageRef, to: MessageState) => TransitionResult | undefined> = [];
  /** What park() answers instead of the record, once each (a message that settled between a refusal and the park). */
  let parkAnswers: ParkResult[] = [];

  const port: StatusPort = {
    async transition(ref, to, options = {}) {
      const result = move(ref, to, options);
      calls.push({ ref: { agentId: ref.agentId, messageId: ref.messageId }, to, options, result });
      return result;
    },
    async park(ref, eventType, event) {
      // As park.lua: kept while the message waits; otherwise its state (handle the event again), or null.
      const r = records.get(key(ref));
      const answer = parkAnswers.length > 0 ? parkAnswers.shift()! : !r ? null : isWaiting(r.state) ? 'PARKED' : r.state;
      if (answer === 'PARKED') r?.parked.push({ eventType, event });
      return answer;
    },
    async field(ref, name) {
      const r = records.get(key(ref));
      if (!r) return null;
      return name === 'state' ? r.state : (r.fields[name] ?? null);
    },
    async fields(ref, names) {
      return Promise.all(names.map((n) => port.field(ref, n)));
    },
    async setField(ref, name, value) {
      const r = records.get(key(ref));
      if (r) r.fields[name] = value;
    },
    async get(ref) {
      const r = records.get(key(ref));
      if (!r) return null;
      return {
        messageId: ref.messageId,
        agentId: ref.agentId,
        state: r.state,
        to: r.fields.to ?? '',
        channel: 'rcs',
        ...(r.trafficType ? { trafficType: r.trafficType } : {}),
        createdAt: 0,
        updatedAt: 0,
        attempts: r.attempts,
        timeline: [],
      } satisfies MessageStatus;
    },
  };

  function move(ref: MessageRef, to: MessageState, options: TransitionOptions): TransitionResult {
    const script = scripted.shift();
    const forced = script?.(ref, to);
    if (forced) return forced;
    let r = records.get(key(ref));
    if (!r && options.create) {
      r = { state: 'QUEUED', fields: { to: options.create.to }, attempts: 0, moves: [], parked: [] };
      records.set(key(ref), r);
    }
    if (!r) return { ok: false, from: null };
    const from = r.state;
    if (!canMove(from, to)) return { ok: false, from };
    r.state = to;
    Object.assign(r.fields, options.fields);
    if (options.countAttempt) r.attempts += 1;
    if (options.error) r.lastError = options.error;
    r.moves.push({ to, options });
    return { ok: true, from, state: to };
  }

  return {
    port,
    calls,
    scripted,
    records,
    record: (ref: MessageRef) => records.get(key(ref)),
    /** The states moved to, allowed moves only, in order. */
    path: (ref: MessageRef) => records.get(key(ref))?.moves.map((m) => m.to) ?? [],
    answerParks(...answers: ParkResult[]) {
      parkAnswers = answers;
    },
  };
}

/** The fallback, recorded: each request answered with `answer` (by default FALLBACK_QUEUED). */
export function fakeFallback(answer: (req: FallbackRequest) => FallbackOutcome = () => ({ outcome: 'FALLBACK_QUEUED' })) {
  const requests: FallbackRequest[] = [];
  const requestFallback = async (req: FallbackRequest): Promise<FallbackOutcome> => {
    requests.push(req);
    return answer(req);
  };
  return { requestFallback, requests };
}

/** The local deadlines, recorded. */
export function fakeDeadlines() {
  const scheduled: Array<{ payload: Parameters<DeadlinePort['schedule']>[0]; runAt: number }> = [];
  const cancelled: MessageRef[] = [];
  const port: DeadlinePort = {
    async schedule(payload, runAt) {
      scheduled.push({ payload, runAt });
    },
    async cancel(ref) {
      cancelled.push({ agentId: ref.agentId, messageId: ref.messageId });
    },
  };
  return { port, scheduled, cancelled };
}

/** A settled promise's error, for assertions on its fields. */
export async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection, got a result');
}
