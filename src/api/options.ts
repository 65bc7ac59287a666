/**
 * What buildApi() (app.ts) is given: the producer, the optional parts (revoke,
 * webhook, failures, callbacks, admin UI, metrics, health) and the API keys.
 * Its own module so that app.ts and its route files can both import it
 * without an import cycle.
 */
import type { Queue } from 'bullmq';
import type { CallbackRegistry } from '../callbacks/registry.ts';
import type { ApiKeyConfig, HttpTimeouts } from '../config.ts';
import type { UrlRefusal } from '../egress/guard.ts';
import type { RevokeResult } from '../fallback/revoke.ts';
import type { Logger } from '../logger.ts';
import type { Producer } from '../queue/producer.ts';
import type { RedriveResult } from '../queue/redrive.ts';
import type { FailureEntry, FailureQuery, MessageRef } from '../status/store.ts';
import type { WebhookOptions } from '../webhook/receiver.ts';
import type { ReadinessCheck } from './health.ts';
import type { Metrics } from './metrics.ts';

export interface ApiOptions {
  producer: Producer;
  /** DELETE /v1/messages/:id; absent: the route answers 501. */
  revoke?: (ref: MessageRef, options: { fallback?: boolean }) => Promise<RevokeResult>;
  /** POST /webhooks/rbm; absent: no webhook route. */
  webhook?: WebhookOptions;
  /** GET /v1/failures and POST /v1/failures:retry; absent: no such routes. */
  failures?: {
    list(options: FailureQuery): Promise<{ failures: FailureEntry[]; next?: number }>;
    redrive(refs: readonly MessageRef[]): Promise<RedriveResult>;
  };
  /** Status callbacks: /v1/callback and replay; absent: no such routes, and sends carry no callback. */
  callbacks?: {
    registry: CallbackRegistry;
    /** undefined: callbacks are off (no CALLBACK_SECRET). */
    secretFor(scope: string): string | undefined;
    replay(ref: MessageRef): Promise<{ messageId: string; replayed: number; url: string }>;
    /** Refuses a URL that leads to a private, loopback or metadata address (src/egress/guard.ts); absent: not checked. */
    egress?: { check(url: string): Promise<UrlRefusal | undefined> };
  };
  /** bull-board at /admin/queues over these queues; absent: no admin UI. */
  admin?: { queues: readonly Queue[]; adminKey: string | undefined; open: boolean };
  /** GET /metrics; absent: no metrics route. */
  metrics?: Metrics;
  /** /healthz and /readyz with these readiness checks; absent: no health routes. */
  readiness?: readonly ReadinessCheck[];
  apiKeys: readonly ApiKeyConfig[];
  /** With no keys configured: true lets every caller in (emulator mode), false refuses all. */
  openWithoutKeys: boolean;
  logger?: Logger | false;
  /** How long a client may take (config.http); absent: the defaults of HTTP_*_TIMEOUT_MS. */
  timeouts?: HttpTimeouts;
}
