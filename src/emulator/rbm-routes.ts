/**
 * The RBM REST paths (spec §1.4): agentMessages create/delete, agentEvents
 * create and getCapabilities. Every call runs the same gate in the platform's
 * order: auth 401 → agentId 403 → input 400 → quota 429 → injected fault →
 * duplicate ID → reachability 404 → accept. An accepted message then lives on
 * the emulator's clock (lifecycle.ts). Kept cheap: no per-request logging.
 */
import { setTimeout as delay } from 'node:timers/promises';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { isAcceptThen, type Fault } from './faults.ts';
import { Messages, agentLookupFailed, googleError } from './google-error.ts';
import type { Arrival, EmulatorState, MessageArrival } from './state.ts';
import { checkAgentEvent, checkAgentMessage, checkId, checkPhone, expireTimeOf, queryString } from './validate.ts';

/** 250 KB: the documented ceiling of a stringified AgentMessage (spec §2.7). */
const MAX_BODY_BYTES = 250 * 1024;
const INVALID_BODY = Symbol('invalid-body');

export const CAPABILITY_FEATURES = [
  'RICHCARD_STANDALONE',
  'RICHCARD_CAROUSEL',
  'ACTION_CREATE_CALENDAR_EVENT',
  'ACTION_DIAL',
  'ACTION_OPEN_URL',
  'ACTION_SHARE_LOCATION',
  'ACTION_VIEW_LOCATION',
  'ACTION_OPEN_URL_IN_WEBVIEW',
  'PDF_IN_RICH_CARDS',
] as const;

interface GateSpec {
  idName: 'messageId' | 'eventId' | 'requestId';
  /** The ID comes from the path (revoke) instead of the query. */
  idInPath?: boolean;
  checkBody?: (body: unknown) => string | undefined;
  /** Only sends (messages and events) draw on the agent's quota: they are what the service's per-agent limiter paces. */
  quota?: boolean;
}

interface Call {
  agentId: string;
  phone: string;
  id: string;
  /** An accept-then-* fault, applied once the call has been processed. */
  after?: Fault;
}

export function messageResource(m: MessageArrival): Record<string, unknown> {
  const r: Record<string, unknown> = {
    name: `phones/${m.phone}/agentMessages/${m.id}`,
    sendTime: m.sendTime,
    contentMessage: m.body.contentMessage,
  };
  if (m.body.messageTrafficType !== undefined) r.messageTrafficType = m.body.messageTrafficType;
  if (m.expireTime !== undefined) r.expireTime = m.expireTime;
  return r;
}

export function eventResource(e: Arrival): Record<string, unknown> {
  const r: Record<string, unknown> = { name: `phones/${e.phone}/agentEvents/${e.id}`, eventType: e.body.eventType };
  if (e.body.messageId !== undefined) r.messageId = e.body.messageId;
  r.sendTime = e.sendTime;
  return r;
}

export const resourceOf = (a: Arrival): Record<string, unknown> =>
  a.kind === 'message' ? messageResource(a as MessageArrival) : eventResource(a);

/** The request line and credentials as they came, so tests can check exactly what a client put on the wire. */
function wireOf(request: FastifyRequest): Arrival['wire'] {
  return { url: request.url, authorization: request.headers.authorization ?? '' };
}

