/**
 * POST /webhooks/rbm: RBM's signed callbacks in, a queued inbound job out,
 * 200 within milliseconds. Order of checks: verification handshake, body
 * shape (400; 413, 415), signature (401), then classify, dedupe and enqueue. Nothing is
 * written before every check has passed, so a refused request leaves nothing
 * behind; work on the event happens in the inbound worker.
 */
import type { FastifyError, FastifyPluginAsync } from 'fastify';
import type { InboundEventPayload } from '../../jobs/inbound-event.ts';
import { sendCode } from '../api/errors.ts';
import type { Logger } from '../logger.ts';
import { maskPhonesIn } from '../mask.ts';
import { agentOf, asHandshake, classify, dedupeIdOf, parseEnvelope, WebhookBodyError } from './envelope.ts';
import { tokenMatches, verifyWebhookData } from './signature.ts';

export const WEBHOOK_PATH = '/webhooks/rbm';

/** Where verified events go: a queue that remembers dedupe IDs. */
export interface InboundIntake {
  enqueue(event: InboundEventPayload, dedupeId: string | undefined): Promise<'queued' | 'duplicate'>;
}

export interface WebhookCounters {
  received: number;
  queued: number;
  duplicates: number;
  badSignature: number;
  malformed: number;
  unknownKind: number;
  handshakes: number;
}

export interface WebhookOptions {
  /** Client token per agent; '*' serves every agent. */
  clientTokens: Readonly<Record<string, string>>;
  /**
   * The agent directory's: an agent's own client token (set through the admin API), which comes before
   * clientTokens; and every token it holds, for the verification handshake. Read per request: changes apply at once.
   */
  directoryTokens?: { of(agentId: string): string | undefined; all(): readonly string[] };
  intake: InboundIntake;
  bodyLimitBytes: number;
  counters?: WebhookCounters;
  log?: Logger;
  now?: () => number;
  /** Seconds from RBM's sendTime to our receipt, for each queued event. */
  observeLag?: (seconds: number) => void;
}

export function newWebhookCounters(): WebhookCounters {
  return { received: 0, queued: 0, duplicates: 0, badSignature: 0, malformed: 0, unknownKind: 0, handshakes: 0 };
}

/** POST /webhooks/rbm: register it on the service's app with its options. */
export const webhookRoutes: FastifyPluginAsync<WebhookOptions> = async (app, opts) => {
  const counters = opts.counters ?? newWebhookCounters();
  const now = opts.now ?? Date.now;
  // A Map, not the object: an agentId of '__proto__' or 'toString' (it comes from the body) must find nothing, like any unknown agent.
  const tokenOf = new Map(Object.entries(opts.clientTokens));
  const anyAgent = tokenOf.get('*');
  const tokens = [...tokenOf.values()];

  // Own parser: a size limit of its own, and malformed JSON reported in our words.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'string', bodyLimit: opts.bodyLimitBytes }, (_req, body, done) => {
    try {
      done(null, JSON.parse(body as string));
    } catch {
      done(new WebhookBodyError('BODY_INVALID_JSON', 'expected a JSON body, got text that does not parse as JSON'), undefined);
    }
  });
  app.setErrorHandler((err: FastifyError | WebhookBodyError, request, reply) => {
    counters.malformed++;
    if (err instanceof WebhookBodyError) return sendCode(reply, err.code, err.message);
    // Statuses from the catalogue (src/errors.ts), as on the API: 413, and 415 for a body that is not JSON.
    if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE')
      return sendCode(reply, 'BODY_TOO_LARGE', `expected a body of at most ${opts.bodyLimitBytes} bytes`);
    if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE')
      return sendCode(reply, 'UNSUPPORTED_MEDIA_TYPE', 'expected Content-Type: application/json');
    if (err.code === 'FST_ERR_CTP_EMPTY_JSON_BODY') return sendCode(reply, 'BODY_INVALID_JSON', 'expected a JSON body, got an empty body');
    counters.malformed--;
    request.log.error({ err: maskPhonesIn(String(err.message)) }, 'webhook intake failed');
    // Not 200: RBM retries for 7 days, so nothing is lost while Redis is away.
    return sendCode(reply, 'UNAVAILABLE', 'could not queue the event; RBM will retry');
  });

  app.post(WEBHOOK_PATH, async (request, reply) => {
    counters.received++;
    const handshake = asHandshake(request.body);
    if (handshake) {
      counters.handshakes++;
      const known = opts.directoryTokens ? [...tokens, ...opts.directoryTokens.all()] : tokens;
      if (!tokenMatches(handshake.clientToken, known)) return reply.code(403).type('text/plain').send('unknown client token');
      return reply.code(200).type('text/plain').send(handshake.secret);
    }
    const envelope = parseEnvelope(request.body);
    const agentId = agentOf(envelope.payload, envelope.attributes);
    const signature = request.headers['x-goog-signature'];
    const token = agentId === undefined ? anyAgent : (opts.directoryTokens?.of(agentId) ?? tokenOf.get(agentId) ?? anyAgent);
    if (typeof signature !== 'string' || token === undefined || !verifyWebhookData(token, envelope.data, signature)) {
      counters.badSignature++;
      opts.log?.warn(
        { agentId, signed: typeof signature === 'string', tokenKnown: token !== undefined },
        'webhook refused: bad or missing X-Goog-Signature',
      );
      return sendCode(
        reply,
        'SIGNATURE_INVALID',
        "expected X-Goog-Signature: base64 HMAC-SHA512 of message.data with the agent's client token",
      );
    }
    const kind = classify(envelope.payload, envelope.attributes);
    if (kind === 'unknown' || agentId === undefined) {
      // Spec §6.7: log and acknowledge, or RBM would retry it for a week.
      counters.unknownKind++;
      opts.log?.warn(
        { agentId, keys: Object.keys(envelope.payload).slice(0, 20) },
        'webhook payload of unknown kind: acknowledged, not processed',
      );
      return reply.code(200).send();
    }
    const outcome = await opts.intake.enqueue(
      {
        kind,
        agentId,
        payload: envelope.payload,
        receivedAt: now(),
        ...(envelope.envelopeMessageId ? { envelopeMessageId: envelope.envelopeMessageId } : {}),
      },
      dedupeIdOf(kind, envelope.payload, envelope.envelopeMessageId),
    );
    if (outcome === 'duplicate') counters.duplicates++;
    else {
      counters.queued++;
      const sent = typeof envelope.payload.sendTime === 'string' ? Date.parse(envelope.payload.sendTime) : Number.NaN;
      if (opts.observeLag && !Number.isNaN(sent)) opts.observeLag((now() - sent) / 1000);
    }
    return reply.code(200).send();
  });
};
