/**
 * The OpenAPI document (GET /openapi.json) and its browsable UI (/docs). Body
 * schemas are generated from the same zod schemas jobs/ validates with, so
 * the document cannot drift from what the service accepts; Fastify does not
 * validate with them (zod does, and answers in the one error shape).
 */
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { sendEventInput } from '../../jobs/send-event.ts';
import { sendMessageInput } from '../../jobs/send-message.ts';
import { MAX_LISTED_PROBLEMS } from '../errors.ts';

/** Fields RBM sets in its answers: the schema refuses them, the document leaves them out. */
const OUTPUT_ONLY = ['name', 'sendTime', 'richMessageClassification', 'totalPayloadSizeBytes', 'carrier'];

function documented(schema: unknown): Record<string, unknown> {
  const json = z.toJSONSchema(schema as z.ZodType, { unrepresentable: 'any', io: 'input' }) as Record<string, unknown> & {
    properties?: Record<string, unknown>;
  };
  delete json.$schema;
  for (const key of OUTPUT_ONLY) delete json.properties?.[key];
  return json;
}

export const docSchemas = {
  message: documented(sendMessageInput),
  event: documented(sendEventInput),
};

const error = {
  type: 'object',
  properties: {
    error: {
      type: 'object',
      properties: {
        code: { type: 'string' },
        message: { type: 'string' },
        details: {
          type: 'array',
          maxItems: MAX_LISTED_PROBLEMS,
          description:
            `the first ${MAX_LISTED_PROBLEMS} problems at most, in input order; ` +
            `for a batch the path starts with the item ("messages.37.to")`,
          items: { type: 'object', properties: { path: { type: 'string' }, problem: { type: 'string' } } },
        },
        problemCount: {
          type: 'integer',
          description: 'how many problems there were in all; more than details.length when the list was cut',
        },
      },
    },
  },
} as const;

/** Route schemas for documentation: tags, summary, body, and the error answers. */
export function doc(tag: string, summary: string, body?: Record<string, unknown>) {
  return {
    schema: {
      tags: [tag],
      summary,
      ...(body ? { body } : {}),
      response: { '4XX': { description: 'refused; see error.code and error.details', ...error } },
    },
  };
}

/** Registers the document and the UI; call before the routes, which it collects as they are added. */
export function registerOpenApi(app: FastifyInstance): void {
  app.register(swagger, {
    openapi: {
      info: { title: 'rbm-dispatch', description: 'Queue-driven RCS Business Messaging with SMS fallback.', version: '0.1.0' },
      components: { securitySchemes: { apiKey: { type: 'http', scheme: 'bearer' } } },
      security: [{ apiKey: [] }],
    },
  });
  app.register(swaggerUi, { routePrefix: '/docs' });
  app.register(async (scope) => {
    scope.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  });
}
