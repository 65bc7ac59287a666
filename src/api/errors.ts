/**
 * One error shape for every HTTP answer:
 * { "error": { "code", "message", "details": [ { "path", "problem" } ] } }
 */
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { DispatchError, ErrorCodes, PayloadError, UnknownAgentError } from '../errors.ts';

export interface ErrorBody {
  error: { code: string; message: string; details: Array<{ path: string; problem: string }> };
}

export function errorBody(code: string, message: string, details: ErrorBody['error']['details'] = []): ErrorBody {
  return { error: { code, message, details } };
}

/** Maps anything thrown in a route to a status and the one error shape. */
export function toHttpError(err: unknown): { status: number; body: ErrorBody } {
  if (err instanceof PayloadError) return { status: 400, body: errorBody(err.code, err.message, [...err.problems]) };
  if (err instanceof UnknownAgentError) return { status: 400, body: errorBody(err.code, err.message, [{ path: 'agentId', problem: err.message }]) };
  if (err instanceof DispatchError && err.code === ErrorCodes.REDIS_UNAVAILABLE) return { status: 503, body: errorBody(err.code, err.message) };
  const fe = err as Partial<FastifyError>;
  if (fe.statusCode && fe.statusCode >= 400 && fe.statusCode < 500) {
    // Fastify's own: bad JSON, wrong content type, body too large.
    return { status: fe.statusCode, body: errorBody(fe.code ?? 'BAD_REQUEST', fe.message ?? 'bad request') };
  }
  const redisDown = /Stream isn't writeable|Connection is closed|ECONNREFUSED|enableOfflineQueue/.test(String(fe.message));
  if (redisDown) return { status: 503, body: errorBody(ErrorCodes.REDIS_UNAVAILABLE, 'the queue is unavailable; nothing was queued, try again') };
  return { status: 500, body: errorBody('INTERNAL', 'internal error') };
}

export function sendError(reply: FastifyReply, err: unknown, request?: FastifyRequest): FastifyReply {
  const { status, body } = toHttpError(err);
  if (status >= 500) request?.log.error({ err }, 'request failed');
  return reply.code(status).send(body);
}
