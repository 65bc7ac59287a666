/**
 * Platform → service webhook delivery with Google's semantics (spec §6.5):
 * exactly 200 acknowledges, anything else retries with capped exponential
 * backoff until retryForMs, then the envelope is dropped. Envelopes are held
 * (not dropped) while the webhook is disabled. POSTs run on a keep-alive
 * undici Agent off the request path; their timing goes through the Scheduler.
 */
import { randomInt } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { Agent, request } from 'undici';
import { envelopeOf, fullAgentId, signature, typeAttribute, type PushEnvelope } from './envelope.ts';
import { WEBHOOK_DEFAULTS, checkWebhookPatch, type WebhookConfig, type WebhookPatch } from './settings.ts';
import type { Scheduler } from './scheduler.ts';

const TIMEOUT_MS = 10_000;
const USER_AGENT = 'APIs-Google; (+https://developers.google.com/webmasters/APIs-Google.html)';

/** One POST of an envelope; `status` 0 = network error or timeout. */
export interface WebhookAttempt {
  envelope: PushEnvelope;
  payload: Record<string, unknown>;
  status: number;
}

export interface WebhookCounters {
  /** Envelopes answered 200. */
  webhooksSent: number;
  /** POSTs made, retries and duplicates included. */
  webhookAttempts: number;
  /** POSTs answered non-200, or failed on the network / the 10 s timeout. */
  webhookFailures: number;
  /** Envelopes not yet answered 200 nor dropped (waiting, held, in flight). */
  webhooksPending: number;
  /** Envelopes given up after retryForMs. */
  webhooksDropped: number;
  /** Envelopes sent without X-Goog-Signature (no token for the agent, no '*'). */
  webhooksUnsigned: number;
}

export interface WebhookHost {
  readonly scheduler: Scheduler;
  readonly counters: WebhookCounters;
  onAttempt(attempt: WebhookAttempt): void;
}

interface Job {
  agentId: string;
  payload: Record<string, unknown>;
  envelope: PushEnvelope;
  body: string;
  data: Buffer;
  publishedAt: number;
  failures: number;
  unsignedCounted: boolean;
}

export class WebhookSender {
  config: WebhookConfig;
  private held: Job[] = [];
  private agent: Agent | undefined;
  private abort = newAbort();
  /** Bumped by reset: answers of POSTs started before it are ignored. */
  private generation = 0;

  constructor(
    private readonly host: WebhookHost,
    private readonly initial?: WebhookPatch,
  ) {
    this.config = this.initialConfig();
  }

  /** A url is configured: payloads are worth building. */
  get active(): boolean {
    return this.config.url !== undefined;
  }

  /** Applies a checked patch; enabling (or giving a url) releases the held envelopes. */
  configure(patch: WebhookPatch): WebhookConfig {
    const { url, ...rest } = patch;
    Object.assign(this.config, rest);
    if (url !== undefined) this.config.url = url ?? undefined;
    if (this.config.enabled && this.config.url !== undefined && this.held.length > 0) {
      const now = Date.now();
      for (const job of this.held.splice(0)) this.host.scheduler.at(now, () => this.attempt(job));
    }
    return this.config;
  }

  /** The config without tokens (they are secrets); which agents have one is enough to debug. */
  view(): Omit<WebhookConfig, 'clientTokens'> & { tokenAgents: string[] } {
    const { clientTokens, ...rest } = this.config;
    return { ...rest, tokenAgents: Object.keys(clientTokens) };
  }

  /** The agent's token under either spelling of its ID (`agent-a` or `agent-a@rbm.goog`), else '*'. */
  tokenFor(agentId: string): string | undefined {
    const t = this.config.clientTokens;
    // Own keys only: an agent named 'constructor' has no token, like any unknown agent.
    const own = (key: string) => (Object.hasOwn(t, key) ? t[key] : undefined);
    const short = agentId.replace(/@rbm\.goog$/, '');
    return own(short) ?? own(fullAgentId(short)) ?? own('*');
  }

  /**
   * Publishes one payload. Without a url nobody listens, as on a platform with
   * no webhook configured: nothing is queued, so benchmarks pay nothing.
   * Returns the Pub/Sub messageId of the (first) envelope.
   */
  publish(agentId: string, payload: Record<string, unknown>, attributes?: Record<string, string>, at = Date.now()): string | undefined {
    const c = this.config;
    if (c.url === undefined) return undefined;
    const json = JSON.stringify(payload);
    const data = Buffer.from(json, 'utf8');
    const b64 = data.toString('base64');
    const type = typeAttribute(payload);
    const copies = c.duplicateRate > 0 && Math.random() < c.duplicateRate ? 2 : 1;
    let first: string | undefined;
    for (let i = 0; i < copies; i += 1) {
      const envelope = envelopeOf(agentId, b64, at, type, attributes);
      first ??= envelope.message.messageId;
      const job: Job = {
        agentId,
        payload,
        envelope,
        body: JSON.stringify(envelope),
        data,
        publishedAt: at,
        failures: 0,
        unsignedCounted: false,
      };
      this.host.counters.webhooksPending += 1;
      const wait = c.extraDelayMs + (c.reorderWindowMs > 0 ? randomInt(0, Math.floor(c.reorderWindowMs) + 1) : 0);
      this.host.scheduler.at(Date.now() + wait, () => this.attempt(job));
    }
    return first;
  }

