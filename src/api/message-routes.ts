/**
 * Messages and batches: POST /v1/messages, POST /v1/messages:batch (up to
 * 10,000, all or nothing), GET /v1/messages/:id (from Redis, or once its
 * record is gone from the archive: one body either way, message-body.ts),
 * DELETE /v1/messages/:id (revoke, optional SMS), GET /v1/batches/:id
 * (counts per state).
 */
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { SendMessageInput } from '../../jobs/send-message.ts';
import { AmbiguousMessageIdError, DispatchError } from '../errors.ts';
import { RevokeError, type RevokeResult } from '../fallback/revoke.ts';
import type { Producer } from '../queue/producer.ts';
import type { MessageRef } from '../status/store.ts';
import { allowedAgentsOf, keyScopeOf, mayUseAgent, refuseForeignAgents } from './auth.ts';
import type { HistoryReads } from './history-routes.ts';
import { bodyOfArchived, bodyOfStatus, type MessageBody } from './message-body.ts';
import { messageOf } from './locate.ts';
import { type CallbackLookup, callbackOption } from './callback-routes.ts';
import { bulkItems, bulkRoute, underField } from './bulk.ts';
import { sendCode } from './errors.ts';
import { idempotencyHeader, withIdempotencyKey } from './idempotency.ts';
import { doc, docSchemas } from './openapi.ts';

/** Revokes a queued or sent message (src/fallback/revoke.ts). */
export type Revoke = (ref: MessageRef, options: { fallback?: boolean }) => Promise<RevokeResult>;

export interface MessageRoutesOptions {
  producer: Pick<Producer, 'sendMessage' | 'sendBatch' | 'getStatus' | 'statusRecord' | 'batchProgress' | 'locateOne' | 'resolveAgent'>;
  /** DELETE /v1/messages/:id; absent: the route answers 501. */
  revoke?: Revoke | undefined;
  /** Status callbacks; absent: sends carry no callback. */
  callbacks?: CallbackLookup | undefined;
  /** The archive GET /v1/messages/:id reads when Redis holds no record; absent: such a message is 404. */
  history?: Pick<HistoryReads, 'store' | 'agentIds'> | undefined;
}

/** A batch of 10,000 full-size messages is large; one message never is. */
const BATCH_BODY_LIMIT = 32 * 1024 * 1024;

// Google-style custom methods ("/v1/messages:batch"): in Fastify's router a
// colon starts a path parameter, so the literal colon is written '::'.
// Request bodies are typed as what the producer takes: Fastify does not validate them (the API's validator is
// off), the producer does, with the zod schemas of jobs/, before anything is queued.

export const messageRoutes: FastifyPluginAsync<MessageRoutesOptions> = async (app, opts) => {
  const { producer, callbacks } = opts;

  app.post<{ Body: SendMessageInput }>(
    '/v1/messages',
    doc('messages', 'Send one message (202: queued, with its messageId)', docSchemas.message),
    async (request, reply) => {
      const input = withIdempotencyKey(request, request.body);
      if (refuseForeignAgents(request, reply, producer, [input], '')) return reply;
      return reply
        .code(202)
        .send(await producer.sendMessage(input, { ...keyScopeOf(request), ...(await callbackOption(request, callbacks)) }));
    },
  );

  app.post<{ Body: { messages: SendMessageInput[] } }>(
    '/v1/messages::batch',
    bulkRoute('messages', 'Send up to 10,000 messages, all or nothing', docSchemas.message, BATCH_BODY_LIMIT),
    async (request, reply) => {
      const items = bulkItems(request.body, 'messages');
      if (refuseForeignAgents(request, reply, producer, items, 'messages')) return reply;
      const key = idempotencyHeader(request);
      try {
        return reply.code(202).send(
          await producer.sendBatch(items, {
            ...(key ? { idempotencyKey: key } : {}),
            ...keyScopeOf(request),
            ...(await callbackOption(request, callbacks)),
          }),
        );
      } catch (err) {
        throw underField(err, 'messages');
      }
    },
  );

  /**
   * The archived message of this ID among the caller's agents (?agentId= one of them): asked only when Redis
   * holds none, so a message still in Redis never waits on (or fails with) the archive.
   */
  async function archived(request: FastifyRequest, id: string): Promise<MessageBody | null> {
    const history = opts.history;
    if (!history) return null;
    const { agentId } = request.query as { agentId?: string };
    const agents = history.agentIds().filter((a) => mayUseAgent(request, a) && (agentId === undefined || a === agentId));
    if (agents.length === 0) return null;
    const store = await history.store();
    const found = (await Promise.all(agents.map((a) => store.message({ agentId: a, messageId: id })))).filter((m) => m !== null);
    if (found.length > 1)
      throw new AmbiguousMessageIdError(
        id,
        found.map((m) => m.agentId),
      );
    return found[0] ? bodyOfArchived(found[0]) : null;
  }

  app.get('/v1/messages/:id', doc('messages', "A message's status and timeline"), async (request, reply) => {
    const { id } = request.params as { id: string };
    // A message of an agent this key may not use is not shown, nor said to exist.
    const ref = await messageOf(request, producer);
    // Its record in Redis; else the archive; else, for a job still waiting with no record, QUEUED from the job
    // (asked last: a job kept after it completed says QUEUED, the archive says what happened).
    const record = ref && (await producer.statusRecord(ref));
    if (record) return bodyOfStatus(record);
    let body: MessageBody | null = null;
    try {
      body = await archived(request, id);
    } catch (err) {
      // The archive away: a message Redis still knows of (by its job) answers from there; any other is a 503.
      if (!ref || !(err instanceof DispatchError && err.code === 'HISTORY_UNAVAILABLE')) throw err;
    }
    const status = body ? null : ref && (await producer.getStatus(ref));
    body ??= status ? bodyOfStatus(status) : null;
    if (!body) return sendCode(reply, 'NOT_FOUND', `no message ${id}`);
    return body;
  });

  app.delete('/v1/messages/:id', doc('messages', 'Revoke a message (?fallback=true: and send its SMS)'), async (request, reply) => {
    if (!opts.revoke) return sendCode(reply, 'NOT_IMPLEMENTED', 'revoke is not wired in this process');
    const { id } = request.params as { id: string };
    const fallback = (request.query as { fallback?: string }).fallback;
    if (fallback !== undefined && fallback !== 'true' && fallback !== 'false') {
      return sendCode(reply, 'PAYLOAD_INVALID', `expected fallback=true or fallback=false, got '${fallback}'`, [
        { path: 'fallback', problem: 'expected true or false' },
      ]);
    }
    const ref = await messageOf(request, producer);
    if (!ref) return sendCode(reply, 'NOT_FOUND', `no message ${id}`);
    try {
      return await opts.revoke(ref, { fallback: fallback === 'true' });
    } catch (err) {
      if (!(err instanceof RevokeError)) throw err;
      return sendCode(reply, err.state === null ? 'NOT_FOUND' : err.code, err.message, [{ path: 'state', problem: String(err.state) }]);
    }
  });

  app.get('/v1/batches/:id', doc('messages', "A batch's progress: counts per state"), async (request, reply) => {
    const { id } = request.params as { id: string };
    // A batch holding messages of agents this key may not use answers like an unknown one.
    const progress = await producer.batchProgress(id, allowedAgentsOf(request));
    if (!progress) return sendCode(reply, 'NOT_FOUND', `no batch ${id}`);
    return progress;
  });
};
