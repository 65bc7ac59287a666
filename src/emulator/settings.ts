/**
 * The emulator's tunable behaviour and the checks of the control-API bodies
 * that set it: per-phone delivery settings with emulator-wide defaults, the
 * TTL revoke-failure rate, and the webhook (target, tokens, Google's retry
 * schedule, and the duplicate/reorder/late-delivery knobs).
 */
import { isPlainObject } from './validate.ts';

/** Per phone, falling back to the emulator-wide defaults. */
export interface DeliverySettings {
  /** Accepted (or come-online) → DELIVERED, ms. Default 0: right after the 200 answer. */
  deliveryDelayMs: number;
  /** DELIVERED → READ, ms. Default 1000. */
  readDelayMs: number;
  /** Chance (0..1) that a delivered message is read. Default 0. */
  readProbability: number;
  /**
   * When set, a message with a TTL is delivered this many ms before its own
   * expireTime (instead of after deliveryDelayMs): "delivered just before its
   * TTL", whatever the sender's queueing delay was. Unset by default.
   */
  deliverBeforeExpiryMs?: number;
}

export const DELIVERY_DEFAULTS: Readonly<DeliverySettings> = { deliveryDelayMs: 0, readDelayMs: 1000, readProbability: 0 };

export interface PlatformDefaults extends DeliverySettings {
  /** Chance (0..1) that an expiring message fails to be revoked (TTL_EXPIRATION_REVOKE_FAILED, stays deliverable). Default 0. */
  revokeFailedRate: number;
}

export interface WebhookTuning {
  /** false holds every event (nothing dropped) until set back to true, like Google retrying a dead endpoint. Default true. */
  enabled: boolean;
  /** Chance (0..1) that an envelope is also sent a second time (same data, new Pub/Sub messageId). Default 0. */
  duplicateRate: number;
  /** Each envelope waits a random 0..window ms, so events overtake each other. Default 0. */
  reorderWindowMs: number;
  /** Fixed delay before every first attempt (late events), ms. Default 0. */
  extraDelayMs: number;
  /** Retry n waits min(retryBaseMs * 2^n, retryMaxMs). Defaults 1000 / 600000 (spec §6.5). */
  retryBaseMs: number;
  retryMaxMs: number;
  /** Give up (drop, counted) this long after publishing. Default 7 days (spec §6.5). */
  retryForMs: number;
}

export interface WebhookConfig extends WebhookTuning {
  url: string | undefined;
  /** agentId → client token; '*' serves any agent without its own. */
  clientTokens: Record<string, string>;
}

export const WEBHOOK_DEFAULTS: Readonly<WebhookTuning> = {
  enabled: true,
  duplicateRate: 0,
  reorderWindowMs: 0,
  extraDelayMs: 0,
  retryBaseMs: 1000,
  retryMaxMs: 600_000,
  retryForMs: 7 * 24 * 3600 * 1000,
};

function fail(name: string, expected: string, got: unknown): never {
  throw new TypeError(`${name} must be ${expected}, got ${JSON.stringify(got)}`);
}

function ms(name: string, v: unknown, min = 0): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min) fail(name, `a number of ms >= ${min}`, v);
  return v;
}

function probability(name: string, v: unknown): number {
  if (typeof v !== 'number' || !(v >= 0 && v <= 1)) fail(name, 'a number in 0..1', v);
  return v;
}

const DELIVERY_KEYS = ['deliveryDelayMs', 'readDelayMs', 'readProbability', 'deliverBeforeExpiryMs'] as const;

function checkDelivery(raw: Record<string, unknown>, nullable: boolean): Partial<Record<keyof DeliverySettings, number | null>> {
  const out: Partial<Record<keyof DeliverySettings, number | null>> = {};
  for (const k of DELIVERY_KEYS) {
    const v = raw[k];
    if (v === undefined) continue;
    if (v === null && nullable) out[k] = null;
    else out[k] = k === 'readProbability' ? probability(k, v) : ms(k, v);
  }
  return out;
}

export interface PhonePatch {
  rcs?: boolean;
  online?: boolean;
  /** null drops the phone's own value, back to the emulator-wide default. */
  deliveryDelayMs?: number | null;
  readDelayMs?: number | null;
  readProbability?: number | null;
  deliverBeforeExpiryMs?: number | null;
}

export function checkPhonePatch(input: unknown): PhonePatch {
  if (!isPlainObject(input))
    fail('the body', '{rcs?, online?, deliveryDelayMs?, readDelayMs?, readProbability?, deliverBeforeExpiryMs?}', input);
  const out: PhonePatch = checkDelivery(input, true);
  for (const k of ['rcs', 'online'] as const) {
    const v = input[k];
    if (v === undefined) continue;
    if (typeof v !== 'boolean') fail(k, 'a boolean', v);
    out[k] = v;
  }
  return out;
}

export function checkDefaults(input: unknown): Partial<PlatformDefaults> {
  if (!isPlainObject(input)) fail('the body', '{deliveryDelayMs?, readDelayMs?, readProbability?, revokeFailedRate?}', input);
  const out = checkDelivery(input, false) as Partial<PlatformDefaults>;
  if (input.revokeFailedRate !== undefined) out.revokeFailedRate = probability('revokeFailedRate', input.revokeFailedRate);
  return out;
}

export type WebhookPatch = Partial<Omit<WebhookConfig, 'url'>> & { url?: string | null };

/** Checks a PUT /_emulator/webhook body (and the start option); `url: null` removes the target. */
export function checkWebhookPatch(input: unknown): WebhookPatch {
  if (!isPlainObject(input)) fail('the webhook config', 'a JSON object', input);
  const out: WebhookPatch = {};
  if (input.url !== undefined) {
    if (input.url === null) out.url = null;
    else if (typeof input.url !== 'string' || !/^https?:\/\/[^/]/.test(input.url) || !URL.canParse(input.url))
      fail('url', 'an http(s) URL', input.url);
    else out.url = input.url;
  }
  if (input.clientTokens !== undefined) {
    const t = input.clientTokens;
    if (!isPlainObject(t) || !Object.values(t).every((v) => typeof v === 'string' && v !== '')) {
      fail('clientTokens', 'an object of agentId (or "*") → non-empty token', '<redacted>');
    }
    out.clientTokens = { ...(t as Record<string, string>) };
  }
  if (input.enabled !== undefined) {
    if (typeof input.enabled !== 'boolean') fail('enabled', 'a boolean', input.enabled);
    out.enabled = input.enabled;
  }
  if (input.duplicateRate !== undefined) out.duplicateRate = probability('duplicateRate', input.duplicateRate);
  for (const k of ['reorderWindowMs', 'extraDelayMs'] as const) if (input[k] !== undefined) out[k] = ms(k, input[k]);
  for (const k of ['retryBaseMs', 'retryMaxMs', 'retryForMs'] as const) if (input[k] !== undefined) out[k] = ms(k, input[k], 1);
  return out;
}