  /** Google's verification handshake (spec §6.2): ok when the answer is 200 with exactly the secret. */
  async verify(clientToken: string): Promise<{ ok: boolean; status: number; body: string }> {
    const url = this.config.url;
    if (url === undefined) throw new TypeError('no webhook url configured');
    const secret = String(randomInt(1_000_000_000, 10_000_000_000));
    try {
      const res = await request(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'user-agent': USER_AGENT },
        body: JSON.stringify({ clientToken, secret }),
        dispatcher: this.dispatcher(),
        headersTimeout: TIMEOUT_MS,
        bodyTimeout: TIMEOUT_MS,
        signal: this.abort.signal,
      });
      const body = await res.body.text();
      return { ok: res.statusCode === 200 && body === secret, status: res.statusCode, body };
    } catch (err) {
      return { ok: false, status: 0, body: (err as Error).message };
    }
  }

  /** Drops every pending envelope and aborts POSTs in flight; the config goes back to the start options. */
  reset(): void {
    this.generation += 1;
    this.abort.abort();
    this.abort = newAbort();
    this.held = [];
    this.config = this.initialConfig();
  }

  async close(): Promise<void> {
    this.generation += 1;
    this.abort.abort();
    this.held = [];
    const agent = this.agent;
    this.agent = undefined;
    if (agent !== undefined) await agent.destroy();
  }

  private initialConfig(): WebhookConfig {
    const init = this.initial === undefined ? {} : checkWebhookPatch(this.initial);
    const { url, clientTokens, ...tuning } = init;
    return { ...WEBHOOK_DEFAULTS, ...tuning, url: url ?? undefined, clientTokens: { ...clientTokens } };
  }

  private dispatcher(): Agent {
    // Enough sockets that one slow answer does not queue the rest; keep-alive so a burst reuses them.
    this.agent ??= new Agent({ connections: 128, keepAliveTimeout: 10_000, connectTimeout: TIMEOUT_MS });
    return this.agent;
  }

  private attempt(job: Job): void {
    const url = this.config.url;
    if (!this.config.enabled || url === undefined) {
      this.held.push(job);
      return;
    }
    const headers: Record<string, string> = { 'content-type': 'application/json', 'user-agent': USER_AGENT };
    const token = this.tokenFor(job.agentId);
    if (token !== undefined) headers['x-goog-signature'] = signature(token, job.data);
    else if (!job.unsignedCounted) {
      job.unsignedCounted = true;
      this.host.counters.webhooksUnsigned += 1;
    }
    this.host.counters.webhookAttempts += 1;
    const generation = this.generation;
    // Not awaited: the emulator's request handling never waits on a webhook; settle() reports the outcome.
    void request(url, {
      method: 'POST',
      headers,
      body: job.body,
      dispatcher: this.dispatcher(),
      headersTimeout: TIMEOUT_MS,
      bodyTimeout: TIMEOUT_MS,
      signal: this.abort.signal,
    }).then(
      async (res) => {
        await res.body.dump().catch(() => undefined);
        this.settle(job, res.statusCode, generation);
      },
      () => this.settle(job, 0, generation),
    );
  }

  private settle(job: Job, status: number, generation: number): void {
    if (generation !== this.generation) return;
    const c = this.host.counters;
    if (status === 200) {
      c.webhooksSent += 1;
      c.webhooksPending -= 1;
    } else {
      c.webhookFailures += 1;
      const { retryBaseMs, retryMaxMs, retryForMs } = this.config;
      const wait = Math.min(retryBaseMs * 2 ** job.failures, retryMaxMs);
      job.failures += 1;
      const now = Date.now();
      if (now + wait - job.publishedAt > retryForMs) {
        c.webhooksDropped += 1;
        c.webhooksPending -= 1;
      } else {
        this.host.scheduler.at(now + wait, () => this.attempt(job));
      }
    }
    this.host.onAttempt({ envelope: job.envelope, payload: job.payload, status });
  }
}

function newAbort(): AbortController {
  const a = new AbortController();
  // Every POST in flight listens on this one signal; the default cap of 10 would only print a false leak warning.
  setMaxListeners(0, a.signal);
  return a;
}
