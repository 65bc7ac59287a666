/**
 * OAuth for the RBM API through google-auth-library, the only module that
 * imports it. One JWT client per process: it caches the access token and
 * refreshes it 5 minutes before expiry, so the hot path costs a promise.
 *
 * Around it, what the library does not do for a sender:
 *   - a forced refresh after RBM answered 401 (a token revoked or expired
 *     early), shared by every call that saw the same token refused;
 *   - a token endpoint that fails is asked again after a growing pause, not by
 *     every call: meanwhile calls get RbmTokenUnavailableError (the queue
 *     defers them) or, when there is one, the old token while it is valid;
 *   - counts of what happened, for /metrics, and loud, throttled log lines.
 */
import { readFile } from 'node:fs/promises';
import { JWT, gaxios } from 'google-auth-library';
import { DispatchError, RbmAuthError, RbmTokenUnavailableError, type RbmApiError } from '../errors.ts';
import type { Logger } from '../handlers/types.ts';

export const RBM_SCOPE = 'https://www.googleapis.com/auth/rcsbusinessmessaging';
const GOOGLE_TOKEN_URL = 'https://oauth2.googleapis.com/token';

export interface ServiceAccountKey {
  type: string;
  client_email: string;
  private_key: string;
  private_key_id?: string;
  token_uri?: string;
  project_id?: string;
}

/**
 * What the token source reports, for counters: a token `issued`, a token
 * request that found the endpoint `unavailable` or got the key `refused`, and
 * a token RBM `rejected` (401).
 */
export type TokenEvent = 'issued' | 'unavailable' | 'refused' | 'rejected';

export interface TokenSource {
  /** A valid access token, cached until shortly before it expires. */
  getToken(): Promise<string>;
  /**
   * A new token in place of `rejected`, the one RBM answered 401 to. Calls
   * refused with the same token share one token request; a caller whose token
   * was already replaced gets the replacement without a request.
   */
  refresh(rejected: string): Promise<string>;
  /** RBM answered 401 to a token fresh from the endpoint: the error that fails the call, logged loudly. */
  refused(cause: RbmApiError): RbmAuthError;
  /** RBM answered something other than 401: tokens work (ends a refusal episode in the log). */
  accepted(): void;
}

export interface TokenSourceOptions {
  /** One token request's timeout. Default 10 s. */
  timeoutMs?: number;
  /** Pause after the first failed token request, doubled per failure up to retryMaxMs. Defaults 500 ms, 5 s. */
  retryMinMs?: number;
  retryMaxMs?: number;
  log?: Logger;
  onEvent?: (event: TokenEvent) => void;
}

/** An old token is still handed out during an outage only if it lives at least this long: a call may take its whole timeout. */
const USABLE_FOR_MS = 60_000;
/** At most one "RBM refuses our tokens" line per this period; the count of refusals goes with it. */
const REFUSAL_LOG_EVERY_MS = 10_000;

export async function loadServiceAccountKey(path: string): Promise<ServiceAccountKey> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(path, 'utf8'));
  } catch (cause) {
    throw new RbmAuthError(`cannot read service-account key file ${path}: ${(cause as Error).message}`, { cause });
  }
  const key = parsed as Partial<ServiceAccountKey>;
  if (!key || key.type !== 'service_account' || !key.client_email || !key.private_key) {
    throw new RbmAuthError(`${path} is not a service-account key: expected type "service_account", client_email and private_key`);
  }
  return key as ServiceAccountKey;
}

/**
 * google-auth-library ignores the key's token_uri and always posts to Google's
 * fixed URL (spec §7.5). Rewriting that URL on the client's own transporter
 * makes the real library path run against any token endpoint, the emulator's included.
 * The library would retry a failed token POST 3 times itself (up to ~2 s,
 * 4 requests): the retry policy here is the token source's pause and the
 * queue's, so one token fetch is one request, bounded by a timeout.
 */
function transporterFor(tokenUri: string | undefined, timeoutMs: number): InstanceType<typeof gaxios.Gaxios> {
  const transporter = new gaxios.Gaxios({ timeout: timeoutMs, retryConfig: { retry: 0, noResponseRetries: 0 } });
  if (tokenUri && tokenUri !== GOOGLE_TOKEN_URL) {
    transporter.interceptors.request.add({
      resolved: async (options) => {
        if (String(options.url) === GOOGLE_TOKEN_URL) options.url = new URL(tokenUri);
        return options;
      },
    });
  }
  return transporter;
}

