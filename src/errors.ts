/**
 * The one catalogue of rbm-dispatch errors. Every error has a stable `code`
 * (never reused once retired), context fields and an optional `cause`.
 *
 * classify() is the single place that decides what a failure means for a job:
 *   retry        try again later with backoff, same IDs
 *   rateLimited  the agent is over quota: pause its queue, burn no attempt
 *   defer        no access token can be had (the token endpoint is down): try
 *                again after `retryAfterMs`, burn no attempt, since the outage
 *                says nothing about the job and may outlast its retries
 *   permanent    no retry can help (bad payload, 400, 403, exhausted)
 *   notRcs       the phone cannot be reached over RCS (404): a normal outcome
 */

export const ErrorCodes = {
  CONFIG_INVALID: 'CONFIG_INVALID',
  PAYLOAD_INVALID: 'PAYLOAD_INVALID',
  RBM_API: 'RBM_API',
  RBM_NETWORK: 'RBM_NETWORK',
  RBM_AUTH: 'RBM_AUTH',
  RBM_TOKEN_UNAVAILABLE: 'RBM_TOKEN_UNAVAILABLE',
  STATUS_TRANSITION: 'STATUS_TRANSITION',
  UNKNOWN_AGENT: 'UNKNOWN_AGENT',
  MESSAGE_ID_AMBIGUOUS: 'MESSAGE_ID_AMBIGUOUS',
  IDEMPOTENCY_CONFLICT: 'IDEMPOTENCY_CONFLICT',
  REDIS_UNAVAILABLE: 'REDIS_UNAVAILABLE',
  REDIS_UNSUITABLE: 'REDIS_UNSUITABLE',
  SMS_PROVIDER: 'SMS_PROVIDER',
  REVOKE_NOT_POSSIBLE: 'REVOKE_NOT_POSSIBLE',
  CALLBACK_DELIVERY: 'CALLBACK_DELIVERY',
  CALLBACK_REPLAY: 'CALLBACK_REPLAY',
  URL_FORBIDDEN: 'URL_FORBIDDEN',
  URL_UNRESOLVABLE: 'URL_UNRESOLVABLE',
  CALLBACK_PARKED: 'CALLBACK_PARKED',
  CALLBACK_EXPIRED: 'CALLBACK_EXPIRED',
} as const;
export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

export class DispatchError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DispatchError';
    this.code = code;
  }
}

/** One problem with an input, addressed by its path ("contentMessage.suggestions.3.reply.text"). */
export interface Problem {
  path: string;
  problem: string;
}

