/**
 * The service's HTTP app, built apart from listen() so tests can inject():
 * the producer API (POST /v1/messages, GET /v1/messages/:id,
 * DELETE /v1/messages/:id) behind Bearer API keys compared in constant time,
 * and, beside it, the RBM webhook, which authenticates by signature instead.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import Fastify, { type FastifyInstance } from 'fastify';
import type { ApiKeyConfig } from '../config.ts';
import type { Logger } from '../logger.ts';
import type { Producer } from '../queue/producer.ts';
import { webhookRoutes, type WebhookOptions } from '../webhook/receiver.ts';
import { RevokeError, type RevokeResult } from '../fallback/revoke.ts';
import { errorBody, sendError } from './errors.ts';

export interface ApiOptions {
  producer: Producer;
  /** DELETE /v1/messages/:id; absent: the route answers 501. */
  revoke?: (messageId: string, options: { fallback?: boolean }) => Promise<RevokeResult>;
  /** POST /webhooks/rbm; absent: no webhook route. */
  webhook?: WebhookOptions;
  apiKeys: readonly ApiKeyConfig[];
  /** With no keys configured: true lets every caller in (emulator mode), false refuses all. */
  openWithoutKeys: boolean;
  logger?: Logger | false;
}

const digest = (s: string) => createHash('sha256').update(s).digest();

export function buildApi(opts: ApiOptions): FastifyInstance {
  const app = Fastify({ loggerInstance: opts.logger || undefined, bodyLimit: 1024 * 1024 } as never) as unknown as FastifyInstance;
  app.setNotFoundHandler((request, reply) => reply.code(404).send(errorBody('NOT_FOUND', `no route ${request.method} ${request.url}`)));
  if (opts.webhook) app.register(webhookRoutes(opts.webhook));
  app.register(async (api) => apiRoutes(api, opts));
  return app;
}

async function apiRoutes(app: FastifyInstance, opts: ApiOptions): Promise<void> {
  const keys = opts.apiKeys.map((k) => ({ digest: digest(k.key), agents: new Set(k.agents) }));

  // JSON only: a text/plain body would otherwise reach the producer as a string.
  app.removeContentTypeParser('text/plain');
  app.setErrorHandler((err, request, reply) => sendError(reply, err, request));

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

  app.delete('/v1/messages/:id', async (request, reply) => {
    if (!opts.revoke) return reply.code(501).send(errorBody('NOT_IMPLEMENTED', 'revoke is not wired in this process'));
    const { id } = request.params as { id: string };
    const fallback = (request.query as { fallback?: string }).fallback;
    if (fallback !== undefined && fallback !== 'true' && fallback !== 'false') {
      return reply.code(400).send(errorBody('PAYLOAD_INVALID', `expected fallback=true or fallback=false, got '${fallback}'`, [{ path: 'fallback', problem: 'expected true or false' }]));
    }
    try {
      return await opts.revoke(id, { fallback: fallback === 'true' });
    } catch (err) {
      if (err instanceof RevokeError) {
        const code = err.state === null ? 404 : 409;
        return reply.code(code).send(errorBody(code === 404 ? 'NOT_FOUND' : err.code, err.message, [{ path: 'state', problem: String(err.state) }]));
      }
      throw err;
    }
  });
}
