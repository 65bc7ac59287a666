/**
 * Control routes (under /_emulator) for the platform → service side:
 * GET|PUT /webhook, POST /webhook/verify (the §6.2 handshake),
 * POST /webhook/send (any payload, signed), and the user's side of a
 * conversation: POST /phones/:e164/messages, POST /phones/:e164/user-events.
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import { UserEventTypes, UserMessageContents, userEvent, userMessage, type UserEventType } from './envelope.ts';
import { googleError } from './google-error.ts';
import { checkWebhookPatch } from './settings.ts';
import type { EmulatorState } from './state.ts';
import { isE164, isPlainObject } from './validate.ts';

const INJECTABLE_EVENTS: readonly string[] = UserEventTypes.filter((t) => t !== 'DELIVERED' && t !== 'READ');

function badRequest(reply: FastifyReply, message: string): FastifyReply {
  return reply.code(400).send(googleError('INVALID_ARGUMENT', message));
}

function agentOf(body: Record<string, unknown>): string | undefined {
  return typeof body.agentId === 'string' && body.agentId !== '' ? body.agentId : undefined;
}

export function registerWebhookControl(scope: FastifyInstance, state: EmulatorState, normalizePhone: (raw: string) => string): void {
  const hooks = state.webhooks;
  /** Injection needs a target: without a url the platform would drop the event, and a test would wait forever. */
  const noTarget = (reply: FastifyReply) =>
    badRequest(reply, 'no webhook url configured: PUT /_emulator/webhook {url, clientTokens} first');

  scope.get('/webhook', async () => hooks.view());

  scope.put('/webhook', async (request, reply) => {
    try {
      hooks.configure(checkWebhookPatch(request.body ?? {}));
      return hooks.view();
    } catch (err) {
      return badRequest(reply, (err as Error).message);
    }
  });

  scope.post('/webhook/verify', async (request, reply) => {
    const body = isPlainObject(request.body) ? request.body : {};
    if (!hooks.active) return noTarget(reply);
    const agentId = agentOf(body);
    const token = agentId === undefined ? (hooks.tokenFor('*') ?? Object.values(hooks.config.clientTokens)[0]) : hooks.tokenFor(agentId);
    if (token === undefined) return badRequest(reply, `no client token configured${agentId === undefined ? '' : ` for agent ${agentId}`}`);
    return hooks.verify(token);
  });

  scope.post('/webhook/send', async (request, reply) => {
    const body = request.body;
    if (!isPlainObject(body) || agentOf(body) === undefined || !isPlainObject(body.payload)) {
      return badRequest(reply, 'body must be {agentId, payload: {...}, attributes?: {string: string}}');
    }
    const attrs = body.attributes;
    if (attrs !== undefined && (!isPlainObject(attrs) || !Object.values(attrs).every((v) => typeof v === 'string'))) {
      return badRequest(reply, 'attributes must be an object of strings');
    }
    if (!hooks.active) return noTarget(reply);
    const envelopeMessageId = hooks.publish(agentOf(body) as string, body.payload, attrs as Record<string, string> | undefined);
    return { envelopeMessageId };
  });

  scope.post<{ Params: { e164: string } }>('/phones/:e164/messages', async (request, reply) => {
    const e164 = normalizePhone(request.params.e164);
    if (!isE164(e164)) return badRequest(reply, `not an E.164 number: ${request.params.e164}`);
    const body = request.body;
    const agentId = isPlainObject(body) ? agentOf(body) : undefined;
    const present = isPlainObject(body) ? UserMessageContents.filter((k) => body[k] !== undefined) : [];
    if (agentId === undefined || present.length !== 1) {
      return badRequest(reply, `body must be {agentId, and exactly one of ${UserMessageContents.join(', ')}}`);
    }
    if (!hooks.active) return noTarget(reply);
    const key = present[0] as (typeof UserMessageContents)[number];
    const payload = userMessage(e164, agentId, { [key]: (body as Record<string, unknown>)[key] }, Date.now());
    hooks.publish(agentId, payload);
    return { messageId: payload.messageId };
  });

  scope.post<{ Params: { e164: string } }>('/phones/:e164/user-events', async (request, reply) => {
    const e164 = normalizePhone(request.params.e164);
    if (!isE164(e164)) return badRequest(reply, `not an E.164 number: ${request.params.e164}`);
    const body = request.body;
    const agentId = isPlainObject(body) ? agentOf(body) : undefined;
    const eventType = isPlainObject(body) ? body.eventType : undefined;
    if (agentId === undefined || typeof eventType !== 'string' || !INJECTABLE_EVENTS.includes(eventType)) {
      return badRequest(reply, `body must be {agentId, eventType: ${INJECTABLE_EVENTS.join(' | ')}}`);
    }
    if (!hooks.active) return noTarget(reply);
    const payload = userEvent(e164, agentId, eventType as UserEventType, Date.now());
    hooks.publish(agentId, payload);
    return { eventId: payload.eventId };
  });
}
