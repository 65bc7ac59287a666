/**
 * One error shape for every HTTP answer:
 * { "error": { "code", "message", "details": [ { "path", "problem" } ], "problemCount" } }
 * `details` lists at most MAX_LISTED_PROBLEMS problems, in input order;
 * `problemCount` says how many there were, so details.length < problemCount
 * means the list was cut. An answer stays a few KB whatever came in.
 * Its status is the code's one status in the catalogue (src/errors.ts): routes
 * answer with sendCode(reply, code, ...), never with a status of their own.
 */
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { maskPhonesIn } from '../mask.ts';
import {
  AgentDirectoryError,
  AmbiguousMessageIdError,
  DispatchError,
  ErrorCodes,
  MAX_LISTED_PROBLEMS,
  PayloadError,
  RbmApiError,
  RbmAuthError,
  RbmNetworkError,
  statusOf,
  UnknownAgentError,
  type HttpCode,
} from '../errors.ts';

export interface ErrorBody {
  error: { code: HttpCode; message: string; details: Array<{ path: string; problem: string }>; problemCount: number };
}

type Details = ErrorBody['error']['details'];

/**
 * The body only; answer with sendCode(), which sets the code's status.
 * `problemCount`: the total when `details` holds only the first problems.
 */
export function errorBody(code: HttpCode, message: string, details: Details = [], problemCount = details.length): ErrorBody {
  const listed = details.length > MAX_LISTED_PROBLEMS ? details.slice(0, MAX_LISTED_PROBLEMS) : details;
  return { error: { code, message, details: listed, problemCount: Math.max(problemCount, details.length) } };
}

/** Answers a refusal: the code's status from the catalogue, the one error shape. */
export function sendCode(
  reply: FastifyReply,
  code: HttpCode,
  message: string,
  details: Details = [],
  problemCount = details.length,
): FastifyReply {
  return reply.code(statusOf(code)).send(errorBody(code, message, details, problemCount));
}

/** Fastify's own refusals, renamed into our catalogue so callers see one set of codes. */
const FASTIFY_CODES: Record<string, { code: HttpCode; message: string }> = {
  FST_ERR_CTP_INVALID_JSON_BODY: { code: 'BODY_INVALID_JSON', message: 'expected a JSON body, got text that does not parse as JSON' },
  FST_ERR_CTP_EMPTY_JSON_BODY: { code: 'BODY_INVALID_JSON', message: 'expected a JSON body, got an empty body' },
  FST_ERR_CTP_BODY_TOO_LARGE: { code: 'BODY_TOO_LARGE', message: 'the body is larger than this endpoint accepts' },
  FST_ERR_BAD_URL: { code: 'BAD_URL', message: 'the path does not decode as a URL' },
  FST_ERR_MAX_PARAM_LENGTH: { code: 'URI_TOO_LONG', message: 'a path parameter is longer than 100 characters' },
  FST_ERR_CTP_INVALID_MEDIA_TYPE: { code: 'UNSUPPORTED_MEDIA_TYPE', message: 'expected Content-Type: application/json' },
};

/**
 * Any other 4xx of the framework or a plugin (@fastify/static under /docs and
 * /admin/queues answers 403, 412, 416): the catalogue's code for that status,
 * with the framework's message; BAD_REQUEST (400) for a status it has none for.
 */
const BY_STATUS: ReadonlyMap<number, HttpCode> = new Map(
  (
    [
      'BAD_REQUEST',
      'UNAUTHENTICATED',
      'FORBIDDEN',
      'NOT_FOUND',
      'REQUEST_TIMEOUT',
      'PRECONDITION_FAILED',
      'BODY_TOO_LARGE',
      'URI_TOO_LONG',
      'UNSUPPORTED_MEDIA_TYPE',
      'RANGE_NOT_SATISFIABLE',
      'HEADERS_TOO_LARGE',
    ] as const
  ).map((code) => [statusOf(code), code]),
);

function answer(code: HttpCode, message: string, details?: Details, problemCount?: number): { status: number; body: ErrorBody } {
  return { status: statusOf(code), body: errorBody(code, message, details, problemCount) };
}

/** Maps anything thrown in a route to a status and the one error shape. */
export function toHttpError(err: unknown): { status: number; body: ErrorBody } {
  if (err instanceof PayloadError) return answer(err.code, err.message, [...err.problems], err.problemCount);
  if (err instanceof UnknownAgentError) return answer(ErrorCodes.UNKNOWN_AGENT, err.message, [{ path: 'agentId', problem: err.message }]);
  if (err instanceof AmbiguousMessageIdError)
    return answer(ErrorCodes.MESSAGE_ID_AMBIGUOUS, err.message, [{ path: 'agentId', problem: `one of ${err.agents.join(', ')}` }]);
  if (err instanceof AgentDirectoryError) return answer(err.code, err.message, [{ path: 'agentId', problem: err.message }]);
  if (err instanceof DispatchError && err.code === ErrorCodes.REDIS_UNAVAILABLE) return answer(err.code, err.message);
  // The archive does not answer (history reads): its message names no secret (the URL's password is masked).
  if (err instanceof DispatchError && err.code === ErrorCodes.HISTORY_UNAVAILABLE) return answer(err.code, err.message);
  // RBM failed a call made for this request (a revoke's DELETE): the upstream's fault, worth a retry.
  if (err instanceof RbmApiError || err instanceof RbmNetworkError || err instanceof RbmAuthError) {
    return answer(err.code, `RBM did not complete the call: ${maskPhonesIn(err.message)}`);
  }
  const fe = err as Partial<FastifyError>;
  const known = fe.code && Object.hasOwn(FASTIFY_CODES, fe.code) ? FASTIFY_CODES[fe.code] : undefined;
  if (known) return answer(known.code, known.message);
  if (fe.statusCode && fe.statusCode >= 400 && fe.statusCode < 500) {
    return answer(BY_STATUS.get(fe.statusCode) ?? ErrorCodes.BAD_REQUEST, fe.message ?? 'bad request');
  }
  const redisDown = /Stream isn't writeable|Connection is closed|ECONNREFUSED|enableOfflineQueue/.test(String(fe.message));
  if (redisDown) return answer(ErrorCodes.REDIS_UNAVAILABLE, 'the queue is unavailable; nothing was queued, try again');
  return answer(ErrorCodes.INTERNAL, 'internal error');
}

export function sendError(reply: FastifyReply, err: unknown, request?: FastifyRequest): FastifyReply {
  const { status, body } = toHttpError(err);
  if (status >= 500) request?.log.error({ err }, 'request failed');
  return reply.code(status).send(body);
}
