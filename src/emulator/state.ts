/**
 * Everything the emulator remembers: virtual phones, what reached them, the
 * per-agent ID namespace used for duplicate suppression, counters, quotas,
 * faults, the delivery clock, the webhook queue and the SMS sink. Routes
 * mutate it; tests and benchmarks read it directly or through the control
 * API, and wait on `events` instead of polling.
 */
import { EventEmitter } from 'node:events';
import { Faults } from './faults.ts';
import { TokenFaults } from './token-faults.ts';
import { Lifecycle, type LifecycleHost } from './lifecycle.ts';
import { OAuthIssuer } from './oauth.ts';
import { TokenBucket, checkQuotaConfig, type QuotaConfig } from './quota.ts';
import {
  WAIT_DEFAULT_MS,
  zeroCounters,
  type Arrival,
  type Counters,
  type DuplicateResponse,
  type EmulatorEvents,
  type MessageArrival,
  type Phone,
  type StateOptions,
} from './records.ts';
import { Scheduler } from './scheduler.ts';
import { DELIVERY_DEFAULTS, checkDefaults, type DeliverySettings, type PhonePatch, type PlatformDefaults } from './settings.ts';
import { SmsSink } from './sms.ts';
import { WebhookSender, type WebhookAttempt, type WebhookHost } from './webhook.ts';

export type {
  Arrival,
  Counters,
  DuplicateResponse,
  EmulatorEvents,
  MessageArrival,
  Phone,
  StateOptions,
  WebhookOptions,
} from './records.ts';

/** Default reachability rule: a number ending in '0' is not RCS-enabled, every other number is. */
export const defaultRcsRule = (e164: string): boolean => !e164.endsWith('0');

export class EmulatorState implements WebhookHost, LifecycleHost {
  readonly events = new EventEmitter<EmulatorEvents>();
  readonly scheduler = new Scheduler();
  readonly lifecycle = new Lifecycle(this);
  readonly webhooks: WebhookSender;
  readonly sms = new SmsSink();
  readonly oauth = new OAuthIssuer();
  readonly faults = new Faults();
  /** Faults of the token endpoint (POST /token), apart from the RBM paths'. */
  readonly tokenFaults = new TokenFaults();
  readonly phones = new Map<string, Phone>();
  /** Per agent: every message/event ID used, with what it produced (spec §4.3: one namespace per agent). */
  readonly ids = new Map<string, Map<string, Arrival>>();
  readonly messages = new Map<string, MessageArrival>();
  readonly quotas = new Map<string, TokenBucket>();
  readonly perAgent = new Map<string, { accepted: number; rateLimited: number }>();
  counters: Counters = zeroCounters();
  duplicateResponse: DuplicateResponse;
  defaultRcs: (e164: string) => boolean;
  phoneDefaults: DeliverySettings;
  revokeFailedRate: number;
  /** Set once listening; the token endpoint accepts it as an `aud`. */
  baseUrl: string | undefined;
  private readonly initial: StateOptions;

  constructor(opts: StateOptions = {}) {
    this.initial = opts;
    this.duplicateResponse = opts.duplicateResponse ?? '200';
    this.defaultRcs = opts.defaultRcs ?? defaultRcsRule;
    const { revokeFailedRate, ...delivery } = this.initialDefaults();
    this.revokeFailedRate = revokeFailedRate;
    this.phoneDefaults = delivery;
    this.webhooks = new WebhookSender(this, opts.webhook);
    for (const [agentId, q] of Object.entries(opts.quotas ?? {})) this.setQuota(agentId, q);
    // Tests attach many waiters; the default cap of 10 would only print a false leak warning.
    this.events.setMaxListeners(0);
  }

  phone(e164: string): Phone {
    let p = this.phones.get(e164);
    if (p === undefined) {
      p = { e164, rcs: this.defaultRcs(e164), online: true, arrivals: [], settings: {}, held: [] };
      this.phones.set(e164, p);
    }
    return p;
  }

  /** Reachability without creating a phone record, so 404 traffic costs no memory. */
  isRcs(e164: string): boolean {
    const p = this.phones.get(e164);
    return p === undefined ? this.defaultRcs(e164) : p.rcs;
  }

  /** Coming online releases the messages held for the phone; a null setting falls back to the default. */
  setPhone(e164: string, patch: PhonePatch): Phone {
    const p = this.phone(e164);
    if (patch.rcs !== undefined) p.rcs = patch.rcs;
    for (const k of ['deliveryDelayMs', 'readDelayMs', 'readProbability', 'deliverBeforeExpiryMs'] as const) {
      const v = patch[k];
      if (v === null) delete p.settings[k];
      else if (v !== undefined) p.settings[k] = v;
    }
    if (patch.online !== undefined && patch.online !== p.online) {
      const now = Date.now();
      this.scheduler.runDue(now);
      p.online = patch.online;
      if (p.online) this.lifecycle.release(p, now);
    }
    return p;
  }

  /** Emulator-wide defaults (phones without their own values, and the TTL revoke-failure rate). */
  setDefaults(patch: Partial<PlatformDefaults>): PlatformDefaults {
    const { revokeFailedRate, ...delivery } = patch;
    if (revokeFailedRate !== undefined) this.revokeFailedRate = revokeFailedRate;
    this.phoneDefaults = { ...this.phoneDefaults, ...delivery };
    return this.defaults();
  }

