/**
 * The emulator's records and their types: phones, arrivals (messages with
 * their delivery lifecycle, events), counters, the events tests wait on and
 * the state's start options.
 */
import type { ServerEventType } from './envelope.ts';
import type { TokenOutcome } from './oauth.ts';
import type { QuotaConfig } from './quota.ts';
import type { DeliverySettings, WebhookTuning } from './settings.ts';
import type { SmsRecord } from './sms.ts';
import type { WebhookAttempt, WebhookCounters } from './webhook.ts';

export type DuplicateResponse = '200' | '409';

/** The webhook given at start: target and tokens, optionally the tuning knobs of PUT /_emulator/webhook. */
export type WebhookOptions = { url: string; clientTokens: Record<string, string> } & Partial<WebhookTuning>;

export interface StateOptions {
  defaultRcs?: (e164: string) => boolean;
  duplicateResponse?: DuplicateResponse;
  quotas?: Record<string, QuotaConfig>;
  /** Emulator-wide delivery settings; a phone's own values win. */
  phoneDefaults?: Partial<DeliverySettings>;
  /** Chance (0..1) that a TTL expiry fails to revoke. Default 0. */
  revokeFailedRate?: number;
  webhook?: WebhookOptions;
}

export interface Phone {
  e164: string;
  rcs: boolean;
  online: boolean;
  arrivals: Arrival[];
  /** This phone's own delivery settings; absent keys use the emulator-wide defaults. */
  settings: Partial<DeliverySettings>;
  /** Accepted messages waiting for the phone to come online. */
  held: MessageArrival[];
}

/** One message or event ID as it reached a phone; later uses of the ID only bump `count`. */
export interface Arrival {
  kind: 'message' | 'event';
  id: string;
  agentId: string;
  phone: string;
  /** The parsed request body, kept once (the response is rebuilt from it). */
  body: Record<string, unknown>;
  sendTime: string;
  receivedAt: number;
  /** 1 + suppressed duplicates. */
  count: number;
  /** receivedAt of the first call and of each suppressed duplicate. */
  arrivalTimes: number[];
  /** The first call's raw request URL (literal '+' and all) and Authorization header. */
  wire: { url: string; authorization: string };
}

export interface MessageArrival extends Arrival {
  kind: 'message';
  expireTime?: string;
  /** expireTime in ms, for the clock. */
  expireAtMs?: number;
  /** Delivered and revoked exclude each other; the times are on the emulator's clock. */
  delivered: boolean;
  deliveredAt?: number;
  revoked: boolean;
  revokedAt?: number;
  read: boolean;
  readAt?: number;
  /** Set when the TTL ran out before delivery. */
  ttlEvent?: ServerEventType;
  expiredAt?: number;
}

/** The webhook counters (see webhook.ts) and the platform's own. */
export interface Counters extends WebhookCounters {
  requests: number;
  accepted: number;
  messagesAccepted: number;
  eventsAccepted: number;
  duplicatesSuppressed: number;
  notReachable: number;
  rateLimited: number;
  faultsInjected: number;
  unauthorized: number;
  /** Every POST /token: issued + refused + answered by an injected fault. */
  tokenRequests: number;
  tokensIssued: number;
  tokensRefused: number;
  tokenFaults: number;
  /** By DELETE (TTL revokes count in ttlRevoked). */
  revoked: number;
  delivered: number;
  read: number;
  ttlRevoked: number;
  ttlRevokeFailed: number;
  smsReceived: number;
  /** SMS requests answered from an idempotency key, not recorded again. */
  smsDuplicates: number;
}

export interface EmulatorEvents {
  /** Every RBM call, before any check: lets tests wait for "a request is in flight". */
  request: [{ method: string; url: string }];
  arrival: [Arrival];
  /** After each POST /token. */
  token: [{ outcome: TokenOutcome }];
  duplicate: [Arrival];
  revoke: [MessageArrival];
  delivered: [MessageArrival];
  read: [MessageArrival];
  /** TTL ran out before delivery; `ttlEvent` says whether it was revoked. */
  expired: [MessageArrival];
  /** After each webhook POST. */
  webhook: [WebhookAttempt];
  sms: [SmsRecord];
}

export const zeroCounters = (): Counters => ({
  requests: 0,
  accepted: 0,
  messagesAccepted: 0,
  eventsAccepted: 0,
  duplicatesSuppressed: 0,
  notReachable: 0,
  rateLimited: 0,
  faultsInjected: 0,
  unauthorized: 0,
  tokenRequests: 0,
  tokensIssued: 0,
  tokensRefused: 0,
  tokenFaults: 0,
  revoked: 0,
  delivered: 0,
  read: 0,
  ttlRevoked: 0,
  ttlRevokeFailed: 0,
  webhooksSent: 0,
  webhookAttempts: 0,
  webhookFailures: 0,
  webhooksPending: 0,
  webhooksDropped: 0,
  webhooksUnsigned: 0,
  smsReceived: 0,
  smsDuplicates: 0,
});

/** The default deadline of the emulator's waits (state.waitFor, receiver.waitFor): it bounds a failure, never slows a pass. */
export const WAIT_DEFAULT_MS = 30_000;