export function registerRbmRoutes(app: FastifyInstance, state: EmulatorState): void {
  const counters = (): EmulatorState['counters'] => state.counters;

  function unauthorized(reply: FastifyReply): FastifyReply {
    counters().unauthorized += 1;
    reply.header('www-authenticate', 'Bearer realm="https://accounts.google.com/"');
    return reply.code(401).send(googleError('UNAUTHENTICATED', Messages.unauthenticated));
  }

  /** Answers with a fault; a reset destroys the socket and answers nothing, like a dropped connection. */
  function fail(request: FastifyRequest, reply: FastifyReply, fault: Fault, agentId: string): FastifyReply {
    const kind = fault.kind === 'accept-then-503' ? '503' : fault.kind === 'accept-then-reset' ? 'reset' : fault.kind;
    if (kind === 'reset') {
      reply.hijack();
      request.raw.socket.destroy();
      return reply;
    }
    if (fault.retryAfterSec !== undefined) reply.header('retry-after', String(fault.retryAfterSec));
    if (kind === '429') {
      counters().rateLimited += 1;
      state.agentCounters(agentId).rateLimited += 1;
      return reply.code(429).send(googleError('RESOURCE_EXHAUSTED', Messages.quota));
    }
    if (kind === '401') return unauthorized(reply);
    if (kind === '500') return reply.code(500).send(googleError('INTERNAL', Messages.internal));
    // Permanent refusals RBM gives for valid-looking requests (spec §4.2): a feature the device lacks, an agent not allowed.
    if (kind === '400')
      return reply.code(400).send(googleError('INVALID_ARGUMENT', 'The message uses a feature the device does not support.'));
    if (kind === '403') return reply.code(403).send(agentLookupFailed());
    return reply.code(503).send(googleError('UNAVAILABLE', Messages.unavailable));
  }

  function finish(request: FastifyRequest, reply: FastifyReply, call: Call, code: number, payload: unknown): FastifyReply {
    if (call.after !== undefined) return fail(request, reply, call.after, call.agentId);
    return reply.code(code).send(payload);
  }

  /** Runs the checks every RBM call shares; undefined means the reply is already decided. */
  async function gate(request: FastifyRequest, reply: FastifyReply, spec: GateSpec): Promise<Call | undefined> {
    counters().requests += 1;
    state.events.emit('request', { method: request.method, url: request.url });
    const latency = state.faults.latencyMs;
    if (latency > 0) await delay(latency);
    if (!state.oauth.acceptsBearer(request.headers.authorization)) {
      unauthorized(reply);
      return undefined;
    }
    const query = request.query as Record<string, unknown>;
    const agentId = queryString(query.agentId);
    if (agentId === undefined) {
      reply.code(403).send(agentLookupFailed());
      return undefined;
    }
    const params = request.params as { phone: string; messageId?: string };
    const id = spec.idInPath ? params.messageId : queryString(query[spec.idName]);
    const problem =
      checkPhone(params.phone) ??
      checkId(spec.idName, id) ??
      (request.body === INVALID_BODY ? 'Invalid JSON payload received.' : spec.checkBody?.(request.body));
    if (problem !== undefined) {
      reply.code(400).send(googleError('INVALID_ARGUMENT', problem));
      return undefined;
    }
    if (spec.quota) {
      const bucket = state.quotas.get(agentId);
      if (bucket !== undefined && !bucket.take()) {
        counters().rateLimited += 1;
        state.agentCounters(agentId).rateLimited += 1;
        const retryAfter = bucket.config.retryAfterSec;
        if (retryAfter !== undefined) reply.header('retry-after', String(retryAfter));
        reply.code(429).send(googleError('RESOURCE_EXHAUSTED', Messages.quota));
        return undefined;
      }
    }
    const call: Call = { agentId, phone: params.phone, id: id as string };
    const fault = state.faults.pick(agentId, params.phone);
    if (fault !== undefined) {
      counters().faultsInjected += 1;
      if (!isAcceptThen(fault.kind)) {
        fail(request, reply, fault, agentId);
        return undefined;
      }
      call.after = fault;
    }
    return call;
  }

  /** A reused ID (spec §4.3): not delivered again, answered per the configured duplicate mode. */
  function duplicate(request: FastifyRequest, reply: FastifyReply, call: Call, original: Arrival): FastifyReply {
    state.recordDuplicate(original);
    if (state.duplicateResponse === '409') {
      return finish(
        request,
        reply,
        call,
        409,
        googleError('ALREADY_EXISTS', `Requested entity already exists: ${call.id} was used by an earlier ${original.kind} of this agent.`),
      );
    }
    return finish(request, reply, call, 200, resourceOf(original));
  }

  function notReachable(request: FastifyRequest, reply: FastifyReply, call: Call): FastifyReply {
    counters().notReachable += 1;
    return finish(request, reply, call, 404, googleError('NOT_FOUND', Messages.notReachable));
  }

  /** A send (message or event): the gate with the quota, then a reused ID and an unreachable phone; undefined: answered. */
  async function admitSend(
    request: FastifyRequest,
    reply: FastifyReply,
    spec: { idName: 'messageId' | 'eventId'; checkBody: (body: unknown) => string | undefined },
  ) {
    const call = await gate(request, reply, { ...spec, quota: true });
    if (call === undefined) return undefined;
    const original = state.usedId(call.agentId, call.id);
    if (original !== undefined) {
      duplicate(request, reply, call, original);
      return undefined;
    }
    if (!state.isRcs(call.phone)) {
      notReachable(request, reply, call);
      return undefined;
    }
    return call;
  }

  /** What a message and an event record alike on first arrival. */
  function arrival<K extends Arrival['kind']>(kind: K, request: FastifyRequest, call: Call, now: number) {
    return {
      kind,
      id: call.id,
      agentId: call.agentId,
      phone: call.phone,
      body: request.body as Record<string, unknown>,
      sendTime: new Date(now).toISOString(),
      receivedAt: now,
      count: 1,
      arrivalTimes: [now],
      wire: wireOf(request),
    };
  }

  app.register(async (scope) => {
    // Own parsers: a bad body must reach the gate (so 401/403 still win over 400) instead of failing in Fastify's parser.
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('application/json', { parseAs: 'string', bodyLimit: MAX_BODY_BYTES }, (_req, body, done) => {
      try {
        done(null, JSON.parse(body as string));
      } catch {
        done(null, INVALID_BODY);
      }
    });
    scope.addContentTypeParser('*', { parseAs: 'string', bodyLimit: MAX_BODY_BYTES }, (_req, _body, done) => done(null, INVALID_BODY));
    scope.setErrorHandler((err: { statusCode?: number; message?: string }, _request, reply) => {
      const code = err.statusCode ?? 500;
      if (code < 500) return reply.code(400).send(googleError('INVALID_ARGUMENT', err.message ?? 'Invalid request.'));
      return reply.code(500).send(googleError('INTERNAL', Messages.internal));
    });

    scope.post('/v1/phones/:phone/agentMessages', async (request, reply) => {
      const call = await admitSend(request, reply, { idName: 'messageId', checkBody: checkAgentMessage });
      if (call === undefined) return reply;
      const now = Date.now();
      const m: MessageArrival = { ...arrival('message', request, call, now), delivered: false, revoked: false, read: false };
      const expireTime = expireTimeOf(m.body, now);
      if (expireTime !== undefined) {
        m.expireTime = expireTime;
        m.expireAtMs = Date.parse(expireTime);
      }
      state.recordArrival(m);
      // Delivery waits for a timer (at the earliest right after this answer), or for the phone to come online.
      state.lifecycle.accept(m, now);
      return finish(request, reply, call, 200, messageResource(m));
    });

    scope.post('/v1/phones/:phone/agentEvents', async (request, reply) => {
      const call = await admitSend(request, reply, { idName: 'eventId', checkBody: checkAgentEvent });
      if (call === undefined) return reply;
      const e: Arrival = arrival('event', request, call, Date.now());
      state.recordArrival(e);
      return finish(request, reply, call, 200, eventResource(e));
    });

    scope.delete('/v1/phones/:phone/agentMessages/:messageId', async (request, reply) => {
      const call = await gate(request, reply, { idName: 'messageId', idInPath: true });
      if (call === undefined) return reply;
      if (state.revoke(call.agentId, call.phone, call.id)) return finish(request, reply, call, 200, {});
      return finish(
        request,
        reply,
        call,
        404,
        googleError('NOT_FOUND', `Requested entity was not found: message ${call.id} is unknown or already delivered.`),
      );
    });

    scope.get('/v1/phones/:phone/capabilities', async (request, reply) => {
      const call = await gate(request, reply, { idName: 'requestId' });
      if (call === undefined) return reply;
      if (!state.isRcs(call.phone)) return notReachable(request, reply, call);
      return finish(request, reply, call, 200, { features: CAPABILITY_FEATURES });
    });
  });
}