/** A bad env variable, a bad payload, a bad request: every problem at once. */
export class ConfigError extends DispatchError {
  readonly problems: readonly Problem[];
  constructor(problems: Problem[]) {
    super(
      ErrorCodes.CONFIG_INVALID,
      `invalid configuration:\n${problems.map((p) => `  ${p.path}: ${p.problem}`).join('\n')}`,
    );
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

/**
 * The most problems an error lists. A 10,000-item batch can hold 400,000
 * (a 171 MB answer, a gigabyte of heap); nobody reads past the first few, and
 * the count says how bad it is. Answers, logs and status records all stay small.
 */
export const MAX_LISTED_PROBLEMS = 100;
/** How many problems an error's message names; the rest are in `problems`. */
const NAMED_IN_MESSAGE = 3;

/** "invalid message: to: expected ...; ttl: expected ... (and 12 more problems)". */
function payloadMessage(what: string, problems: readonly Problem[], count: number): string {
  const named = problems.slice(0, NAMED_IN_MESSAGE).map((p) => `${p.path || '(root)'}: ${p.problem}`).join('; ');
  const rest = count - Math.min(problems.length, NAMED_IN_MESSAGE);
  return `invalid ${what}: ${named}${rest > 0 ? ` (and ${rest.toLocaleString('en-US')} more problem${rest === 1 ? '' : 's'})` : ''}`;
}

/**
 * A bad input: PAYLOAD_INVALID, or a more precise code for a refusal of a
 * well-formed value (URL_FORBIDDEN, URL_UNRESOLVABLE for a callback URL).
 */
export class PayloadError extends DispatchError {
  /** The first MAX_LISTED_PROBLEMS problems, in input order. */
  readonly problems: readonly Problem[];
  /** How many problems there were in all (≥ problems.length). */
  readonly problemCount: number;
  /** Which item of a bulk call failed (the first bad one), when it was one. */
  readonly index: number | undefined;
  /** `count`: the total when the caller kept only the first problems; `code`: a more precise refusal than PAYLOAD_INVALID. */
  constructor(what: string, problems: readonly Problem[], options: { index?: number | undefined; count?: number; code?: ErrorCode } = {}) {
    const { index } = options;
    const listed = problems.length > MAX_LISTED_PROBLEMS ? problems.slice(0, MAX_LISTED_PROBLEMS) : problems;
    const count = Math.max(options.count ?? problems.length, problems.length);
    super(options.code ?? ErrorCodes.PAYLOAD_INVALID, payloadMessage(index === undefined ? what : `${what} (item ${index})`, listed, count));
    this.name = 'PayloadError';
    this.problems = listed;
    this.problemCount = count;
    this.index = index;
  }
}

/** An answer from the RBM API that was not a success, parsed from Google's error JSON. */
export class RbmApiError extends DispatchError {
  readonly status: number;
  /** google.rpc status name, e.g. NOT_FOUND, RESOURCE_EXHAUSTED. */
  readonly rpcStatus: string;
  readonly retryAfterMs: number | undefined;
  readonly method: string;
  readonly path: string;
  constructor(fields: {
    status: number;
    rpcStatus: string;
    message: string;
    retryAfterMs?: number | undefined;
    method: string;
    path: string;
  }) {
    super(ErrorCodes.RBM_API, `RBM ${fields.method} answered ${fields.status} ${fields.rpcStatus}: ${fields.message}`);
    this.name = 'RbmApiError';
    this.status = fields.status;
    this.rpcStatus = fields.rpcStatus;
    this.retryAfterMs = fields.retryAfterMs;
    this.method = fields.method;
    this.path = fields.path;
  }
}

/** No HTTP answer at all: refused, reset, timed out. The request may or may not have arrived. */
export class RbmNetworkError extends DispatchError {
  constructor(message: string, options?: { cause?: unknown }, code: ErrorCode = ErrorCodes.RBM_NETWORK) {
    super(code, message, options);
    this.name = 'RbmNetworkError';
  }
}

/**
 * The OAuth token endpoint did not answer (5xx, timeout, refused), so no call
 * could be made. `retryAfterMs`: when the token source will ask it again.
 */
export class RbmTokenUnavailableError extends RbmNetworkError {
  readonly retryAfterMs: number;
  constructor(message: string, fields: { retryAfterMs: number; cause?: unknown }) {
    super(message, { cause: fields.cause }, ErrorCodes.RBM_TOKEN_UNAVAILABLE);
    this.name = 'RbmTokenUnavailableError';
    this.retryAfterMs = fields.retryAfterMs;
  }
}

export class RbmAuthError extends DispatchError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(ErrorCodes.RBM_AUTH, message, options);
    this.name = 'RbmAuthError';
  }
}

export class StatusTransitionError extends DispatchError {
  readonly messageId: string;
  readonly from: string | null;
  readonly to: string;
  constructor(messageId: string, from: string | null, to: string) {
    super(ErrorCodes.STATUS_TRANSITION, `message ${messageId}: no edge ${from ?? '(none)'} → ${to}`);
    this.name = 'StatusTransitionError';
    this.messageId = messageId;
    this.from = from;
    this.to = to;
  }
}

export class UnknownAgentError extends DispatchError {
  readonly agentId: string;
  constructor(agentId: string, known: readonly string[]) {
    super(ErrorCodes.UNKNOWN_AGENT, `unknown agent '${agentId}': expected one of ${known.join(', ') || '(none configured)'}`);
    this.name = 'UnknownAgentError';
    this.agentId = agentId;
  }
}

/**
 * One message ID names messages of several agents the caller may use (IDs live
 * per agent, as in RBM): the caller must say which, with agentId.
 */
