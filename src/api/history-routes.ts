/**
 * History reads, from the archive (src/history/): a number's messages
 * (GET /v1/messages?to=+E164, by the keyed hash of the number) and the
 * deliveries report (GET /v1/reports/deliveries; ?format=csv streams the
 * range's messages). Every read is limited to the agents the caller's key may
 * use; an agentId outside them is refused (403), whether or not it exists, so
 * a key learns nothing of other tenants' agents. GET /v1/messages/:id falls
 * back to the archive in message-routes.ts.
 */
import { Readable } from 'node:stream';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { e164 as e164Schema } from '../../jobs/common.ts';
import { PayloadError, UnknownAgentError } from '../errors.ts';
import { MAX_BY_PHONE, type HistoryStore } from '../history/index.ts';
import { phoneHash } from '../history/phone-hash.ts';
import type { ReportGroupBy } from '../history/types.ts';
import { allowedAgentsOf } from './auth.ts';
import { sendCode } from './errors.ts';
import { doc } from './openapi.ts';

/** What the history routes read through. */
export interface HistoryReads {
  /** The archive, opened on first use; throws HISTORY_UNAVAILABLE (503) when it cannot be reached. */
  store(): Promise<Pick<HistoryStore, 'message' | 'byPhone' | 'report' | 'exportCsv'>>;
  /** The key numbers are hashed with (the archiver's: src/history/settings.ts phoneKeyOf). */
  phoneKey(): Promise<string>;
  /** Every configured agent: what a caller of an API without keys (emulator mode) may read. */
  /** Every agent with a record (removed ones too: their history stays theirs), as of now. */
  agentIds(): readonly string[];
}

export interface HistoryRoutesOptions {
  history: HistoryReads;
}

const DAY_MS = 86_400_000;
/** The report's range when none is given: the last 30 days. */
const DEFAULT_RANGE_MS = 30 * DAY_MS;
const ISO = /^\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,3})?)?(?:Z|[+-]\d{2}:\d{2}))?$/;

type Query = Record<string, string | string[] | undefined>;

/** One value of a query parameter; given twice is a mistake named as such. */
function single(q: Query, name: string): string | undefined {
  const v = q[name];
  if (Array.isArray(v)) throw new PayloadError('query', [{ path: name, problem: 'expected one value, got several' }]);
  return v;
}

/** A time as ms since the epoch or an ISO 8601 date (UTC midnight) or date-time with a zone. */
export function parseTime(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  const ms = /^\d{1,15}$/.test(value) ? Number(value) : ISO.test(value) ? Date.parse(value) : Number.NaN;
  if (!Number.isSafeInteger(ms)) {
    throw new PayloadError('query', [
      {
        path: name,
        problem: `expected ms since the epoch or an ISO 8601 date (2025-01-31) or date-time with a zone, got '${value.slice(0, 40)}'`,
      },
    ]);
  }
  return ms;
}

/**
 * A number in a query: `+` must be sent as %2B in a query string, but a bare `+` arrives as a space; both
 * are taken. Never echoed back in an error (it is a phone number).
 */
export function parsePhone(value: string | undefined, name: string): string {
  const e164 = value?.replace(/^ /, '+');
  if (e164 === undefined || !e164Schema.safeParse(e164).success) {
    throw new PayloadError('query', [
      { path: name, problem: `expected an E.164 number like +12223334444 (the + as %2B)${value === undefined ? ', got none' : ''}` },
    ]);
  }
  return e164;
}

function parseLimit(value: string | undefined): number {
  if (value === undefined) return 50;
  if (!/^\d{1,3}$/.test(value) || Number(value) < 1 || Number(value) > MAX_BY_PHONE) {
    throw new PayloadError('query', [
      { path: 'limit', problem: `expected a whole number from 1 to ${MAX_BY_PHONE}, got '${value.slice(0, 20)}'` },
    ]);
  }
  return Number(value);
}

/**
 * The agents this read covers: the caller's key's (every configured agent in an API without keys), or the one
 * `agentId` names. null when it answered (403: not one of the key's agents).
 */
function agentsOf(request: FastifyRequest, reply: FastifyReply, history: HistoryReads, agentId: string | undefined): string[] | null {
  const allowed = allowedAgentsOf(request);
  const known = history.agentIds();
  const mine = allowed ? known.filter((a) => allowed.has(a)) : [...known];
  if (agentId === undefined) return mine;
  if (mine.includes(agentId)) return [agentId];
  if (!allowed) throw new UnknownAgentError(agentId, known);
  sendCode(reply, 'FORBIDDEN', `this API key may not read agent '${agentId.slice(0, 100)}'`, [
    { path: 'agentId', problem: 'not one of the agents of this API key' },
  ]);
  return null;
}

/** The CSV chunks, the first page already read: a database that does not answer is a 503, not a cut 200. */
async function primed(chunks: AsyncGenerator<string>): Promise<Readable> {
  const first = await chunks.next();
  const second = first.done ? first : await chunks.next();
  async function* all(): AsyncGenerator<string> {
    if (!first.done) yield first.value;
    if (!second.done) yield second.value;
    if (!second.done) yield* chunks;
  }
  return Readable.from(all());
}

export const historyRoutes: FastifyPluginAsync<HistoryRoutesOptions> = async (app, { history }) => {
  app.get(
    '/v1/messages',
    doc('history', "A number's messages from the archive, newest first (?to=+E164&limit=50&before=<next>&agentId=)"),
    async (request, reply) => {
      const q = request.query as Query;
      const to = parsePhone(single(q, 'to'), 'to');
      const limit = parseLimit(single(q, 'limit'));
      const before = single(q, 'before');
      const agents = agentsOf(request, reply, history, single(q, 'agentId'));
      if (!agents) return reply;
      if (agents.length === 0) return { messages: [] };
      const [store, key] = [await history.store(), await history.phoneKey()];
      return store.byPhone(phoneHash(key, to), agents, { limit, ...(before !== undefined ? { before } : {}) });
    },
  );

  app.get(
    '/v1/reports/deliveries',
    doc(
      'history',
      'Deliveries report: counts and rates per group (?from&to&agentId&groupBy=day|agent|trafficType|state|fallbackReason|batch); ' +
        "?format=csv: the range's messages as CSV",
    ),
    async (request, reply) => {
      const q = request.query as Query;
      const to = parseTime(single(q, 'to'), 'to') ?? Date.now();
      const from = parseTime(single(q, 'from'), 'from') ?? to - DEFAULT_RANGE_MS;
      const groupBy = (single(q, 'groupBy') ?? 'day') as ReportGroupBy;
      const format = single(q, 'format') ?? 'json';
      if (format !== 'json' && format !== 'csv') {
        throw new PayloadError('query', [{ path: 'format', problem: `expected json or csv, got '${format.slice(0, 20)}'` }]);
      }
      const agents = agentsOf(request, reply, history, single(q, 'agentId'));
      if (!agents) return reply;
      if (agents.length === 0) {
        throw new PayloadError('query', [{ path: 'agentId', problem: 'this API key may use no agent' }]);
      }
      const store = await history.store();
      if (format === 'json') return store.report({ from, to, agentIds: agents, groupBy });
      // exportCsv checks the range and agents before the first chunk: a bad one is a 400 here.
      const body = await primed(store.exportCsv({ from, to, agentIds: agents }));
      const name = `deliveries-${new Date(from).toISOString().slice(0, 10)}-${new Date(to).toISOString().slice(0, 10)}.csv`;
      return reply.type('text/csv; charset=utf-8').header('content-disposition', `attachment; filename="${name}"`).send(body);
    },
  );
};
