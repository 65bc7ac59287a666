/**
 * The RBM REST client: agentMessages.create/delete, agentEvents.create and
 * phones.getCapabilities over one keep-alive undici pool. IDs always come from
 * the caller, so a retry reuses them and RBM's duplicate rule makes it safe.
 * Fast in-request retries happen here: a connection reset with p-retry, and a
 * 401 with exactly one fresh token (shared by every call refused with the same
 * token) and one retry; a 401 on the fresh token fails the call with RBM_AUTH.
 * Everything slower, a token outage included, is the queue's job.
 */
import { type Dispatcher, Pool } from 'undici';
import pRetry from 'p-retry';
import { RbmApiError, RbmNetworkError, RbmTokenUnavailableError } from '../errors.ts';
import { maskPhonesIn } from '../mask.ts';
import type { TokenSource } from './auth.ts';
import type { AgentEventBody, AgentEventResource, AgentMessageBody, AgentMessageResource, Capabilities } from './types.ts';

export interface RbmClientOptions {
  /** e.g. https://us-rcsbusinessmessaging.googleapis.com or the emulator's URL. */
  baseUrl: string;
  tokens: TokenSource;
  /** Sockets kept open to RBM; set it to the number of requests you keep in flight. */
  connections?: number;
  timeoutMs?: number;
  /** Extra tries within one call for network failures and passing 5xx; a 401 always gets one refresh and one retry on top. */
  fastRetries?: number;
}

interface Call {
  method: 'GET' | 'POST' | 'DELETE';
  path: string;
  body?: unknown;
}

const NETWORK_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'ENOTFOUND',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
]);

/** Server errors worth one more try inside the same call (never 429: the limiter handles it). */
const TRANSIENT_STATUSES = new Set([500, 502, 503, 504]);

function phonePath(to: string): string {
  // gRPC transcoding: the E.164 number goes in with a literal '+' (spec §1.2).
  return `/v1/phones/${to}`;
}

function query(params: Record<string, string>): string {
  return new URLSearchParams(params).toString();
}

/** Retry-After is seconds or an HTTP date. */
function parseRetryAfter(value: string | string[] | undefined): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (!v) return undefined;
  if (/^\d+(\.\d+)?$/.test(v)) return Math.round(Number(v) * 1000);
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

/** Google's error JSON: {"error":{"code","message","status"}}; tolerate anything else. */
function parseGoogleError(text: string): { rpcStatus: string; message: string } {
  try {
    const parsed = JSON.parse(text) as { error?: { status?: string; message?: string } };
    if (parsed.error) return { rpcStatus: parsed.error.status ?? 'UNKNOWN', message: parsed.error.message ?? '' };
  } catch {
    // not JSON: a proxy or load balancer answered
  }
  return { rpcStatus: 'UNKNOWN', message: text.slice(0, 200) };
}

export class RbmClient {
  private readonly pool: Pool;
  private readonly tokens: TokenSource;
  private readonly fastRetries: number;

  constructor(options: RbmClientOptions) {
    const timeout = options.timeoutMs ?? 10_000;
    this.pool = new Pool(options.baseUrl, {
      connections: options.connections ?? 64,
      keepAliveTimeout: 30_000,
      headersTimeout: timeout,
      bodyTimeout: timeout,
      connectTimeout: Math.min(timeout, 5000),
    });
    this.tokens = options.tokens;
    this.fastRetries = options.fastRetries ?? 2;
  }

  /**
   * Resolves once an access token is at hand (usually the cached one). Throws
   * what a call would (RbmTokenUnavailableError while the token endpoint is
   * down), so a job can wait for a token before it counts as a try.
   */
  async ready(): Promise<void> {
    await this.tokens.getToken();
  }

  /** POST phones/{to}/agentMessages. A 409 on our own ID means it was already accepted. */
  async createMessage(args: {
    agentId: string;
    to: string;
    messageId: string;
    body: AgentMessageBody;
  }): Promise<AgentMessageResource | { duplicate: true }> {
    const path = `${phonePath(args.to)}/agentMessages?${query({ messageId: args.messageId, agentId: args.agentId })}`;
    return this.call<AgentMessageResource>({ method: 'POST', path, body: args.body }, true);
  }

