/**
 * The one catalogue of rbm-dispatch errors: every code the service raises,
 * answers with or writes on a record, with its one HTTP status and its one
 * retry class. Every error class extends DispatchError and carries one of
 * these codes (stable: never reused once retired), context fields and an
 * optional `cause`.
 *
 * `http`: the status of every HTTP answer with this code, on every route (API,
 * webhook, admin, metrics, the server's own refusals); sendCode() and
 * toHttpError() take it from here, so no route can answer a code with another
 * status. null: never an HTTP answer (a worker's, a record's, start-up's, the
 * CLI's); one that reaches a route anyway is answered 500 INTERNAL.
 *
 * `retry`: what classify() makes of a DispatchError with this code, which is
 * the single place that decides what a failure means for a job:
 *   retry        try again later with backoff, same IDs
 *   rateLimited  the agent is over quota: pause its queue, burn no attempt
 *   defer        no access token can be had (the token endpoint is down): try
 *                again after `retryAfterMs`, burn no attempt, since the outage
 *                says nothing about the job and may outlast its retries
 *   permanent    no retry can help (bad payload, 400, 403, exhausted)
 *   notRcs       the phone cannot be reached over RCS (404): a normal outcome
 *   byStatus     the answer's HTTP status decides (RBM_API: see classify(); CLI_API_ERROR)
 *   byKind       the error's own `kind`, set where the wire is understood (SMS_PROVIDER)
 * For codes only ever answered over HTTP, it is what a caller's retry of the
 * same request can do. An error with a `kind` of its own (CallbackParkedError,
 * SmsProviderError, UrlForbiddenError...) is classified by it; where the kind is
 * fixed it equals its code's class here (test/error-catalogue.test.ts).
 *
 * README.md ("Error codes") lists this table; a test keeps the two equal.
 */

/** What a failure means for a job; see the catalogue above. */
export type Classification = 'retry' | 'rateLimited' | 'defer' | 'permanent' | 'notRcs';
export type RetryClass = Classification | 'byStatus' | 'byKind';

export interface CatalogueEntry {
  readonly http: number | null;
  readonly retry: RetryClass;
  /** One line: when it comes, and what to do. */
  readonly means: string;
}

