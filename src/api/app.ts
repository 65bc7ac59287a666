/**
 * The producer HTTP API, built apart from listen() so tests can inject():
 * POST /v1/messages and GET /v1/messages/:id in DESIGN.md's public shapes.
 * Bearer API keys, when configured, are compared in constant time.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import Fastify, { type FastifyInstance } from 'fastify';
import type { ApiKeyConfig } from '../config.ts';
import type { Logger } from '../logger.ts';
import type { Producer } from '../queue/producer.ts';
import { errorBody, sendError } from './errors.ts';

export interface ApiOptions {
  producer: Producer;
  apiKeys: readonly ApiKeyConfig[];
  /** With no keys configured: true lets every caller in (emulator mode), false refuses all. */
  openWithoutKeys: boolean;
  logger?: Logger | false;
}

const digest = (s: string) => createHash('sha256').update(s).digest();

export function buildApi(opts: ApiOptions): FastifyInstance {
  const app = Fastify({ loggerInstance: opts.logger || undefined, bodyLimit: 1024 * 1024 } as never) as unknown as FastifyInstance;
  const keys = opts.apiKeys.map((k) => ({ digest: digest(k.key), agents: new Set(k.agents) }));

  // JSON only: a text/plain body would otherwise reach the producer as a string.
  app.removeContentTypeParser('text/plain');
  app.setErrorHandler((err, request, reply) => sendError(reply, err, request));
  app.setNotFoundHandler((request, reply) => reply.code(404).send(errorBody('NOT_FOUND', `no route ${request.method} ${request.url}`)));

  app.decorateRequest('allowedAgents', null);
  app.addHook('onRequest', async (request, reply) => {
    if (keys.length === 0) {
      if (opts.openWithoutKeys) return;
      return reply.code(401).send(errorBody('UNAUTHENTICATED', 'API_KEYS is not configured: the API refuses every caller against a real RBM endpoint'));
    }
    const header = request.headers.authorization ?? '';
    const presented = header.startsWith('Bearer ') ? digest(header.slice(7)) : undefined;
    // Compare digests: equal length, constant time, whatever the caller sent.
    const match = presented && keys.find((k) => timingSafeEqual(k.digest, presented));
    if (!match) return reply.code(401).send(errorBody('UNAUTHENTICATED', 'expected Authorization: Bearer <API key>'));
    (request as unknown as { allowedAgents: Set<string> }).allowedAgents = match.agents;
  });

  app.post('/v1/messages', async (request, reply) => {
    const body = (request.body ?? {}) as Record<string, unknown>;
    const headerKey = request.headers['idempotency-key'];
    const input = typeof headerKey === 'string' && body.idempotencyKey === undefined ? { ...body, idempotencyKey: headerKey } : body;
    const allowed = (request as unknown as { allowedAgents: Set<string> | null }).allowedAgents;
    if (allowed && typeof input.agentId === 'string' && !allowed.has(input.agentId)) {
      return reply.code(403).send(errorBody('FORBIDDEN', `this API key may not send for agent '${input.agentId}'`));
    }
    const result = await opts.producer.sendMessage(input as never);
    return reply.code(202).send(result);
  });

  app.get('/v1/messages/:id', async (request, reply) => {
    const { id } = request.params as { id: string };
    const status = await opts.producer.getStatus(id);
    if (!status) return reply.code(404).send(errorBody('NOT_FOUND', `no message ${id}`));
    return status;
  });

  return app;
}
