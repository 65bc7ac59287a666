/**
 * A typed client for the rbm-dispatch HTTP API over one keep-alive undici
 * Pool: a method per endpoint the CLI uses, errors carrying the HTTP status
 * and the API's own error code. The API key goes in a header, never a message.
 */
import { once } from 'node:events';
import { Pool } from 'undici';
import type { AgentView } from '../agents/record.ts';
import type { Report } from '../history/types.ts';
import { ApiError, ApiUnreachableError, UsageError, type Detail } from './errors.ts';

export interface QueuedMessage {
  messageId: string;
  state: string;
  duplicate: boolean;
}

export interface QueuedBatch {
  batchId: string;
  messageIds: string[];
  duplicates: number;
}

export interface QueuedEvent {
  eventId: string;
  duplicate: boolean;
}

export interface QueuedEvents {
  eventIds: string[];
  duplicates: number;
}

export interface TimelineEntry {
  state: string;
  at: number;
  event?: string;
  detail?: string;
}

/** GET /v1/messages/:id; `to` comes masked from the service. */
export interface MessageStatus {
  messageId: string;
  state: string;
  agentId: string;
  to: string;
  timeline: TimelineEntry[];
  attempts?: number;
  batchId?: string;
  lastError?: { code: string; message: string };
  [field: string]: unknown;
}

export interface Revoked {
  messageId: string;
  state: string;
  fallback: boolean;
}

export interface BatchProgress {
  batchId: string;
  total: number;
  counts: Record<string, number>;
}

export interface ApiClientOptions {
  url: string;
  apiKey?: string | undefined;
  /** One call's limit, headers and body each; a 10,000-message batch takes a while to queue. */
  timeoutMs?: number;
}

export interface FailureList {
  failures: Array<{ messageId: string; state: string; agentId: string; to: string; reason: string; message: string; failedAt: number }>;
  next?: number;
}

export interface RedriveResult {
  retried: string[];
  skipped: Array<{ messageId: string; why: string }>;
}

export interface CallbackSettings {
  url: string | null;
  secret: string | null;
  enabled: boolean;
}

export interface Replayed {
  messageId: string;
  replayed: number;
  url: string;
}

export interface ReportQuery {
  from?: string | undefined;
  to?: string | undefined;
  agentId?: string | undefined;
  groupBy?: string | undefined;
}

/** An agent as /v1/admin/agents answers it (the client token only as whether one is set). */
export type { AgentView } from '../agents/record.ts';

/** GET /v1/reports/deliveries: the archive's report as the API answers it. */
export type DeliveriesReport = Report;

function reportParams(query: ReportQuery, extra: Record<string, string> = {}): string {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries({ ...query, ...extra })) if (value !== undefined) params.set(name, value);
  return params.size ? `?${params}` : '';
}

export class ApiClient {
  private readonly pool: Pool;
  private readonly basePath: string;
  private readonly origin: string;
  private readonly headers: Record<string, string>;
  private readonly timeoutMs: number;

  constructor(opts: ApiClientOptions) {
    let url: URL;
    try {
      url = new URL(opts.url);
      if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error('protocol');
    } catch {
      throw new UsageError(`--url: expected an http(s) URL like http://127.0.0.1:3000, got '${opts.url}'`);
    }
    this.origin = url.origin;
    this.basePath = url.pathname.replace(/\/+$/, '');
    this.pool = new Pool(url.origin, { connections: 4 });
    this.timeoutMs = opts.timeoutMs ?? 120_000;
    this.headers = { accept: 'application/json', ...(opts.apiKey ? { authorization: `Bearer ${opts.apiKey}` } : {}) };
  }

  sendMessage(message: unknown): Promise<QueuedMessage> {
    return this.call('POST', '/v1/messages', { body: message });
  }

  sendMessages(messages: readonly unknown[], idempotencyKey?: string): Promise<QueuedBatch> {
    return this.call('POST', '/v1/messages:batch', { body: { messages }, idempotencyKey });
  }

  sendEvent(event: unknown): Promise<QueuedEvent> {
    return this.call('POST', '/v1/events', { body: event });
  }

  sendEvents(events: readonly unknown[], idempotencyKey?: string): Promise<QueuedEvents> {
    return this.call('POST', '/v1/events:batch', { body: { events }, idempotencyKey });
  }

  getStatus(messageId: string): Promise<MessageStatus> {
    return this.call('GET', `/v1/messages/${encodeURIComponent(messageId)}`);
  }

  revoke(messageId: string, fallback: boolean): Promise<Revoked> {
    return this.call('DELETE', `/v1/messages/${encodeURIComponent(messageId)}?fallback=${fallback}`);
  }

  getBatch(batchId: string): Promise<BatchProgress> {
    return this.call('GET', `/v1/batches/${encodeURIComponent(batchId)}`);
  }

  listFailures(query: { reason?: string; limit?: number; before?: number }): Promise<FailureList> {
    const params = new URLSearchParams();
    if (query.reason) params.set('reason', query.reason);
    if (query.limit) params.set('limit', String(query.limit));
    if (query.before) params.set('before', String(query.before));
    return this.call('GET', `/v1/failures${params.size ? `?${params}` : ''}`);
  }

