/**
 * GET /metrics in Prometheus' text format (prom-client). Domain metrics come
 * from Redis at scrape time, so any process shows the whole service's totals;
 * webhook intake and process metrics are this process's own.
 *
 *   rbm_messages_total{state,agent}          moves into each state (SENT, DELIVERED, READ, FALLBACK_SENT...)
 *   rbm_fallbacks_total{reason}              SMS fallbacks by trigger
 *   rbm_rate_limited_total{queue}            429s; rbm_throttled_seconds_total{queue}: time paused by them
 *   rbm_retries_total{queue}                 failed tries that will be retried
 *   rbm_deferred_total{queue}                tries put back without an attempt: no access token could be had
 *   rbm_token_requests_total{outcome}        OAuth token requests: issued, unavailable (5xx, timeout, refused connection), refused (4xx)
 *   rbm_unauthorized_total                   401s from RBM (each gets one fresh token, or fails its call with RBM_AUTH)
 *   rbm_time_to_delivered_seconds            histogram: enqueue → first news of delivery
 *   rbm_time_to_fallback_seconds             histogram: enqueue → SMS sent
 *   rbm_webhook_lag_seconds                  histogram: RBM's sendTime → our receipt (this process)
 *   rbm_queue_jobs{queue,state}              jobs per queue and state
 *   rbm_agent_effective_rate{agent}          messages/s the agent's limiter allows now (≤ its configured rate; lower after 429s)
 *   rbm_webhook_events_pending               verified webhook events not yet handled
 *   rbm_webhooks_total{outcome}              webhook requests by outcome (this process)
 *   rbm_inbound_events_total{outcome}        inbound events: handled, unknown message, agent or phone mismatch, parked
 *   rbm_callbacks_total{outcome}             status callback attempts: delivered, retried, failed (for good)
 *   rbm_callback_feed_pending                status changes not yet turned into callback deliveries
 *   rbm_callbacks_parked_total{reason}       deliveries put back without a call: open (breaker), busy (in-flight cap)
 *   rbm_callback_breakers_total{event}       receiver breakers opened, closed
 *   rbm_callback_receivers_open              receivers whose breaker is open now (a count: origins are user input, never labels)
 */
import type { FastifyPluginAsync } from 'fastify';
import { collectDefaultMetrics, Histogram, type Metric, Registry } from 'prom-client';
import type { MetricsSnapshot } from '../queue/metrics-source.ts';
import { HISTOGRAM_BOUNDS_S } from '../status/store.ts';
import type { WebhookCounters } from '../webhook/receiver.ts';

type Sample = { labels?: Record<string, string | number>; value: number; metricName?: string };

/** The `le` labels of the time histograms: the bounds the transition script fills (each its own field), then +Inf. */
const HISTOGRAM_BOUNDS = [...HISTOGRAM_BOUNDS_S.map(String), '+Inf'];

type MetricKind = 'counter' | 'gauge' | 'histogram';

/** What prom-client's registry reads of a metric: its name, and get() for the samples (the rest is for show). */
interface ComputedMetric {
  name: string;
  help: string;
  type: MetricKind;
  aggregator: 'sum';
  get(): Promise<{ name: string; help: string; type: MetricKind; aggregator: 'sum'; values: Sample[] }>;
}

function register(registry: Registry, metric: ComputedMetric): void {
  // prom-client types registerMetric for its own metric classes only; no class can report precomputed histogram buckets.
  registry.registerMetric(metric as unknown as Metric);
}

/** A metric whose samples are computed at scrape time (duck-typed for prom-client's registry). */
function computed(
  name: string,
  help: string,
  type: MetricKind,
  samples: (s: MetricsSnapshot) => Sample[],
  snapshot: () => Promise<MetricsSnapshot>,
): ComputedMetric {
  return {
    name,
    help,
    type,
    aggregator: 'sum',
    async get() {
      return { name, help, type, aggregator: 'sum', values: samples(await snapshot()) };
    },
  };
}

