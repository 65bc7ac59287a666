/**
 * Public entry of the RBM platform emulator: builds the Fastify app (RBM REST
 * paths, OAuth token endpoint, Twilio-compatible SMS sink, control API under
 * /_emulator) over an EmulatorState, and starts it on a port with a helper
 * that writes service-account keys pointing at it. Webhooks go out to the url
 * given in `webhook` or by PUT /_emulator/webhook.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { maskPhonesInUrl } from '../mask.ts';
import { registerControlRoutes } from './control-routes.ts';
import { googleError } from './google-error.ts';
import { registerTokenRoute, type ServiceAccountKey } from './oauth.ts';
import { registerRbmRoutes } from './rbm-routes.ts';
import type { StateOptions } from './records.ts';
import { registerSmsRoutes } from './sms-routes.ts';
import { EmulatorState } from './state.ts';

export { EmulatorState, defaultRcsRule } from './state.ts';
export type { Arrival, Counters, DuplicateResponse, EmulatorEvents, MessageArrival, Phone, WebhookOptions } from './state.ts';
export type { DeliverySettings, PlatformDefaults, WebhookConfig, WebhookTuning } from './settings.ts';
export type { PushEnvelope } from './envelope.ts';
export type { WebhookAttempt } from './webhook.ts';
export type { SmsRecord } from './sms.ts';
export { startWebhookReceiver, type Answer, type ReceivedRequest, type WebhookReceiver } from './receiver.ts';
export type { FailNextEntry, FaultConfig, FaultKind } from './faults.ts';
export type { TokenFailEntry, TokenFaultConfig, TokenFaultKind } from './token-faults.ts';
export type { TokenOutcome } from './oauth.ts';
export type { QuotaConfig } from './quota.ts';
export type { ServiceAccountKey } from './oauth.ts';
export { GOOGLE_TOKEN_URL, RBM_SCOPE } from './oauth.ts';
export { CAPABILITY_FEATURES } from './rbm-routes.ts';

/**
 * What the platform does (see StateOptions: RCS rule, duplicate answer, quotas, delivery defaults, revoke failures, webhook),
 * and where it listens.
 */
export interface EmulatorOptions extends StateOptions {
  host?: string;
  port?: number;
  logger?: boolean;
}

export interface RunningEmulator {
  url: string;
  state: EmulatorState;
  /** Writes a service-account key whose token_uri is `${url}/token` (mode 0600, parent folders created). */
  writeKeyFile(path: string, opts?: { clientEmail?: string }): Promise<ServiceAccountKey>;
  close(): Promise<void>;
}

export function buildEmulatorApp(state: EmulatorState, opts: { logger?: boolean } = {}): FastifyInstance {
  // forceCloseConnections: close() must not wait for keep-alive sockets of clients under test.
  const app = Fastify({
    logger: opts.logger ? { serializers: { req: (req) => ({ method: req.method, url: maskPhonesInUrl(req.url) }) } } : false,
    forceCloseConnections: true,
  });
  app.setErrorHandler((err: { statusCode?: number; message?: string }, _request, reply) => {
    const code = err.statusCode ?? 500;
    if (code < 500) return reply.code(400).send(googleError('INVALID_ARGUMENT', err.message ?? 'Invalid request.'));
    return reply.code(500).send(googleError('INTERNAL', 'Internal error encountered.'));
  });
  app.setNotFoundHandler((request, reply) =>
    reply.code(404).send(googleError('NOT_FOUND', `Method not found: ${request.method} ${request.url.split('?')[0]}`)),
  );
  registerTokenRoute(
    app,
    state.oauth,
    state.tokenFaults,
    () => (state.baseUrl === undefined ? undefined : `${state.baseUrl}/token`),
    (outcome) => {
      state.counters.tokenRequests += 1;
      if (outcome === 'issued') state.counters.tokensIssued += 1;
      else if (outcome === 'refused') state.counters.tokensRefused += 1;
      else state.counters.tokenFaults += 1;
      state.events.emit('token', { outcome });
    },
  );
  registerRbmRoutes(app, state);
  registerSmsRoutes(app, state);
  registerControlRoutes(app, state);
  return app;
}

export async function startEmulator(opts: EmulatorOptions = {}): Promise<RunningEmulator> {
  const state = new EmulatorState(opts);
  const app = buildEmulatorApp(state, { logger: opts.logger ?? false });
  const host = opts.host ?? '127.0.0.1';
  await app.listen({ host, port: opts.port ?? 0 });
  const address = app.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : (opts.port ?? 0);
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  state.baseUrl = url;
  return {
    url,
    state,
    async writeKeyFile(path, keyOpts = {}) {
      const key = await state.oauth.createKey(url, keyOpts.clientEmail);
      await mkdir(dirname(path), { recursive: true });
      await writeFile(path, `${JSON.stringify(key, null, 2)}\n`, { mode: 0o600 });
      return key;
    },
    async close() {
      // The server first, so no request schedules anything after the timers are cleared.
      await app.close();
      await state.close();
    },
  };
}
