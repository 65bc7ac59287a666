/**
 * The service's HTTP app, built apart from listen() so tests can inject():
 * the producer API (messages, batches, events: see message-routes.ts and
 * event-routes.ts) behind Bearer API keys, and beside it the RBM webhook,
 * which authenticates by signature instead.
 */
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { type ApiKeyConfig, HTTP_TIMEOUT_DEFAULTS, type HttpTimeouts } from '../config.ts';
import type { Logger } from '../logger.ts';
import type { Producer } from '../queue/producer.ts';
import { type WebhookOptions, webhookRoutes } from '../webhook/receiver.ts';
import { type AdminRoutesOptions, adminRoutes } from './admin.ts';
import { registerApiKeys, scopedError } from './auth.ts';
import { registerOpenApi } from './openapi.ts';
import { healthRoutes, type ReadinessCheck } from './health.ts';
import { registerJsonBodyParser } from './json-body.ts';
import { type Metrics, metricsRoute } from './metrics.ts';
import { errorBody, sendCode, sendError } from './errors.ts';
import { ErrorCodes, statusOf } from '../errors.ts';
import { eventRoutes } from './event-routes.ts';
import { type Failures, failureRoutes } from './failure-routes.ts';
import { messageRoutes, type Revoke } from './message-routes.ts';
import { type Callbacks, callbackRoutes } from './callback-routes.ts';
import { type HistoryReads, historyRoutes } from './history-routes.ts';
import { type SubscriberRoutesOptions, subscriberRoutes } from './subscriber-routes.ts';
import { type AgentRoutesOptions, agentRoutes } from './agent-routes.ts';

/**
 * What buildApi() is given: the producer, the optional parts (revoke, webhook,
 * failures, callbacks, admin UI, metrics, health) and the API keys. Each route
 * plugin declares the options it takes; buildApi hands each its part.
 */
export interface ApiOptions {
  producer: Producer;
  /** DELETE /v1/messages/:id; absent: the route answers 501. */
  revoke?: Revoke;
  /** POST /webhooks/rbm; absent: no webhook route. */
  webhook?: WebhookOptions;
  /** GET /v1/failures and POST /v1/failures:retry; absent: no such routes. */
  failures?: Failures;
  /** Status callbacks: /v1/callback and replay; absent: no such routes, and sends carry no callback. */
  callbacks?: Callbacks;
  /**
   * The archive: GET /v1/messages/:id once Redis holds no record, GET /v1/messages?to=, GET /v1/reports/deliveries;
   * absent: no such routes (and GET by ID answers from Redis only).
   */
  history?: HistoryReads;
  /** /v1/admin/agents: the agent directory (admin key); absent: no such routes. */
  agents?: Omit<AgentRoutesOptions, 'apiKeys' | 'log'>;
  /** DELETE /v1/subscribers/:e164 (admin key); absent: no such route. */
  subscribers?: Omit<SubscriberRoutesOptions, 'apiKeys' | 'log'>;
  /** bull-board at /admin/queues over these queues; absent: no admin UI. */
  admin?: AdminRoutesOptions;
  /** GET /metrics; absent: no metrics route. */
  metrics?: Metrics;
  /** /healthz and /readyz with these readiness checks; absent: no health routes. */
  readiness?: readonly ReadinessCheck[];
  apiKeys: readonly ApiKeyConfig[];
  /** With no keys configured: true lets every caller in (emulator mode), false refuses all. */
  openWithoutKeys: boolean;
  logger?: Logger | false;
  /** How long a client may take (config.http); absent: the defaults of HTTP_*_TIMEOUT_MS. */
  timeouts?: HttpTimeouts;
}

/**
 * The server's bounds on a client, so a slow or silent one cannot hold a
 * connection: Fastify sets requestTimeout, keepAliveTimeout and the idle
 * timeout; headersTimeout and the interval at which Node checks both are
 * options of Node's own server only. That interval is 30 s by default, which
 * would let a slow body live up to twice its limit: it is kept under a second.
 */