export const ERROR_CATALOGUE = {
  // A request refused before or by a route (API, webhook, admin, metrics, the HTTP server itself).
  BAD_REQUEST: { http: 400, retry: 'permanent', means: 'not valid HTTP, or a refusal of the web framework with no code of its own' },
  BAD_URL: { http: 400, retry: 'permanent', means: 'the path does not decode as a URL' },
  BODY_INVALID_JSON: { http: 400, retry: 'permanent', means: 'the body is empty or does not parse as JSON' },
  UNAUTHENTICATED: {
    http: 401,
    retry: 'permanent',
    means: 'no API key or admin key, a wrong one, or API_KEYS unset against a real RBM endpoint',
  },
  FORBIDDEN: { http: 403, retry: 'permanent', means: 'the API key may not use this agent (or a static file may not be served)' },
  NOT_FOUND: {
    http: 404,
    retry: 'permanent',
    means: 'no such route, message, batch or callback URL (or one of an agent the key may not use)',
  },
  REQUEST_TIMEOUT: { http: 408, retry: 'retry', means: 'the request or its headers did not arrive in time; the connection is closed' },
  PRECONDITION_FAILED: {
    http: 412,
    retry: 'permanent',
    means: 'a conditional request for a static file (docs, admin UI) whose condition failed',
  },
  BODY_TOO_LARGE: { http: 413, retry: 'permanent', means: 'the body is larger than the endpoint accepts' },
  URI_TOO_LONG: { http: 414, retry: 'permanent', means: 'a path parameter is longer than 100 characters' },
  UNSUPPORTED_MEDIA_TYPE: { http: 415, retry: 'permanent', means: 'the body is not Content-Type: application/json (API and webhook)' },
  RANGE_NOT_SATISFIABLE: { http: 416, retry: 'permanent', means: 'a Range request for a static file (docs, admin UI) outside the file' },
  HEADERS_TOO_LARGE: { http: 431, retry: 'permanent', means: 'the request headers are larger than the server accepts' },
  INTERNAL: { http: 500, retry: 'retry', means: 'an unexpected failure (logged); nothing to fix in the request' },
  NOT_IMPLEMENTED: { http: 501, retry: 'permanent', means: 'revoke is not wired in this process (library use)' },
  UNAVAILABLE: { http: 503, retry: 'retry', means: 'the webhook could not queue the event; RBM retries it' },

  // Inputs: API bodies and queries, job payloads, configuration.
  PAYLOAD_INVALID: { http: 400, retry: 'permanent', means: 'a bad input: every problem in details (the first 100), all counted' },
  UNKNOWN_AGENT: { http: 400, retry: 'permanent', means: 'an agentId that is not configured' },
  URL_FORBIDDEN: {
    http: 400,
    retry: 'permanent',
    means: 'a callback or SMS webhook URL that leads to a private, loopback or metadata address',
  },
  URL_UNRESOLVABLE: { http: 400, retry: 'permanent', means: 'a callback URL whose host name does not resolve' },
  AGENT_EXISTS: { http: 409, retry: 'permanent', means: 'an agent added through the admin API that is already there: change it instead' },
  AGENT_WRITE_CONFLICT: {
    http: 409,
    retry: 'retry',
    means: 'an agent changed under the admin call several times in a row (other writers): read it again and retry',
  },
  CONFIG_INVALID: { http: null, retry: 'retry', means: 'bad environment variables: every problem at once; the process does not start' },

  // Messages.
  MESSAGE_ID_AMBIGUOUS: {
    http: 409,
    retry: 'retry',
    means: 'the message ID names messages of several agents the key may use: say which with agentId',
  },
  REVOKE_NOT_POSSIBLE: { http: 409, retry: 'retry', means: 'the message is being sent, or in any state but QUEUED and SENT' },
  NO_CALLBACK: { http: 409, retry: 'permanent', means: 'replay of a message sent without a callback URL' },
  STATUS_TRANSITION: {
    http: null,
    retry: 'retry',
    means: 'an event found its message still settling after a few tries: the queue retries it',
  },
  IDEMPOTENCY_CONFLICT: { http: null, retry: 'retry', means: 'reserved, never raised (kept so it is not reused)' },
  UNKNOWN: { http: null, retry: 'retry', means: 'on a status record: a failure that carried no code of its own' },
  AGENT_REMOVED: {
    http: null,
    retry: 'permanent',
    means: 'on a status record: the agent was removed with queued=fail before the message was sent; add it back and re-drive',
  },

  // RBM, as an HTTP answer: the call RBM had to answer for this request (a revoke's DELETE) failed; nothing changed.
  RBM_API: {
    http: 502,
    retry: 'byStatus',
    means: 'RBM answered an error: 429 rate-limits the agent, 404 on a send is NOT_RCS, 408 and 5xx retry, the rest fail for good',
  },
  RBM_NETWORK: { http: 502, retry: 'retry', means: 'no answer from RBM (refused, reset, timed out)' },
  RBM_TOKEN_UNAVAILABLE: {
    http: 502,
    retry: 'defer',
    means: 'the OAuth token endpoint did not answer: the job waits without using an attempt',
  },
  RBM_AUTH: { http: 502, retry: 'permanent', means: 'RBM refused the credentials (a 401 on a fresh token, or the key was refused)' },

  // Redis.
  REDIS_UNAVAILABLE: { http: 503, retry: 'retry', means: 'Redis does not answer: nothing was queued, try again' },
  REDIS_UNSUITABLE: {
    http: null,
    retry: 'retry',
    means:
      'the Redis REDIS_URL names answered, and cannot serve us (Cluster, replica, auth, not Redis, version); the process does not start',
  },

  // History (PostgreSQL: DATABASE_URL, or the embedded one).
  HISTORY_UNAVAILABLE: {
    http: 503,
    retry: 'retry',
    means: 'the history database does not answer (refused, lost, out of connections): nothing was read or written, try again',
  },
  HISTORY_SCHEMA: {
    http: null,
    retry: 'permanent',
    means: 'a history migration failed, an applied one was edited, or newer code migrated the database; the process does not start',
  },

  // SMS fallback, on a message's record.
  SMS_PROVIDER: {
    http: null,
    retry: 'byKind',
    means: 'the SMS provider refused or did not answer; the adapter decides retry, rateLimited or permanent',
  },
  SMS_OUTCOME_UNKNOWN: {
    http: null,
    retry: 'permanent',
    means: 'a try stopped after handing the SMS to a provider without idempotency: not sent again',
  },

  // Status callbacks (the callback worker), and replay.
  CALLBACK_DELIVERY: { http: null, retry: 'retry', means: 'a status callback got no 2xx: retried on the callback schedule' },
  CALLBACK_PARKED: {
    http: null,
    retry: 'defer',
    means: "a status callback made no call: its receiver's breaker is open or its in-flight cap is reached",
  },
  CALLBACK_EXPIRED: { http: null, retry: 'permanent', means: 'a status callback not delivered within CALLBACK_RETRY_FOR_MS' },
  CALLBACK_REPLAY: { http: null, retry: 'retry', means: 'a replay that cannot run; answered as NOT_FOUND or NO_CALLBACK' },

  // The webhook's body (POST /webhooks/rbm).
  ENVELOPE_INVALID: { http: 400, retry: 'permanent', means: 'the webhook body is not a Pub/Sub push envelope with a message.data string' },
  DATA_NOT_BASE64: { http: 400, retry: 'permanent', means: "the webhook's message.data is not padded standard base64" },
  DATA_NOT_JSON: { http: 400, retry: 'permanent', means: "the webhook's message.data does not decode to a UTF-8 JSON object" },
  SIGNATURE_INVALID: {
    http: 401,
    retry: 'permanent',
    means: "X-Goog-Signature is missing or is not the HMAC of message.data with the agent's client token",
  },

  // The CLI (its exit codes are in src/cli/errors.ts).
  CLI_USAGE: { http: null, retry: 'permanent', means: 'bad usage: nothing was sent' },
  CLI_INPUT_INVALID: { http: null, retry: 'permanent', means: 'a bad input file: nothing was sent' },
  CLI_INPUT_CHANGED: { http: null, retry: 'permanent', means: 'the input file changed between the check and the send' },
  CLI_API_ERROR: { http: null, retry: 'byStatus', means: 'the service answered an error (its code rides along as apiCode)' },
  CLI_API_UNREACHABLE: { http: null, retry: 'retry', means: 'no answer from the service (refused, reset, timed out)' },
  CLI_NOT_FOUND: {
    http: null,
    retry: 'permanent',
    means: 'the service answered 404: no such message (status, revoke, replay) or no callback URL to remove',
  },
  CLI_REVOKE_NOT_POSSIBLE: { http: null, retry: 'permanent', means: 'revoke refused (409)' },
  CLI_INTERRUPTED: { http: null, retry: 'permanent', means: 'stopped by a signal' },
  CLI_INTERNAL: { http: null, retry: 'permanent', means: 'an unexpected failure of the CLI itself' },
} as const satisfies Record<string, CatalogueEntry>;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;
/** The codes an HTTP answer may carry: those with a status. */
export type HttpCode = { [K in ErrorCode]: (typeof ERROR_CATALOGUE)[K]['http'] extends number ? K : never }[ErrorCode];