  retryFailures(target: { messageIds: string[] } | { reason: string }): Promise<RedriveResult> {
    return this.call('POST', '/v1/failures:retry', { body: target });
  }

  getCallback(): Promise<CallbackSettings> {
    return this.call('GET', '/v1/callback');
  }

  setCallback(url: string): Promise<CallbackSettings> {
    return this.call('PUT', '/v1/callback', { body: { url } });
  }

  removeCallback(): Promise<void> {
    return this.call('DELETE', '/v1/callback');
  }

  replayCallbacks(messageId: string): Promise<Replayed> {
    return this.call('POST', `/v1/messages/${encodeURIComponent(messageId)}/callbacks:replay`);
  }

  getReport(query: ReportQuery): Promise<DeliveriesReport> {
    return this.call('GET', `/v1/reports/deliveries${reportParams(query)}`);
  }

  /**
   * The range's messages as CSV, streamed into `sink` as they come (bounded memory whatever the range holds);
   * `end`: end the sink after (a file), or leave it open (stdout).
   */
  async exportReport(query: ReportQuery, sink: NodeJS.WritableStream, end: boolean): Promise<void> {
    const path = `${this.basePath}/v1/reports/deliveries${reportParams(query, { format: 'csv' })}`;
    let res: Awaited<ReturnType<Pool['request']>>;
    try {
      res = await this.pool.request({
        method: 'GET',
        path,
        headers: { ...this.headers, accept: 'text/csv' },
        headersTimeout: this.timeoutMs,
        bodyTimeout: this.timeoutMs,
      });
    } catch (err) {
      throw new ApiUnreachableError(this.origin, err);
    }
    if (res.statusCode < 200 || res.statusCode >= 300) {
      const text = await res.body.text();
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch {}
      throw errorFrom(res.statusCode, json, text);
    }
    try {
      // Chunk by chunk, waiting on 'drain' when the sink is full: memory stays at one chunk; any writable will do.
      for await (const chunk of res.body) if (!sink.write(chunk as Buffer)) await once(sink, 'drain');
      if (end) await new Promise<void>((resolve, reject) => sink.once('error', reject).end(() => resolve()));
    } catch (err) {
      // Cut mid-body (the service or the connection went away): a partial file is not a report.
      throw new ApiUnreachableError(this.origin, err);
    }
  }

  listAgents(): Promise<{ version: number; agents: AgentView[] }> {
    return this.call('GET', '/v1/admin/agents');
  }

  addAgent(agent: Record<string, unknown>): Promise<{ agent: AgentView }> {
    return this.call('POST', '/v1/admin/agents', { body: agent });
  }

  changeAgent(agentId: string, change: Record<string, unknown>): Promise<{ agent: AgentView }> {
    return this.call('PATCH', `/v1/admin/agents/${encodeURIComponent(agentId)}`, { body: change });
  }

  removeAgent(agentId: string, queued: 'drain' | 'fail'): Promise<{ agent: AgentView }> {
    return this.call('DELETE', `/v1/admin/agents/${encodeURIComponent(agentId)}?queued=${queued}`);
  }

  close(): Promise<void> {
    return this.pool.close();
  }

  private async call<T>(
    method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE',
    path: string,
    opts: { body?: unknown; idempotencyKey?: string | undefined } = {},
  ): Promise<T> {
    const headers: Record<string, string> = { ...this.headers };
    if (opts.body !== undefined) headers['content-type'] = 'application/json';
    if (opts.idempotencyKey !== undefined) headers['idempotency-key'] = opts.idempotencyKey;
    let status: number;
    let text: string;
    try {
      const res = await this.pool.request({
        method,
        path: `${this.basePath}${path}`,
        headers,
        body: opts.body === undefined ? null : JSON.stringify(opts.body),
        headersTimeout: this.timeoutMs,
        bodyTimeout: this.timeoutMs,
      });
      status = res.statusCode;
      text = await res.body.text();
    } catch (err) {
      throw new ApiUnreachableError(this.origin, err);
    }
    let json: unknown;
    try {
      json = text === '' ? undefined : JSON.parse(text);
    } catch {
      json = undefined;
    }
    if (status >= 200 && status < 300) return json as T;
    throw errorFrom(status, json, text);
  }
}

/** Reads the API's `{ error: { code, message, details, problemCount } }`, or makes one up from what came. */
function errorFrom(status: number, json: unknown, text: string): ApiError {
  const error = (json as { error?: { code?: unknown; message?: unknown; details?: unknown; problemCount?: unknown } } | undefined)?.error;
  const details: Detail[] = Array.isArray(error?.details)
    ? error.details.map((d: { path?: unknown; problem?: unknown }) => ({ path: String(d?.path ?? ''), problem: String(d?.problem ?? '') }))
    : [];
  return new ApiError({
    status,
    apiCode: typeof error?.code === 'string' ? error.code : `HTTP_${status}`,
    apiMessage: typeof error?.message === 'string' ? error.message : text.slice(0, 200) || 'no message',
    details,
    // A service older than the cap sends no count: its details are all there were.
    ...(typeof error?.problemCount === 'number' ? { problemCount: error.problemCount } : {}),
  });
}
