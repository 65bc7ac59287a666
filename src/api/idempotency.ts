/**
 * The Idempotency-Key header of a send: the one place a route reads it, and
 * merges it into a single message or event that names no key of its own.
 */
import type { FastifyRequest } from 'fastify';

export function idempotencyHeader(request: FastifyRequest): string | undefined {
  const key = request.headers['idempotency-key'];
  return typeof key === 'string' && key.length > 0 ? key : undefined;
}

/**
 * The body with the header's key when it names none; otherwise the body as it
 * came. The body is not validated yet (the producer does that), so anything but
 * an object passes through untouched, for the producer to refuse.
 */
export function withIdempotencyKey<T extends { idempotencyKey?: string }>(request: FastifyRequest, body: T): T {
  const key = idempotencyHeader(request);
  const raw: unknown = body;
  return key && raw && typeof raw === 'object' && body.idempotencyKey === undefined ? { ...body, idempotencyKey: key } : body;
}
