/**
 * A Twilio-compatible SMS endpoint, so the service's SMS fallback can be
 * tested against real HTTP: POST /2010-04-01/Accounts/:accountSid/Messages.json
 * (form-encoded, Basic auth), Twilio's error codes and idempotency headers.
 * Control routes (under /_emulator): GET /sms, GET /sms/:e164,
 * GET|PUT|DELETE /sms/faults.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { credentialsOf } from '../authorization.ts';
import { checkSmsFaults, messageSid, numSegments, rfc2822, smsView, twilioError, type SmsFaultKind, type SmsRecord } from './sms.ts';
import { registerSettingRoutes } from './setting-routes.ts';
import type { EmulatorState } from './state.ts';
import { maskPhone } from '../mask.ts';
import { isE164 } from './validate.ts';

const API = '/2010-04-01';

function header(request: FastifyRequest, name: string): string | undefined {
  const v = request.headers[name];
  return typeof v === 'string' && v !== '' ? v : undefined;
}

/** HTTP Basic with the path's account SID as user; Twilio accepts the auth token here, any non-empty one will do. */
function authorized(request: FastifyRequest, accountSid: string): boolean {
  const basic = credentialsOf(request.headers.authorization, 'Basic');
  if (basic === undefined) return false;
  const decoded = Buffer.from(basic, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon > 0 && decoded.slice(0, colon) === accountSid && colon < decoded.length - 1;
}

function fault(request: FastifyRequest, reply: FastifyReply, kind: SmsFaultKind): FastifyReply {
  if (kind === 'reset') {
    reply.hijack();
    request.raw.socket.destroy();
    return reply;
  }
  if (kind === '429') return reply.code(429).send(twilioError(429, 20429, 'Too Many Requests'));
  if (kind === '400') return reply.code(400).send(twilioError(400, 21610, 'Attempt to send to unsubscribed recipient'));
  if (kind === '503') return reply.code(503).send(twilioError(503, 20503, 'Service Unavailable'));
  return reply.code(500).send(twilioError(500, 20500, 'An internal server error has occurred'));
}

export function registerSmsRoutes(app: FastifyInstance, state: EmulatorState): void {
  app.register(async (scope) => {
    scope.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, body, done) => {
      done(null, Object.fromEntries(new URLSearchParams(body as string)));
    });
    // Twilio's error shape here, not Google's: an SMS client parses this one.
    scope.setErrorHandler((err: { statusCode?: number; message?: string }, _request, reply) => {
      const status = err.statusCode !== undefined && err.statusCode < 500 ? 400 : 500;
      return reply.code(status).send(twilioError(status, status === 400 ? 20001 : 20500, err.message ?? 'Invalid request.'));
    });

    scope.post<{ Params: { accountSid: string } }>(`${API}/Accounts/:accountSid/Messages.json`, async (request, reply) => {
      const { accountSid } = request.params;
      if (!authorized(request, accountSid)) {
        reply.header('www-authenticate', 'Basic realm="Twilio API"');
        return reply.code(401).send(twilioError(401, 20003, 'Authenticate'));
      }
      const kind = state.sms.pickFault();
      if (kind !== undefined) return fault(request, reply, kind);

      const key = header(request, 'idempotency-key') ?? header(request, 'i-twilio-idempotency-token');
      const seen = key === undefined ? undefined : state.sms.byKey(accountSid, key);
      if (seen !== undefined) {
        state.counters.smsDuplicates += 1;
        return reply.code(201).send(seen.resource);
      }

      const form = (typeof request.body === 'object' && request.body !== null ? request.body : {}) as Record<string, string | undefined>;
      const to = form.To ?? '';
      if (!isE164(to))
        return reply.code(400).send(twilioError(400, 21211, `The 'To' number ${maskPhone(to)} is not a valid phone number.`));
      const from = form.From || null;
      const messagingServiceSid = form.MessagingServiceSid || null;
      if (from === null && messagingServiceSid === null)
        return reply.code(400).send(twilioError(400, 21603, "A 'From' phone number is required."));
      const body = form.Body ?? '';
      if (body === '') return reply.code(400).send(twilioError(400, 21602, 'Message body is required.'));

      const now = Date.now();
      const sid = messageSid();
      const uri = `${API}/Accounts/${accountSid}/Messages/${sid}.json`;
      const created = rfc2822(now);
      const resource = {
        account_sid: accountSid,
        api_version: '2010-04-01',
        body,
        date_created: created,
        date_sent: null,
        date_updated: created,
        direction: 'outbound-api',
        error_code: null,
        error_message: null,
        from,
        messaging_service_sid: messagingServiceSid,
        num_media: '0',
        num_segments: String(numSegments(body)),
        price: null,
        price_unit: 'USD',
        sid,
        status: 'queued',
        subresource_uris: { media: `${API}/Accounts/${accountSid}/Messages/${sid}/Media.json` },
        to,
        uri,
      };
      const r: SmsRecord = { sid, accountSid, to, from, messagingServiceSid, body, receivedAt: now, resource };
      state.sms.record(r, key);
      state.counters.smsReceived += 1;
      state.events.emit('sms', r);
      return reply.code(201).send(resource);
    });
  });
}

/** The sink's control routes, added to the /_emulator scope by control-routes.ts. */
export function registerSmsControl(scope: FastifyInstance, state: EmulatorState, normalizePhone: (raw: string) => string): void {
  scope.get('/sms', async () => ({
    messages: state.sms.messages.map(smsView),
    perNumber: Object.fromEntries([...state.sms.perNumber].map(([to, list]) => [to, list.length])),
  }));

  registerSettingRoutes(
    scope,
    '/sms/faults',
    { read: () => state.sms.faults(), set: (failNext) => state.sms.setFaults(failNext), clear: () => state.sms.setFaults([]) },
    checkSmsFaults,
  );

  scope.get<{ Params: { e164: string } }>('/sms/:e164', async (request) => {
    const e164 = normalizePhone(request.params.e164);
    const list = state.sms.perNumber.get(e164) ?? [];
    return { e164, count: list.length, messages: list.map(smsView) };
  });
}