function serverOptions(t: HttpTimeouts) {
  const headersTimeout = Math.min(t.headersTimeoutMs, t.requestTimeoutMs);
  return {
    requestTimeout: t.requestTimeoutMs,
    keepAliveTimeout: t.keepAliveTimeoutMs,
    connectionTimeout: t.idleTimeoutMs,
    http: {
      requestTimeout: t.requestTimeoutMs,
      headersTimeout,
      connectionsCheckingInterval: Math.max(25, Math.min(1000, Math.floor(headersTimeout / 4))),
    },
  };
}

/** What Node's parser refuses before any route runs (a timeout, huge headers), in the one error shape, then the connection closes. */
function clientError(err: NodeJS.ErrnoException, socket: Duplex): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const [code, message] =
    err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? [ErrorCodes.REQUEST_TIMEOUT, 'the request did not arrive in time']
      : err.code === 'HPE_HEADER_OVERFLOW'
        ? [ErrorCodes.HEADERS_TOO_LARGE, 'the request headers are larger than this server accepts']
        : [ErrorCodes.BAD_REQUEST, 'the request is not valid HTTP'];
  const status = statusOf(code);
  const body = JSON.stringify(errorBody(code, message));
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
        `Content-Type: application/json\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy();
}

export function buildApi(opts: ApiOptions): FastifyInstance {
  // Typed as Fastify's logger, so the instance is the plain FastifyInstance every route file takes.
  const loggerInstance: FastifyBaseLogger | undefined = opts.logger || undefined;
  const app = Fastify({
    loggerInstance,
    bodyLimit: 1024 * 1024,
    clientErrorHandler: clientError,
    // The router's own refusals (a path that does not decode, a path parameter over 100 characters)
    // in the one error shape, not Fastify's.
    frameworkErrors: (err: unknown, request: FastifyRequest, reply: FastifyReply) => sendError(reply, err, request),
    ...serverOptions(opts.timeouts ?? HTTP_TIMEOUT_DEFAULTS),
  });
  app.setNotFoundHandler((request, reply) => sendCode(reply, 'NOT_FOUND', `no route ${request.method} ${request.url}`));
  // Every route outside the API (metrics, health, admin) answers failures in the one error shape too.
  app.setErrorHandler((err, request, reply) => sendError(reply, err, request));
  registerOpenApi(app);
  if (opts.webhook) app.register(webhookRoutes, opts.webhook);
  if (opts.readiness) app.register(healthRoutes, { checks: opts.readiness });
  if (opts.metrics) app.register(metricsRoute, { registry: opts.metrics.registry });
  if (opts.admin) app.register(adminRoutes, opts.admin);
  // Beside the API, not in it: its key is the admin key, which the API's key check would refuse.
  if (opts.subscribers) {
    app.register(subscriberRoutes, {
      ...opts.subscribers,
      apiKeys: opts.apiKeys.map((k) => k.key),
      ...(opts.logger ? { log: opts.logger } : {}),
    });
  }
  if (opts.agents) {
    app.register(agentRoutes, { ...opts.agents, apiKeys: opts.apiKeys.map((k) => k.key), ...(opts.logger ? { log: opts.logger } : {}) });
  }
  app.register(async (api) => apiRoutes(api, opts));
  return app;
}

async function apiRoutes(app: FastifyInstance, opts: ApiOptions): Promise<void> {
  // JSON only: a text/plain body would otherwise reach the producer as a string.
  app.removeContentTypeParser('text/plain');
  registerJsonBodyParser(app);
  app.setErrorHandler((err, request, reply) => sendError(reply, scopedError(request, err), request));
  // Route schemas document (OpenAPI); zod validates, so every refusal keeps the one error shape.
  app.setValidatorCompiler(() => () => true);
  registerApiKeys(app, opts.apiKeys, opts.openWithoutKeys);
  const { producer, callbacks, failures, history } = opts;
  app.register(messageRoutes, { producer, revoke: opts.revoke, callbacks, history });
  if (history) app.register(historyRoutes, { history });
  app.register(eventRoutes, { producer });
  if (failures) app.register(failureRoutes, { failures, producer });
  if (callbacks) app.register(callbackRoutes, { callbacks, producer });
}
