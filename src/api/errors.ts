/**
 * One error shape for every HTTP answer:
 * { "error": { "code", "message", "details": [ { "path", "problem" } ], "problemCount" } }
 * `details` lists at most MAX_LISTED_PROBLEMS problems, in input order;
 * `problemCount` says how many there were, so details.length < problemCount
 * means the list was cut. An answer stays a few KB whatever came in.
 */
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { maskPhonesIn } from '../mask.ts';
import { AmbiguousMessageIdError, DispatchError, ErrorCodes, MAX_LISTED_PROBLEMS, PayloadError, RbmApiError, RbmAuthError, RbmNetworkError, UnknownAgentError } from '../errors.ts';

export interface ErrorBody {
  error: { code: string; message: string; details: Array<{ path: string; problem: string }>; problemCount: number };
}

/** `problemCount`: the total when `details` holds only the first problems. */
export function errorBody(code: string, message: string, details: ErrorBody['error']['details'] = [], problemCount = details.length): ErrorBody {
  const listed = details.length > MAX_LISTED_PROBLEMS ? details.slice(0, MAX_LISTED_PROBLEMS) : details;
  return { error: { code, message, details: listed, problemCount: Math.max(problemCount, details.length) } };
}

/** Fastify's own refusals, renamed into our catalogue so callers see one set of codes. */
const FASTIFY_CODES: Record<string, { status: number; code: string; message: string }> = {
  FST_ERR_CTP_INVALID_JSON_BODY: { status: 400, code: 'BODY_INVALID_JSON', message: 'expected a JSON body, got text that does not parse as JSON' },
  FST_ERR_CTP_EMPTY_JSON_BODY: { status: 400, code: 'BODY_INVALID_JSON', message: 'expected a JSON body, got an empty body' },
  FST_ERR_CTP_BODY_TOO_LARGE: { status: 413, code: 'BODY_TOO_LARGE', message: 'the body is larger than this endpoint accepts' },
  FST_ERR_BAD_URL: { status: 400, code: 'BAD_URL', message: 'the path does not decode as a URL' },
  FST_ERR_MAX_PARAM_LENGTH: { status: 414, code: 'URI_TOO_LONG', message: 'a path parameter is longer than 100 characters' },
  FST_ERR_CTP_INVALID_MEDIA_TYPE: { status: 415, code: 'UNSUPPORTED_MEDIA_TYPE', message: 'expected Content-Type: application/json' },
};

/** Maps anything thrown in a route to a status and the one error shape. */
export function toHttpError(err: unknown): { status: number; body: ErrorBody } {
  if (err instanceof PayloadError) return { status: 400, body: errorBody(err.code, err.message, [...err.problems], err.problemCount) };
  if (err instanceof UnknownAgentError) return { status: 400, body: errorBody(err.code, err.message, [{ path: 'agentId', problem: err.message }]) };
  if (err instanceof AmbiguousMessageIdError) return { status: 409, body: errorBody(err.code, err.message, [{ path: 'agentId', problem: `one of ${err.agents.join(', ')}` }]) };
  if (err instanceof DispatchError && err.code === ErrorCodes.REDIS_UNAVAILABLE) return { status: 503, body: errorBody(err.code, err.message) };
  // RBM failed a call made for this request (a revoke's DELETE): the upstream's fault, worth a retry.
  if (err instanceof RbmApiError || err instanceof RbmNetworkError || err instanceof RbmAuthError) {
    return { status: 502, body: errorBody(err.code, `RBM did not complete the call: ${maskPhonesIn(err.message)}`) };
  }
  const fe = err as Partial<FastifyError>;
  const known = fe.code && Object.hasOwn(FASTIFY_CODES, fe.code) ? FASTIFY_CODES[fe.code] : undefined;
  if (known) return { status: known.status, body: errorBody(known.code, known.message) };
  if (fe.statusCode && fe.statusCode >= 400 && fe.statusCode < 500) {
    return { status: fe.statusCode, body: errorBody('BAD_REQUEST', fe.message ?? 'bad request') };
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