export class AmbiguousMessageIdError extends DispatchError {
  readonly messageId: string;
  readonly agents: readonly string[];
  constructor(messageId: string, agents: readonly string[]) {
    super(ErrorCodes.MESSAGE_ID_AMBIGUOUS, `message ${messageId} exists for several agents (${agents.join(', ')}): say which with ?agentId=`);
    this.name = 'AmbiguousMessageIdError';
    this.messageId = messageId;
    this.agents = agents;
  }
}

/**
 * A connection to a URL a user gave (a status callback, an SMS webhook) was
 * refused before it was made: the host is, or resolves to, a loopback,
 * private, link-local, metadata… address no operator opened. Permanent: the
 * same URL leads to the same place on every try. `reason` names the address,
 * never the URL's path or query (they may carry the receiver's token).
 */
export class UrlForbiddenError extends DispatchError {
  readonly kind = 'permanent' as const;
  readonly host: string;
  readonly reason: string;
  constructor(host: string, reason: string) {
    super(ErrorCodes.URL_FORBIDDEN, `refused to connect to ${host}: it ${reason}`);
    this.name = 'UrlForbiddenError';
    this.host = host;
    this.reason = reason;
  }
}

/** What the start-up check found wrong with the Redis that REDIS_URL names. */
export type RedisProblem = 'unreachable' | 'cluster' | 'replica' | 'auth' | 'not-redis' | 'version' | 'refused';

/**
 * The Redis the config names cannot serve us. `url` has its password masked;
 * the message is one line: the URL, what is wrong and what to do, what we
 * expected and what came. 'unreachable' is REDIS_UNAVAILABLE (nothing
 * answered); every other problem is REDIS_UNSUITABLE (something answered, and
 * it is not a Redis we can queue on).
 */
export class RedisCheckError extends DispatchError {
  readonly url: string;
  readonly problem: RedisProblem;
  readonly expected: string;
  readonly got: string;
  constructor(fields: { url: string; problem: RedisProblem; what: string; expected: string; got: string }, options?: { cause?: unknown }) {
    const oneLine = (s: string) => s.replace(/\s+/g, ' ').trim();
    super(
      fields.problem === 'unreachable' ? ErrorCodes.REDIS_UNAVAILABLE : ErrorCodes.REDIS_UNSUITABLE,
      oneLine(`Redis at ${fields.url} ${fields.what} (expected ${fields.expected}, got ${fields.got})`),
      options,
    );
    this.name = 'RedisCheckError';
    this.url = fields.url;
    this.problem = fields.problem;
    this.expected = fields.expected;
    this.got = oneLine(fields.got);
  }
}

export type Classification = 'retry' | 'rateLimited' | 'defer' | 'permanent' | 'notRcs';

/**
 * What a failure means. `call` says which RBM call failed: a 404 on a send or
 * an event means "not reachable over RCS"; on anything else it is permanent.
 */
export function classify(err: unknown, call: 'send' | 'event' | 'revoke' | 'capabilities' = 'send'): Classification {
  // Adapters outside RBM (the SMS providers) classify their own failures once, where they know the wire.
  const own = (err as { kind?: unknown } | null)?.kind;
  if (own === 'retry' || own === 'permanent' || own === 'rateLimited' || own === 'defer') return own;
  if (err instanceof RbmTokenUnavailableError) return 'defer';
  if (err instanceof RbmNetworkError) return 'retry';
  if (err instanceof RbmApiError) {
    if (err.status === 429) return 'rateLimited';
    if (err.status === 404) return call === 'send' || call === 'event' ? 'notRcs' : 'permanent';
    // The client turns a 401 on a fresh token into RbmAuthError; a bare 401 here means the same.
    if (err.status === 400 || err.status === 401 || err.status === 403) return 'permanent';
    if (err.status === 408 || err.status >= 500) return 'retry';
    return 'permanent';
  }
  if (err instanceof PayloadError || err instanceof RbmAuthError || err instanceof UnknownAgentError) return 'permanent';
  // Redis hiccups and anything unexpected: let the queue retry with backoff.
  return 'retry';
}
