/**
 * Agent events: POST /v1/events and POST /v1/events:batch (READ receipts and
 * typing indicators, up to 10,000 per call, all or nothing).
 */
import type { FastifyInstance } from 'fastify';
import { keyScopeOf, refuseForeignAgents } from './auth.ts';
import { bulkItems, underField } from './bulk.ts';
import { idempotencyHeader } from './message-routes.ts';
import type { ApiOptions } from './options.ts';
import type { EnqueuedEvent } from '../queue/producer.ts';
import { doc, docSchemas } from './openapi.ts';

export async function eventRoutes(app: FastifyInstance, opts: ApiOptions): Promise<void> {
  const { producer } = opts;

  app.post('/v1/events', doc('events', 'Send a READ receipt or IS_TYPING', docSchemas.event), async (request, reply) => {
    const body = request.body as Record<string, unknown> | null;
    const key = idempotencyHeader(request);
    const input = key && body && typeof body === 'object' && body.idempotencyKey === undefined ? { ...body, idempotencyKey: key } : body;
    if (refuseForeignAgents(request, reply, producer, [input], '')) return reply;
    return reply.code(202).send(await producer.sendEvent(input as never, keyScopeOf(request)));
  });

  app.post(
    '/v1/events::batch',
    {
      bodyLimit: 8 * 1024 * 1024,
      ...doc('events', 'Send up to 10,000 events, all or nothing', {
        type: 'object',
        properties: { events: { type: 'array', maxItems: 10_000, items: docSchemas.event } },
        required: ['events'],
      }),
    },
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
        results = await producer.sendEvents(keyed as never, keyScopeOf(request));
      } catch (err) {
        throw underField(err, 'events');
      }
      return reply.code(202).send({ eventIds: results.map((r) => r.eventId), duplicates: results.filter((r) => r.duplicate).length });
    },
  );
}