/** Counters `prefix|a|b` → samples labelled by `labels`. */
function byPrefix(counters: Record<string, number>, prefix: string, labels: string[], scale = 1): Sample[] {
  return Object.entries(counters)
    .filter(([k]) => k.startsWith(`${prefix}|`))
    .map(([k, v]) => {
      const parts = k.split('|').slice(1);
      return { labels: Object.fromEntries(labels.map((l, i) => [l, parts[i] ?? ''])), value: v * scale };
    });
}

/** The transition script stores each bucket on its own; Prometheus wants them cumulative. */
function histogram(metric: string, name: string, counters: Record<string, number>): Sample[] {
  let cumulative = 0;
  const buckets = HISTOGRAM_BOUNDS.map((le) => {
    cumulative += counters[`h|${name}|${le}`] ?? 0;
    return { metricName: `${metric}_bucket`, labels: { le }, value: cumulative };
  });
  return [
    ...buckets,
    { metricName: `${metric}_sum`, value: (counters[`h|${name}|sum_ms`] ?? 0) / 1000 },
    { metricName: `${metric}_count`, value: cumulative },
  ];
}

export interface Metrics {
  registry: Registry;
  observeWebhookLag(seconds: number): void;
}

export function createMetrics(deps: { read: () => Promise<MetricsSnapshot>; webhookCounters?: WebhookCounters }): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  // One Redis read per scrape, shared by every metric of that scrape.
  let pending: Promise<MetricsSnapshot> | undefined;
  const snapshot = () => {
    pending ??= deps.read().finally(() => setTimeout(() => (pending = undefined), 0));
    return pending;
  };
  const histo = (metric: string, name: string) => (s: MetricsSnapshot) => histogram(metric, name, s.counters);
  const metrics = [
    computed(
      'rbm_messages_total',
      'Moves of messages into each state, by agent.',
      'counter',
      (s) => byPrefix(s.counters, 'state', ['state', 'agent']),
      snapshot,
    ),
    computed(
      'rbm_fallbacks_total',
      'SMS fallbacks queued, by what triggered them.',
      'counter',
      (s) => byPrefix(s.counters, 'fallback', ['reason']),
      snapshot,
    ),
    computed(
      'rbm_rate_limited_total',
      '429 answers, by queue (an agent, or the SMS provider).',
      'counter',
      (s) => byPrefix(s.counters, 'ratelimited', ['queue']),
      snapshot,
    ),
    computed(
      'rbm_throttled_seconds_total',
      'Time queues were paused by 429s.',
      'counter',
      (s) => byPrefix(s.counters, 'throttled_ms', ['queue'], 1 / 1000),
      snapshot,
    ),
    computed(
      'rbm_retries_total',
      'Failed tries that will be retried, by queue.',
      'counter',
      (s) => byPrefix(s.counters, 'retries', ['queue']),
      snapshot,
    ),
    computed(
      'rbm_deferred_total',
      'Tries put back without using an attempt because no access token could be had, by queue.',
      'counter',
      (s) => byPrefix(s.counters, 'deferred', ['queue']),
      snapshot,
    ),
    computed(
      'rbm_token_requests_total',
      'OAuth token requests, by outcome: issued, unavailable, refused.',
      'counter',
      (s) => byPrefix(s.counters, 'token', ['outcome']).filter((x) => x.labels?.outcome !== 'rejected'),
      snapshot,
    ),
    computed(
      'rbm_unauthorized_total',
      'RBM calls answered 401 (each gets one fresh token; a second 401 fails the call with RBM_AUTH).',
      'counter',
      (s) => [{ value: s.counters['token|rejected'] ?? 0 }],
      snapshot,
    ),
    computed(
      'rbm_time_to_delivered_seconds',
      'From enqueue to the first news of delivery.',
      'histogram',
      histo('rbm_time_to_delivered_seconds', 'delivered'),
      snapshot,
    ),
    computed(
      'rbm_time_to_fallback_seconds',
      'From enqueue to the SMS being sent.',
      'histogram',
      histo('rbm_time_to_fallback_seconds', 'fallback'),
      snapshot,
    ),
    computed(
      'rbm_inbound_events_total',
      'Inbound events handled, and those about messages we do not know.',
      'counter',
      (s) => byPrefix(s.counters, 'inbound', ['outcome']),
      snapshot,
    ),
    computed(
      'rbm_callbacks_total',
      'Status callback attempts: delivered, retried, failed (for good).',
      'counter',
      (s) => byPrefix(s.counters, 'callback', ['outcome']),
      snapshot,
    ),
    computed(
      'rbm_callback_feed_pending',
      'Status changes not yet turned into callback deliveries.',
      'gauge',
      (s) => [{ value: s.callbackFeedPending }],
      snapshot,
    ),
    computed(
      'rbm_callbacks_parked_total',
      "Callback deliveries put back without a call or an attempt: open (the receiver's breaker), busy (its in-flight cap).",
      'counter',
      (s) => byPrefix(s.counters, 'callback_parked', ['reason']),
      snapshot,
    ),
    computed(
      'rbm_callback_breakers_total',
      'Callback receiver breakers opened and closed.',
      'counter',
      (s) => byPrefix(s.counters, 'callback_breaker', ['event']),
      snapshot,
    ),
    computed(
      'rbm_callback_receivers_open',
      'Callback receivers whose breaker is open now: their deliveries wait for a probe call to succeed.',
      'gauge',
      (s) => [{ value: s.callbackReceiversOpen }],
      snapshot,
    ),
    computed(
      'rbm_queue_jobs',
      'Jobs per queue and state.',
      'gauge',
      (s) => s.queues.flatMap((q) => Object.entries(q.counts).map(([state, value]) => ({ labels: { queue: q.queue, state }, value }))),
      snapshot,
    ),
    computed(
      'rbm_agent_effective_rate',
      "Messages per second an agent's limiter allows now: its configured rate, or less after 429s.",
      'gauge',
      (s) => s.agentRates.map(({ agent, rate }) => ({ labels: { agent }, value: rate })),
      snapshot,
    ),
    computed(
      'rbm_dispatch_process_agents',
      'Agents each live dispatch process serves now (src/agents/assignment.ts).',
      'gauge',
      (s) => s.dispatchers.map(({ id, agents }) => ({ labels: { process: id }, value: agents })),
      snapshot,
    ),
    computed(
      'rbm_dispatch_process_redis_connections',
      'Redis connections each live dispatch process holds: about one per agent it serves, plus a few of its own.',
      'gauge',
      (s) => s.dispatchers.map(({ id, connections }) => ({ labels: { process: id }, value: connections })),
      snapshot,
    ),
    computed(
      'rbm_webhook_events_pending',
      'Verified webhook events not yet handled by the inbound worker.',
      'gauge',
      (s) => [{ value: s.webhookEventsPending }],
      snapshot,
    ),
  ];
  for (const m of metrics) register(registry, m);
  const counters = deps.webhookCounters;
  if (counters) {
    register(registry, {
      name: 'rbm_webhooks_total',
      help: 'Webhook requests received by this process, by outcome.',
      type: 'counter',
      aggregator: 'sum',
      get: async () => ({
        name: 'rbm_webhooks_total',
        help: '',
        type: 'counter',
        aggregator: 'sum',
        values: Object.entries(counters).map(([outcome, value]) => ({ labels: { outcome }, value })),
      }),
    });
  }
  const lag = new Histogram({
    name: 'rbm_webhook_lag_seconds',
    help: "From RBM's sendTime to our receipt of the webhook.",
    buckets: [0.1, 0.5, 1, 2, 5, 10, 30, 60, 300, 600],
    registers: [registry],
  });
  return { registry, observeWebhookLag: (seconds) => lag.observe(Math.max(0, seconds)) };
}

export interface MetricsRouteOptions {
  registry: Pick<Registry, 'contentType' | 'metrics'>;
}

export const metricsRoute: FastifyPluginAsync<MetricsRouteOptions> = async (app, { registry }) => {
  app.get('/metrics', async (_request, reply) => reply.type(registry.contentType).send(await registry.metrics()));
};