  defaults(): PlatformDefaults {
    return { ...this.phoneDefaults, revokeFailedRate: this.revokeFailedRate };
  }

  onAttempt(attempt: WebhookAttempt): void {
    this.events.emit('webhook', attempt);
  }

  usedId(agentId: string, id: string): Arrival | undefined {
    return this.ids.get(agentId)?.get(id);
  }

  agentCounters(agentId: string): { accepted: number; rateLimited: number } {
    let c = this.perAgent.get(agentId);
    if (c === undefined) {
      c = { accepted: 0, rateLimited: 0 };
      this.perAgent.set(agentId, c);
    }
    return c;
  }

  /** Records a first use of an ID. The caller has checked it is unused. */
  recordArrival(a: Arrival): void {
    let agentIds = this.ids.get(a.agentId);
    if (agentIds === undefined) {
      agentIds = new Map();
      this.ids.set(a.agentId, agentIds);
    }
    agentIds.set(a.id, a);
    this.phone(a.phone).arrivals.push(a);
    if (a.kind === 'message') {
      this.messages.set(a.id, a as MessageArrival);
      this.counters.messagesAccepted += 1;
    } else {
      this.counters.eventsAccepted += 1;
    }
    this.counters.accepted += 1;
    this.agentCounters(a.agentId).accepted += 1;
    this.events.emit('arrival', a);
  }

  recordDuplicate(a: Arrival, now = Date.now()): void {
    a.count += 1;
    a.arrivalTimes.push(now);
    this.counters.duplicatesSuppressed += 1;
    this.events.emit('duplicate', a);
  }

  /** Revokes an undelivered message of this agent to this phone; false = unknown or already delivered (404). */
  revoke(agentId: string, e164: string, messageId: string, now = Date.now()): boolean {
    // Whatever was due by now has happened: a delivery that is late only on the timer still wins.
    this.scheduler.runDue(now);
    const a = this.usedId(agentId, messageId);
    if (a === undefined || a.kind !== 'message' || a.phone !== e164) return false;
    const m = a as MessageArrival;
    if (m.delivered) return false;
    if (!m.revoked) {
      m.revoked = true;
      m.revokedAt = now;
      this.counters.revoked += 1;
      this.events.emit('revoke', m);
    }
    return true;
  }

  /** Throws a TypeError on a quota no bucket can enforce (also for quotas given at start). */
  setQuota(agentId: string, q: QuotaConfig): void {
    this.quotas.set(agentId, new TokenBucket(checkQuotaConfig(q)));
  }

  deleteQuota(agentId: string): boolean {
    return this.quotas.delete(agentId);
  }

  /**
   * Waits for the next arrival matching `pred` (tests and benchmarks; no polling). The default deadline
   * only bounds how long a failure takes, so it leaves a busy machine room (WAIT_DEFAULT_MS).
   */
  waitForArrival(pred: (a: Arrival) => boolean, timeoutMs = WAIT_DEFAULT_MS): Promise<Arrival> {
    return this.waitFor('arrival', pred, timeoutMs);
  }

  /** Waits for the next `event` whose argument matches `pred`, e.g. waitFor('delivered', (m) => m.id === id). */
  waitFor<K extends keyof EmulatorEvents>(
    event: K,
    pred: (arg: EmulatorEvents[K][0]) => boolean = () => true,
    timeoutMs = WAIT_DEFAULT_MS,
  ): Promise<EmulatorEvents[K][0]> {
    const events = this.events as unknown as EventEmitter;
    return new Promise((resolve, reject) => {
      const on = (arg: EmulatorEvents[K][0]): void => {
        if (!pred(arg)) return;
        clearTimeout(timer);
        events.off(event, on);
        resolve(arg);
      };
      const timer = setTimeout(() => {
        events.off(event, on);
        reject(new Error(`no matching '${event}' event within ${timeoutMs} ms`));
      }, timeoutMs);
      events.on(event, on);
    });
  }

  /**
   * Back to the state right after start: phones, IDs, counters, faults, pending
   * deliveries and webhooks (timers included) and SMS cleared; quotas, defaults
   * and the webhook config back to those given at start. Keys and tokens
   * survive, so a running service keeps its credentials across test cases.
   */
  reset(): void {
    this.scheduler.clear();
    this.webhooks.reset();
    this.sms.clear();
    this.setDefaults(this.initialDefaults());
    this.phones.clear();
    this.ids.clear();
    this.messages.clear();
    this.perAgent.clear();
    this.counters = zeroCounters();
    this.faults.clear();
    this.tokenFaults.clear();
    this.quotas.clear();
    for (const [agentId, q] of Object.entries(this.initial.quotas ?? {})) this.setQuota(agentId, q);
  }

  /** Stops every timer and webhook POST; the state stays readable. */
  async close(): Promise<void> {
    this.scheduler.clear();
    await this.webhooks.close();
  }

  private initialDefaults(): PlatformDefaults {
    const { phoneDefaults, revokeFailedRate } = this.initial;
    // Start options go through the control API's checks, so a bad value fails startEmulator loudly.
    return { ...DELIVERY_DEFAULTS, revokeFailedRate: 0, ...checkDefaults({ ...phoneDefaults, revokeFailedRate }) };
  }

  countersView(): Counters & { perAgent: Record<string, { accepted: number; rateLimited: number }> } {
    return { ...this.counters, perAgent: Object.fromEntries([...this.perAgent].map(([k, v]) => [k, { ...v }])) };
  }
}
