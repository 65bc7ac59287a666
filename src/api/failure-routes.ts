/**
 * Dead letters: GET /v1/failures lists messages that failed for good with
 * their reason (?reason=CODE, ?limit, ?before cursor); POST /v1/failures:retry
 * re-drives the given messageIds, or every failure with a reason.
 */
import type { FastifyPluginAsync } from 'fastify';
import { PayloadError } from '../errors.ts';
import type { Producer } from '../queue/producer.ts';
import type { RedriveResult } from '../queue/redrive.ts';
import type { FailureEntry, FailureQuery, MessageRef } from '../status/store.ts';
import { allowedAgentsOf } from './auth.ts';
import { sendCode } from './errors.ts';
import { doc } from './openapi.ts';

const MAX_LIST = 1000;

/** The dead letters: listed from the failures index, re-driven by reference. */
export interface Failures {
  list(options: FailureQuery): Promise<{ failures: FailureEntry[]; next?: number }>;
  redrive(refs: readonly MessageRef[]): Promise<RedriveResult>;
}

export interface FailureRoutesOptions {
  failures: Failures;
  producer: Pick<Producer, 'locate'>;
}

function positiveInt(value: string | undefined, name: string, max: number): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > max)
    throw new PayloadError('query', [{ path: name, problem: `expected a whole number from 1 to ${max}, got '${value}'` }]);
  return Number(value);
}

export const failureRoutes: FastifyPluginAsync<FailureRoutesOptions> = async (app, { failures, producer }) => {
  app.get('/v1/failures', doc('failures', 'Messages that failed for good, with their reason'), async (request) => {
    const q = request.query as { reason?: string; limit?: string; before?: string };
    const limit = positiveInt(q.limit, 'limit', MAX_LIST) ?? 100;
    const before = positiveInt(q.before, 'before', Number.MAX_SAFE_INTEGER);
    return failures.list({
      limit,
      agents: allowedAgentsOf(request),
      ...(q.reason ? { code: q.reason } : {}),
      ...(before !== undefined ? { before } : {}),
    });
  });

  app.post('/v1/failures::retry', doc('failures', 'Re-drive failed messages by ID or by reason'), async (request, reply) => {
    const body = (request.body ?? {}) as { messageIds?: unknown; reason?: unknown };
    if (typeof body !== 'object' || Array.isArray(body))
      throw new PayloadError('retry', [{ path: '', problem: 'expected an object { messageIds } or { reason }' }]);
    const ids = body.messageIds;
    if (
      ids !== undefined &&
      (!Array.isArray(ids) || ids.length === 0 || ids.length > MAX_LIST || !ids.every((id) => typeof id === 'string'))
    ) {
      throw new PayloadError('retry', [{ path: 'messageIds', problem: `expected 1 to ${MAX_LIST} message IDs` }]);
    }
    if (body.reason !== undefined && typeof body.reason !== 'string')
      throw new PayloadError('retry', [{ path: 'reason', problem: 'expected an error code like RBM_API' }]);
    if (ids === undefined && body.reason === undefined) {
      return sendCode(reply, 'PAYLOAD_INVALID', 'expected messageIds or reason', [
        { path: '', problem: 'expected { "messageIds": [...] } or { "reason": "CODE" }' },
      ]);
    }
    const agents = allowedAgentsOf(request);
    if (ids === undefined) {
      const listed = await failures.list({ limit: MAX_LIST, code: body.reason as string, agents });
      return failures.redrive(listed.failures.map((f) => ({ agentId: f.agentId, messageId: f.messageId })));
    }
    // IDs live per agent: each names the failed messages of that ID among this key's agents.
    const refs: MessageRef[] = [];
    const unknown: string[] = [];
    for (const id of new Set(ids as string[])) {
      const found = await producer.locate(id, { agents });
      if (found.length === 0) unknown.push(id);
      refs.push(...found);
    }
    const result = await failures.redrive(refs);
    return { ...result, skipped: [...result.skipped, ...unknown.map((messageId) => ({ messageId, why: 'no such message' }))] };
  });
};
