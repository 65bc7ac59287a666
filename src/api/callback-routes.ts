/**
 * Status callbacks: each API key registers one URL (PUT /v1/callback) that
 * every state change of the messages it sends is POSTed to, signed per
 * Standard Webhooks with the key's own secret (GET /v1/callback shows both).
 * A message's own callbackUrl overrides it. POST
 * /v1/messages/:id/callbacks:replay sends a message's changes again.
 */
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { callbackUrl, validate } from '../../jobs/common.ts';
import type { CallbackRegistry } from '../callbacks/registry.ts';
import { ReplayError } from '../callbacks/replay.ts';
import type { UrlRefusal } from '../egress/guard.ts';
import { PayloadError } from '../errors.ts';
import type { Producer, SendOptions } from '../queue/producer.ts';
import type { MessageRef } from '../status/store.ts';
import { callbackScopeOf } from './auth.ts';
import { messageOf } from './locate.ts';
import { sendCode } from './errors.ts';
import { doc } from './openapi.ts';

/** What a send needs of the callbacks: whether they are on for the caller, and its registered URL. */
export interface CallbackLookup {
  registry: Pick<CallbackRegistry, 'get'>;
  /** undefined: callbacks are off (no CALLBACK_SECRET). */
  secretFor(scope: string): string | undefined;
}

export interface Callbacks extends CallbackLookup {
  registry: CallbackRegistry;
  replay(ref: MessageRef): Promise<{ messageId: string; replayed: number; url: string }>;
  /** Refuses a URL that leads to a private, loopback or metadata address (src/egress/guard.ts); absent: not checked. */
  egress?: { check(url: string): Promise<UrlRefusal | undefined> };
}

export interface CallbackRoutesOptions {
  callbacks: Callbacks;
  producer: Pick<Producer, 'locateOne'>;
}

const OFF = 'status callbacks are off in this service: CALLBACK_SECRET is not configured';

/** The callback option of a send: the caller's scope and registered URL, when callbacks are on. */
export async function callbackOption(
  request: FastifyRequest,
  callbacks: CallbackLookup | undefined,
): Promise<Pick<SendOptions, 'callback'>> {
  const scope = callbackScopeOf(request);
  if (!callbacks || callbacks.secretFor(scope) === undefined) return {};
  const url = await callbacks.registry.get(scope);
  return { callback: { scope, ...(url ? { url } : {}) } };
}

export const callbackRoutes: FastifyPluginAsync<CallbackRoutesOptions> = async (app, { callbacks, producer }) => {
  app.get('/v1/callback', doc('callbacks', "This API key's callback URL and the secret its callbacks are signed with"), async (request) => {
    const scope = callbackScopeOf(request);
    return {
      url: await callbacks.registry.get(scope),
      secret: callbacks.secretFor(scope) ?? null,
      enabled: callbacks.secretFor(scope) !== undefined,
    };
  });

  app.put(
    '/v1/callback',
    doc('callbacks', 'Register the URL status changes are POSTed to (for messages without a callbackUrl of their own)', {
      type: 'object',
      properties: { url: { type: 'string', format: 'uri' } },
      required: ['url'],
    }),
    async (request) => {
      const scope = callbackScopeOf(request);
      const secret = callbacks.secretFor(scope);
      if (secret === undefined) throw new PayloadError('callback', [{ path: 'url', problem: OFF }]);
      const body = request.body as { url?: unknown } | null;
      if (!body || typeof body !== 'object' || Array.isArray(body))
        throw new PayloadError('callback', [{ path: '', problem: 'expected an object { "url": "https://..." }' }]);
      const extra = Object.keys(body).filter((k) => k !== 'url');
      const checked = validate(callbackUrl, body.url);
      const problems = [
        ...extra.map((k) => ({ path: k, problem: 'unknown field: expected only url' })),
        ...(checked.ok ? [] : checked.problems.map((p) => ({ ...p, path: 'url' }))),
      ];
      if (problems.length > 0) throw new PayloadError('callback', problems);
      // Where it leads, once its shape is right: a name is resolved now (bounded), and again at every connect.
      const refusal = await callbacks.egress?.check(body.url as string);
      if (refusal) throw new PayloadError('callback', [{ path: 'url', problem: refusal.reason }], { code: refusal.code });
      await callbacks.registry.set(scope, body.url as string);
      return { url: body.url, secret, enabled: true };
    },
  );

  app.delete('/v1/callback', doc('callbacks', 'Stop sending callbacks for messages sent from now on'), async (request, reply) => {
    if (!(await callbacks.registry.remove(callbackScopeOf(request))))
      return sendCode(reply, 'NOT_FOUND', 'this API key has no callback URL');
    return reply.code(204).send();
  });

  app.post(
    '/v1/messages/:id/callbacks::replay',
    doc('callbacks', 'Send every status change of a message to its callback URL again'),
    async (request, reply) => {
      const { id } = request.params as { id: string };
      const ref = await messageOf(request, producer);
      if (!ref) return sendCode(reply, 'NOT_FOUND', `no message ${id}`);
      try {
        return reply.code(202).send(await callbacks.replay(ref));
      } catch (err) {
        if (!(err instanceof ReplayError)) throw err;
        return sendCode(reply, err.reason, err.message);
      }
    },
  );
};