export function createTokenSource(key: ServiceAccountKey, options: TokenSourceOptions = {}): TokenSource {
  const { log, onEvent = () => {} } = options;
  const retryMinMs = options.retryMinMs ?? 500;
  const retryMaxMs = options.retryMaxMs ?? 5000;
  const jwt = new JWT({
    email: key.client_email,
    key: key.private_key,
    keyId: key.private_key_id,
    scopes: [RBM_SCOPE],
    transporter: transporterFor(key.token_uri, options.timeoutMs ?? 10_000),
  });
  // The library emits 'tokens' once per token it fetched (never for a cached one).
  jwt.on('tokens', () => onEvent('issued'));

  /** The token last handed out; a 401 on another one means it was already replaced. */
  let current: string | undefined;
  /** One trip through the library at a time: concurrent callers share its token, or its one failure. */
  let flight: Promise<string> | undefined;
  let forcing: Promise<string> | undefined;
  /** Token endpoint outage: consecutive failed requests, and no request before retryAt. */
  let failures = 0;
  let retryAt = 0;
  let lastFailure = '';
  let refusals = 0;
  let refusalsLogged = 0;
  let refusalLoggedAt = 0;

  const usable = (now: number): string | undefined =>
    current !== undefined && (jwt.credentials.expiry_date ?? 0) > now + USABLE_FOR_MS && jwt.credentials.access_token === current
      ? current
      : undefined;

  const unavailable = (cause?: unknown): RbmTokenUnavailableError => {
    const retryAfterMs = Math.max(1, retryAt - Date.now());
    return new RbmTokenUnavailableError(`token endpoint unavailable (${lastFailure}); next token request in ${retryAfterMs} ms`, {
      retryAfterMs,
      cause,
    });
  };

  /** One trip through the library: its cache, or one token request. `forced`: the cached token was refused, never fall back to it. */
  async function fetchToken(forced: boolean): Promise<string> {
    if (Date.now() < retryAt) {
      const old = forced ? undefined : usable(Date.now());
      if (old !== undefined) return old;
      throw unavailable();
    }
    try {
      const { token } = await jwt.getAccessToken();
      if (!token) throw new RbmAuthError('the token endpoint answered without an access token');
      if (failures > 0) log?.info({ failedRequests: failures }, 'token endpoint answers again: sending resumes');
      failures = 0;
      retryAt = 0;
      current = token;
      return token;
    } catch (err) {
      if (err instanceof DispatchError) throw err;
      // Not from the wire (a key the library cannot sign with, a client in a state that cannot fetch):
      // no wait would help, and a silent deferral would stall every send, so each call fails loudly.
      if (!(err instanceof gaxios.GaxiosError)) {
        log?.error({ clientEmail: key.client_email, err: (err as Error).message }, 'cannot get an access token: sends fail with RBM_AUTH');
        throw new RbmAuthError(`cannot get an access token for ${key.client_email}: ${(err as Error).message}`, { cause: err });
      }
      const status = err.response?.status;
      // 4xx from the token endpoint: the key is wrong or revoked, no retry helps (408 and 429 are waits).
      if (status && status >= 400 && status < 500 && status !== 408 && status !== 429) {
        onEvent('refused');
        log?.error({ clientEmail: key.client_email, status }, 'token endpoint refused the service account: sends fail with RBM_AUTH');
        throw new RbmAuthError(`token endpoint refused the service account ${key.client_email} (${status})`, { cause: err });
      }
      onEvent('unavailable');
      failures += 1;
      retryAt = Date.now() + Math.min(retryMaxMs, retryMinMs * 2 ** (failures - 1));
      lastFailure = status ? `HTTP ${status}` : String(err.code ?? err.message);
      const old = forced ? undefined : usable(Date.now());
      log?.[failures === 1 ? 'error' : 'warn'](
        { failedRequests: failures, reason: lastFailure, retryInMs: retryAt - Date.now(), usingCachedToken: old !== undefined },
        'token endpoint unavailable: sends wait for a token',
      );
      if (old !== undefined) return old;
      throw unavailable(err);
    }
  }

  return {
    getToken() {
      if (forcing) return forcing;
      flight ??= fetchToken(false).finally(() => {
        flight = undefined;
      });
      return flight;
    },

    refresh(rejected) {
      onEvent('rejected');
      if (forcing) return forcing;
      if (current !== undefined && current !== rejected) return Promise.resolve(current);
      // Marks the cached token expired and keeps the JWT client's refresh
      // marker ('jwt-placeholder'): emptying `credentials` drops the marker,
      // after which the library refuses to fetch any token ("No refresh token
      // or refresh handler callback is set") until the process restarts.
      jwt.credentials = { refresh_token: jwt.credentials.refresh_token ?? 'jwt-placeholder', expiry_date: 1 };
      current = undefined;
      forcing = fetchToken(true).finally(() => {
        forcing = undefined;
      });
      return forcing;
    },

    refused(cause) {
      onEvent('rejected');
      refusals += 1;
      const now = Date.now();
      if (now - refusalLoggedAt >= REFUSAL_LOG_EVERY_MS) {
        log?.error(
          { clientEmail: key.client_email, refusedCalls: refusals - refusalsLogged, method: cause.method, path: cause.path },
          'RBM refuses freshly issued tokens (401): the key may be revoked or not allowed to use RBM; messages fail with RBM_AUTH',
        );
        refusalLoggedAt = now;
        refusalsLogged = refusals;
      }
      return new RbmAuthError(
        `RBM answered 401 to a freshly issued token of ${key.client_email} (${cause.method} ${cause.path}): ` +
          `the key may be revoked or lack RBM access`,
        { cause },
      );
    },

    accepted() {
      if (refusals === 0) return;
      log?.info({ refusedCalls: refusals }, 'RBM accepts our tokens again');
      refusals = 0;
      refusalsLogged = 0;
      refusalLoggedAt = 0;
    },
  };
}
