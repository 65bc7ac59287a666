/**
 * Agent events: POST /v1/events and POST /v1/events:batch (READ receipts and
 * typing indicators, up to 10,000 per call, all or nothing).
 */
import type { FastifyPluginAsync } from 'fastify';
import type { SendEventInput } from '../../jobs/send-event.ts';
import type { EnqueuedEvent, Producer } from '../queue/producer.ts';
import { keyScopeOf, refuseForeignAgents } from './auth.ts';
import { bulkItems, bulkRoute, underField } from './bulk.ts';
import { idempotencyHeader, withIdempotencyKey } from './idempotency.ts';
import { doc, docSchemas } from './openapi.ts';

export interface EventRoutesOptions {
  producer: Pick<Producer, 'sendEvent' | 'sendEvents' | 'resolveAgent'>;
}

// Request bodies are typed as what the producer takes: Fastify does not validate them (the API's validator is
// off), the producer does, with the zod schemas of jobs/, before anything is queued.

export const eventRoutes: FastifyPluginAsync<EventRoutesOptions> = async (app, { producer }) => {
  app.post<{ Body: SendEventInput }>(
    '/v1/events',
    doc('events', 'Send a READ receipt or IS_TYPING', docSchemas.event),
    async (request, reply) => {
      const input = withIdempotencyKey(request, request.body);
      if (refuseForeignAgents(request, reply, producer, [input], '')) return reply;
      return reply.code(202).send(await producer.sendEvent(input, keyScopeOf(request)));
    },
  );

  app.post<{ Body: { events: SendEventInput[] } }>(
    '/v1/events::batch',
    bulkRoute('events', 'Send up to 10,000 events, all or nothing', docSchemas.event, 8 * 1024 * 1024),
    async (request, reply) => {
      const items = bulkItems(request.body, 'events');
      if (refuseForeignAgents(request, reply, producer, items, 'events')) return reply;
      const key = idempotencyHeader(request);
      const keyed = key
        ? items.map((e, i) =>
            e && typeof e === 'object' && !('idempotencyKey' in e) && !('eventId' in e) ? { ...e, idempotencyKey: `${key}:${i}` } : e,
          )
        : items;
      let results: EnqueuedEvent[];
      try {
        results = await producer.sendEvents(keyed, keyScopeOf(request));
      } catch (err) {
        throw underField(err, 'events');
      }
      return reply.code(202).send({ eventIds: results.map((r) => r.eventId), duplicates: results.filter((r) => r.duplicate).length });
    },
  );
};