/** Every code by name: ErrorCodes.PAYLOAD_INVALID === 'PAYLOAD_INVALID'. */
export const ErrorCodes = Object.freeze(Object.fromEntries(Object.keys(ERROR_CATALOGUE).map((code) => [code, code]))) as {
  readonly [K in ErrorCode]: K;
};

export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.hasOwn(ERROR_CATALOGUE, code);
}

/** The one HTTP status of a code. */
export function statusOf(code: HttpCode): number {
  return ERROR_CATALOGUE[code].http;
}

/** The HTTP status of any code; null for one never answered over HTTP (or not in the catalogue). */
export function httpStatusOf(code: string): number | null {
  return isErrorCode(code) ? ERROR_CATALOGUE[code].http : null;
}

/** The base of every error class of rbm-dispatch: a code from the catalogue. */
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
    super(ErrorCodes.CONFIG_INVALID, `invalid configuration:\n${problems.map((p) => `  ${p.path}: ${p.problem}`).join('\n')}`);
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
  const named = problems
    .slice(0, NAMED_IN_MESSAGE)
    .map((p) => `${p.path || '(root)'}: ${p.problem}`)
    .join('; ');
  const rest = count - Math.min(problems.length, NAMED_IN_MESSAGE);
  return `invalid ${what}: ${named}${rest > 0 ? ` (and ${rest.toLocaleString('en-US')} more problem${rest === 1 ? '' : 's'})` : ''}`;
}

/** The codes of a bad input. */
export type InputCode = typeof ErrorCodes.PAYLOAD_INVALID | typeof ErrorCodes.URL_FORBIDDEN | typeof ErrorCodes.URL_UNRESOLVABLE;

/**
 * A bad input: PAYLOAD_INVALID, or a more precise code for a refusal of a
 * well-formed value (URL_FORBIDDEN, URL_UNRESOLVABLE for a callback URL).
 */