  /** DELETE phones/{to}/agentMessages/{id}: true when revoked, false when already delivered (404). */
  async revokeMessage(args: { agentId: string; to: string; messageId: string }): Promise<boolean> {
    const path = `${phonePath(args.to)}/agentMessages/${encodeURIComponent(args.messageId)}?${query({ agentId: args.agentId })}`;
    try {
      await this.call({ method: 'DELETE', path }, false);
      return true;
    } catch (err) {
      if (err instanceof RbmApiError && err.status === 404) return false;
      throw err;
    }
  }

  async createEvent(args: {
    agentId: string;
    to: string;
    eventId: string;
    body: AgentEventBody;
  }): Promise<AgentEventResource | { duplicate: true }> {
    const path = `${phonePath(args.to)}/agentEvents?${query({ eventId: args.eventId, agentId: args.agentId })}`;
    return this.call<AgentEventResource>({ method: 'POST', path, body: args.body }, true);
  }

  async getCapabilities(args: { agentId: string; to: string; requestId: string }): Promise<Capabilities> {
    const path = `${phonePath(args.to)}/capabilities?${query({ requestId: args.requestId, agentId: args.agentId })}`;
    return this.call<Capabilities>({ method: 'GET', path }, false) as Promise<Capabilities>;
  }

  async close(): Promise<void> {
    await this.pool.close();
  }

  private async call<T>(call: Call, conflictIsDuplicate: boolean): Promise<T | { duplicate: true }> {
    let refreshed = false;
    const attempt = async (token: string): Promise<T | { duplicate: true }> => {
      try {
        return await this.once<T>(call, token, conflictIsDuplicate);
      } catch (err) {
        if (!(err instanceof RbmApiError && err.status === 401)) throw err;
        // A second 401, on a token fresh from the endpoint: the key itself is refused (RBM_AUTH, permanent).
        if (refreshed) throw this.tokens.refused(err);
        // The token may have been revoked or expired early: one fresh token, one retry with it, at once.
        refreshed = true;
        return attempt(await this.tokens.refresh(token));
      }
    };
    return pRetry(async () => attempt(await this.tokens.getToken()), {
      retries: this.fastRetries,
      minTimeout: 25,
      maxTimeout: 250,
      randomize: true,
      // A token outage is not retried here: the token source already paces its requests, the queue defers the job.
      // A passing server error (500, 502, 503, 504: Google's INTERNAL and UNAVAILABLE, retryable by its guidance)
      // is: at 30 % 5xx, 8 queue attempts alone left 0.3^8 of messages (1 in 15,000) FAILED; with 3 tries each, 1 in 10^12.
      shouldRetry: ({ error }) =>
        (error instanceof RbmNetworkError && !(error instanceof RbmTokenUnavailableError)) ||
        (error instanceof RbmApiError && TRANSIENT_STATUSES.has(error.status)),
    });
  }

  private async once<T>(call: Call, token: string, conflictIsDuplicate: boolean): Promise<T | { duplicate: true }> {
    let res: Dispatcher.ResponseData;
    try {
      res = await this.pool.request({
        method: call.method,
        path: call.path,
        headers: {
          authorization: `Bearer ${token}`,
          ...(call.body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        body: call.body === undefined ? undefined : JSON.stringify(call.body),
      });
    } catch (cause) {
      const code = (cause as { code?: string }).code ?? '';
      if (NETWORK_CODES.has(code) || (cause as Error).name === 'SocketError') {
        throw new RbmNetworkError(`RBM ${call.method} ${maskPhonesIn(call.path.split('?')[0]!)}: ${code || (cause as Error).message}`, {
          cause,
        });
      }
      throw new RbmNetworkError(`RBM ${call.method} failed: ${(cause as Error).message}`, { cause });
    }
    let text: string;
    try {
      text = await res.body.text();
    } catch (cause) {
      throw new RbmNetworkError(`RBM ${call.method}: connection lost while reading the answer`, { cause });
    }
    if (res.statusCode !== 401) this.tokens.accepted();
    if (res.statusCode === 200) return (text ? JSON.parse(text) : {}) as T;
    if (res.statusCode === 409 && conflictIsDuplicate) return { duplicate: true };
    const { rpcStatus, message } = parseGoogleError(text);
    // The body may quote the number back; it never leaves this function unmasked.
    throw new RbmApiError({
      status: res.statusCode,
      rpcStatus,
      message: maskPhonesIn(message),
      retryAfterMs: parseRetryAfter(res.headers['retry-after']),
      method: call.method,
      path: maskPhonesIn(call.path.split('?')[0]!),
    });
  }
}
