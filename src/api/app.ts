/**
 * The service's HTTP app, built apart from listen() so tests can inject():
 * the producer API (messages, batches, events: see message-routes.ts and
 * event-routes.ts) behind Bearer API keys, and beside it the RBM webhook,
 * which authenticates by signature instead.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import type { ApiKeyConfig } from '../config.ts';
import type { Logger } from '../logger.ts';
import type { Producer } from '../queue/producer.ts';
import { webhookRoutes, type WebhookOptions } from '../webhook/receiver.ts';
import type { RevokeResult } from '../fallback/revoke.ts';
import type { Queue } from 'bullmq';
import { adminRoutes } from './admin.ts';
import { registerApiKeys } from './auth.ts';
import { registerOpenApi } from './openapi.ts';
import { healthRoutes, type ReadinessCheck } from './health.ts';
import { registerJsonBodyParser } from './json-body.ts';
import { metricsRoute, type Metrics } from './metrics.ts';
import { errorBody, sendError } from './errors.ts';
import { eventRoutes } from './event-routes.ts';
import { failureRoutes } from './failure-routes.ts';
import type { RedriveResult } from '../queue/redrive.ts';
import type { FailureEntry, FailureQuery } from '../status/store.ts';
import { messageRoutes } from './message-routes.ts';
import { callbackRoutes } from './callback-routes.ts';
import type { CallbackRegistry } from '../callbacks/registry.ts';

export interface ApiOptions {
  producer: Producer;
  /** DELETE /v1/messages/:id; absent: the route answers 501. */
  revoke?: (messageId: string, options: { fallback?: boolean }) => Promise<RevokeResult>;
  /** POST /webhooks/rbm; absent: no webhook route. */
  webhook?: WebhookOptions;
  /** GET /v1/failures and POST /v1/failures:retry; absent: no such routes. */
  failures?: {
    list(options: FailureQuery): Promise<{ failures: FailureEntry[]; next?: number }>;
    /** With `agents`, messages of other agents are skipped as unknown. */
    redrive(messageIds: readonly string[], agents?: ReadonlySet<string> | null): Promise<RedriveResult>;
  };
  /** Status callbacks: /v1/callback and replay; absent: no such routes, and sends carry no callback. */
  callbacks?: {
    registry: CallbackRegistry;
    /** undefined: callbacks are off (no CALLBACK_SECRET). */
    secretFor(scope: string): string | undefined;
    replay(messageId: string): Promise<{ messageId: string; replayed: number; url: string }>;
  };
  /** bull-board at /admin/queues over these queues; absent: no admin UI. */
  admin?: { queues: readonly Queue[]; adminKey: string | undefined; open: boolean };
  /** GET /metrics; absent: no metrics route. */
  metrics?: Metrics;
  /** /healthz and /readyz with these readiness checks; absent: no health routes. */
  readiness?: readonly ReadinessCheck[];
  apiKeys: readonly ApiKeyConfig[];
  /** With no keys configured: true lets every caller in (emulator mode), false refuses all. */
  openWithoutKeys: boolean;
  logger?: Logger | false;
}

export function buildApi(opts: ApiOptions): FastifyInstance {
  const app = Fastify({ loggerInstance: opts.logger || undefined, bodyLimit: 1024 * 1024 } as never) as unknown as FastifyInstance;
  app.setNotFoundHandler((request, reply) => reply.code(404).send(errorBody('NOT_FOUND', `no route ${request.method} ${request.url}`)));
  // Every route outside the API (metrics, health, admin) answers failures in the one error shape too.
  app.setErrorHandler((err, request, reply) => sendError(reply, err, request));
  registerOpenApi(app);
  if (opts.webhook) app.register(webhookRoutes(opts.webhook));
  if (opts.readiness) app.register(healthRoutes(opts.readiness));
  if (opts.metrics) app.register(metricsRoute(opts.metrics));
  if (opts.admin) app.register(adminRoutes(opts.admin));
  app.register(async (api) => apiRoutes(api, opts));
  return app;
}

async function apiRoutes(app: FastifyInstance, opts: ApiOptions): Promise<void> {
  // JSON only: a text/plain body would otherwise reach the producer as a string.
  app.removeContentTypeParser('text/plain');
  registerJsonBodyParser(app);
  app.setErrorHandler((err, request, reply) => sendError(reply, err, request));
  // Route schemas document (OpenAPI); zod validates, so every refusal keeps the one error shape.
  app.setValidatorCompiler(() => () => true);
  registerApiKeys(app, opts.apiKeys, opts.openWithoutKeys);
  await messageRoutes(app, opts);
  await eventRoutes(app, opts);
  await failureRoutes(app, opts);
  await callbackRoutes(app, opts);
}