export class PayloadError extends DispatchError {
  declare readonly code: InputCode;
  /** The first MAX_LISTED_PROBLEMS problems, in input order. */
  readonly problems: readonly Problem[];
  /** How many problems there were in all (≥ problems.length). */
  readonly problemCount: number;
  /** Which item of a bulk call failed (the first bad one), when it was one. */
  readonly index: number | undefined;
  /** `count`: the total when the caller kept only the first problems; `code`: a more precise refusal than PAYLOAD_INVALID. */
  constructor(what: string, problems: readonly Problem[], options: { index?: number | undefined; count?: number; code?: InputCode } = {}) {
    const { index } = options;
    const listed = problems.length > MAX_LISTED_PROBLEMS ? problems.slice(0, MAX_LISTED_PROBLEMS) : problems;
    const count = Math.max(options.count ?? problems.length, problems.length);
    super(
      options.code ?? ErrorCodes.PAYLOAD_INVALID,
      payloadMessage(index === undefined ? what : `${what} (item ${index})`, listed, count),
    );
    this.name = 'PayloadError';
    this.problems = listed;
    this.problemCount = count;
    this.index = index;
  }
}

/** An answer from the RBM API that was not a success, parsed from Google's error JSON. */
export class RbmApiError extends DispatchError {
  declare readonly code: typeof ErrorCodes.RBM_API;
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
  declare readonly code: typeof ErrorCodes.RBM_NETWORK | typeof ErrorCodes.RBM_TOKEN_UNAVAILABLE;
  constructor(
    message: string,
    options?: { cause?: unknown },
    code: typeof ErrorCodes.RBM_NETWORK | typeof ErrorCodes.RBM_TOKEN_UNAVAILABLE = ErrorCodes.RBM_NETWORK,
  ) {
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
  declare readonly code: typeof ErrorCodes.RBM_AUTH;
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
    // Named up to 10: a service with a thousand agents answers a typo with a line, not 30 KB.
    const named = known.length > 10 ? `${known.slice(0, 10).join(', ')} (and ${known.length - 10} more)` : known.join(', ');
    super(ErrorCodes.UNKNOWN_AGENT, `unknown agent '${agentId}': expected one of ${named || '(none configured)'}`);
    this.name = 'UnknownAgentError';
    this.agentId = agentId;
  }
}

/**
 * One message ID names messages of several agents the caller may use (IDs live
 * per agent, as in RBM): the caller must say which, with agentId.
 */
/** The agent directory refused a write (admin API, CLI): AGENT_EXISTS or AGENT_WRITE_CONFLICT. */
export class AgentDirectoryError extends DispatchError {
  declare readonly code: typeof ErrorCodes.AGENT_EXISTS | typeof ErrorCodes.AGENT_WRITE_CONFLICT;
  readonly agentId: string;
  constructor(code: typeof ErrorCodes.AGENT_EXISTS | typeof ErrorCodes.AGENT_WRITE_CONFLICT, agentId: string, message: string) {
    super(code, message);
    this.name = 'AgentDirectoryError';
    this.agentId = agentId;
  }
}

export class AmbiguousMessageIdError extends DispatchError {
  readonly messageId: string;
  readonly agents: readonly string[];
  constructor(messageId: string, agents: readonly string[]) {
    super(
      ErrorCodes.MESSAGE_ID_AMBIGUOUS,
      `message ${messageId} exists for several agents (${agents.join(', ')}): say which with ?agentId=`,
    );
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

/**
 * What a failure means. `call` says which RBM call failed: a 404 on a send or
 * an event means "not reachable over RCS"; on anything else it is permanent.
 */
export function classify(err: unknown, call: 'send' | 'event' | 'revoke' | 'capabilities' = 'send'): Classification {
  // Adapters outside RBM (the SMS providers) classify their own failures once, where they know the wire.
  const own = (err as { kind?: unknown } | null)?.kind;
  if (own === 'retry' || own === 'permanent' || own === 'rateLimited' || own === 'defer') return own;
  if (err instanceof RbmApiError) {
    if (err.status === 429) return 'rateLimited';
    if (err.status === 404) return call === 'send' || call === 'event' ? 'notRcs' : 'permanent';
    // The client turns a 401 on a fresh token into RbmAuthError; a bare 401 here means the same.
    if (err.status === 400 || err.status === 401 || err.status === 403) return 'permanent';
    if (err.status === 408 || err.status >= 500) return 'retry';
    return 'permanent';
  }
  // Every other error of ours: its code's class in the catalogue.
  if (err instanceof DispatchError && isErrorCode(err.code)) {
    const retry: RetryClass = ERROR_CATALOGUE[err.code].retry;
    if (retry !== 'byStatus' && retry !== 'byKind') return retry;
  }
  // Redis hiccups and anything unexpected: let the queue retry with backoff.
  return 'retry';
}
