/**
 * The control API under /_emulator (no auth): what tests, the demo and
 * benchmarks read and the knobs they turn. Routes: GET|PUT /phones/:e164
 * (rcs, online, deliveryDelayMs, readDelayMs, readProbability),
 * GET|PUT /defaults, GET /counters, PUT|DELETE /quotas/:agentId,
 * GET|PUT|DELETE /faults, GET|PUT|DELETE /token/faults (the token
 * endpoint's), GET /messages (all, summarised), GET /messages/:messageId, POST /reset; plus the
 * webhook routes (webhook-routes.ts) and the SMS sink's (sms-routes.ts).
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import { checkFaultConfig } from './faults.ts';
import { checkTokenFaults } from './token-faults.ts';
import { googleError } from './google-error.ts';
import { checkQuotaConfig } from './quota.ts';
import { checkDefaults, checkPhonePatch } from './settings.ts';
import { registerSettingRoutes } from './setting-routes.ts';
import { registerSmsControl } from './sms-routes.ts';
import type { Arrival, EmulatorState, MessageArrival } from './state.ts';
import { isE164 } from './validate.ts';
import { registerWebhookControl } from './webhook-routes.ts';

/** Accepts "+1222…", "%2B1222…" (decoded by the router) and bare digits. */
function normalizePhone(raw: string): string {
  return raw.startsWith('+') ? raw : `+${raw.trim()}`;
}

const arrivalView = (a: Arrival) => ({
  kind: a.kind,
  id: a.id,
  agentId: a.agentId,
  body: a.body,
  receivedAt: a.receivedAt,
  count: a.count,
  wire: a.wire,
});

function badRequest(reply: FastifyReply, message: string): FastifyReply {
  return reply.code(400).send(googleError('INVALID_ARGUMENT', message));
}

export function registerControlRoutes(app: FastifyInstance, state: EmulatorState): void {
  app.register(
    async (scope) => {
      // Lenient JSON: `POST /reset` with a JSON content type and no body is a normal call here.
      scope.removeContentTypeParser('application/json');
      scope.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => {
        const text = (body as string).trim();
        try {
          done(null, text === '' ? undefined : JSON.parse(text));
        } catch (err) {
          done(Object.assign(err as Error, { statusCode: 400 }), undefined);
        }
      });

      scope.get<{ Params: { e164: string } }>('/phones/:e164', async (request, reply) => {
        const e164 = normalizePhone(request.params.e164);
        if (!isE164(e164)) return badRequest(reply, `not an E.164 number: ${request.params.e164}`);
        const phone = state.phones.get(e164);
        const arrivals = phone?.arrivals ?? [];
        let messages = 0;
        let duplicates = 0;
        for (const a of arrivals) {
          if (a.kind === 'message') messages += 1;
          duplicates += a.count - 1;
        }
        return {
          e164,
          rcs: phone?.rcs ?? state.defaultRcs(e164),
          online: phone?.online ?? true,
          // Effective values: the phone's own, else the emulator-wide defaults.
          ...state.lifecycle.settingsOf(phone),
          held: phone?.held.length ?? 0,
          arrivals: arrivals.map(arrivalView),
          // Distinct IDs per kind; `duplicates` = suppressed repeats of those IDs.
          received: { messages, events: arrivals.length - messages, duplicates },
        };
      });

      scope.put<{ Params: { e164: string } }>('/phones/:e164', async (request, reply) => {
        const e164 = normalizePhone(request.params.e164);
        if (!isE164(e164)) return badRequest(reply, `not an E.164 number: ${request.params.e164}`);
        try {
          const phone = state.setPhone(e164, checkPhonePatch(request.body));
          // The phone's own delivery settings only; GET shows the effective ones.
          return { e164, rcs: phone.rcs, online: phone.online, ...phone.settings };
        } catch (err) {
          return badRequest(reply, (err as Error).message);
        }
      });

      scope.get('/defaults', async () => state.defaults());

      scope.put('/defaults', async (request, reply) => {
        try {
          return state.setDefaults(checkDefaults(request.body));
        } catch (err) {
          return badRequest(reply, (err as Error).message);
        }
      });

      scope.get('/counters', async () => state.countersView());

      scope.put<{ Params: { agentId: string } }>('/quotas/:agentId', async (request, reply) => {
        try {
          const q = checkQuotaConfig(request.body);
          state.setQuota(request.params.agentId, q);
          return { agentId: request.params.agentId, ...q, burst: state.quotas.get(request.params.agentId)?.capacity };
        } catch (err) {
          return badRequest(reply, (err as Error).message);
        }
      });

      scope.delete<{ Params: { agentId: string } }>('/quotas/:agentId', async (request) => ({
        agentId: request.params.agentId,
        deleted: state.deleteQuota(request.params.agentId),
      }));

      registerSettingRoutes(
        scope,
        '/faults',
        { read: () => state.faults.snapshot(), set: (config) => state.faults.set(config), clear: () => state.faults.clear() },
        checkFaultConfig,
      );
      registerSettingRoutes(
        scope,
        '/token/faults',
        {
          read: () => state.tokenFaults.snapshot(),
          set: (config) => state.tokenFaults.set(config),
          clear: () => state.tokenFaults.clear(),
        },
        checkTokenFaults,
      );

      // Every accepted message in one answer (fault suites compare thousands at once): its fate, not its body.
      scope.get<{ Querystring: { agentId?: string } }>('/messages', async (request) => {
        const agentId = request.query.agentId;
        const out = [];
        for (const m of state.messages.values()) {
          if (agentId !== undefined && m.agentId !== agentId) continue;
          out.push({
            messageId: m.id,
            agentId: m.agentId,
            phone: m.phone,
            count: m.count,
            receivedAt: m.receivedAt,
            delivered: m.delivered,
            deliveredAt: m.deliveredAt ?? null,
            read: m.read,
            revoked: m.revoked,
            ttlEvent: m.ttlEvent ?? null,
          });
        }
        return { messages: out };
      });

      scope.get<{ Params: { messageId: string }; Querystring: { agentId?: string } }>('/messages/:messageId', async (request, reply) => {
        const { messageId } = request.params;
        const agentId = request.query.agentId;
        const found = agentId === undefined ? state.messages.get(messageId) : state.usedId(agentId, messageId);
        if (found === undefined || found.kind !== 'message') {
          return reply.code(404).send(googleError('NOT_FOUND', `no message ${messageId}${agentId ? ` for agent ${agentId}` : ''}`));
        }
        const m = found as MessageArrival;
        return { ...m, messageId: m.id };
      });

      scope.post('/reset', async () => {
        state.reset();
        return { reset: true };
      });

      registerWebhookControl(scope, state, normalizePhone);
      registerSmsControl(scope, state, normalizePhone);
    },
    { prefix: '/_emulator' },
  );
}
