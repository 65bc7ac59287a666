/**
 * Everything the emulator remembers: virtual phones, what reached them, the
 * per-agent ID namespace used for duplicate suppression, counters, quotas and
 * faults. Routes mutate it; tests and benchmarks read it directly or through
 * the control API, and wait on `events` instead of polling.
 */
import { EventEmitter } from 'node:events';
import { Faults } from './faults.ts';
import { OAuthIssuer } from './oauth.ts';
import { TokenBucket, checkQuotaConfig, type QuotaConfig } from './quota.ts';

export type DuplicateResponse = '200' | '409';

export interface StateOptions {
  defaultRcs?: (e164: string) => boolean;
  duplicateResponse?: DuplicateResponse;
  quotas?: Record<string, QuotaConfig>;
}

export interface Phone {
  e164: string;
  rcs: boolean;
  online: boolean;
  arrivals: Arrival[];
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
  // Delivery is immediate for an online phone for now; the flag lets delays and offline queues come later.
  delivered: boolean;
  deliveredAt?: number;
  revoked: boolean;
  revokedAt?: number;
}

export interface Counters {
  requests: number;
  accepted: number;
  messagesAccepted: number;
  eventsAccepted: number;
  duplicatesSuppressed: number;
  notReachable: number;
  rateLimited: number;
  faultsInjected: number;
  unauthorized: number;
  tokensIssued: number;
  tokensRefused: number;
  revoked: number;
}

export interface EmulatorEvents {
  /** Every RBM call, before any check: lets tests wait for "a request is in flight". */
  request: [{ method: string; url: string }];
  arrival: [Arrival];
  duplicate: [Arrival];
  revoke: [MessageArrival];
}

const zeroCounters = (): Counters => ({
  requests: 0,
  accepted: 0,
  messagesAccepted: 0,
  eventsAccepted: 0,
  duplicatesSuppressed: 0,
  notReachable: 0,
  rateLimited: 0,
  faultsInjected: 0,
  unauthorized: 0,
  tokensIssued: 0,
  tokensRefused: 0,
  revoked: 0,
});

/** Default reachability rule: a number ending in '0' is not RCS-enabled, every other number is. */
export const defaultRcsRule = (e164: string): boolean => !e164.endsWith('0');

export class EmulatorState {
  readonly events = new EventEmitter<EmulatorEvents>();
  readonly oauth = new OAuthIssuer();
  readonly faults = new Faults();
  readonly phones = new Map<string, Phone>();
  /** Per agent: every message/event ID used, with what it produced (spec §4.3: one namespace per agent). */
  readonly ids = new Map<string, Map<string, Arrival>>();
  readonly messages = new Map<string, MessageArrival>();
  readonly quotas = new Map<string, TokenBucket>();
  readonly perAgent = new Map<string, { accepted: number; rateLimited: number }>();
  counters: Counters = zeroCounters();
  duplicateResponse: DuplicateResponse;
  defaultRcs: (e164: string) => boolean;
  /** Set once listening; the token endpoint accepts it as an `aud`. */
  baseUrl: string | undefined;
  private readonly initial: StateOptions;

  constructor(opts: StateOptions = {}) {
    this.initial = opts;
    this.duplicateResponse = opts.duplicateResponse ?? '200';
    this.defaultRcs = opts.defaultRcs ?? defaultRcsRule;
    for (const [agentId, q] of Object.entries(opts.quotas ?? {})) this.setQuota(agentId, q);
    // Tests attach many waiters; the default cap of 10 would only print a false leak warning.
    this.events.setMaxListeners(0);
  }

  phone(e164: string): Phone {
    let p = this.phones.get(e164);
    if (p === undefined) {
      p = { e164, rcs: this.defaultRcs(e164), online: true, arrivals: [] };
      this.phones.set(e164, p);
    }
    return p;
  }

  /** Reachability without creating a phone record, so 404 traffic costs no memory. */
  isRcs(e164: string): boolean {
    const p = this.phones.get(e164);
    return p === undefined ? this.defaultRcs(e164) : p.rcs;
  }

  setPhone(e164: string, patch: { rcs?: boolean; online?: boolean }): Phone {
    const p = this.phone(e164);
    if (patch.rcs !== undefined) p.rcs = patch.rcs;
    if (patch.online !== undefined) p.online = patch.online;
    return p;
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

  /** Waits for the next arrival matching `pred` (tests and benchmarks; no polling). */
  waitForArrival(pred: (a: Arrival) => boolean, timeoutMs = 5000): Promise<Arrival> {
    return new Promise((resolve, reject) => {
      const onArrival = (a: Arrival): void => {
        if (!pred(a)) return;
        clearTimeout(timer);
        this.events.off('arrival', onArrival);
        resolve(a);
      };
      const timer = setTimeout(() => {
        this.events.off('arrival', onArrival);
        reject(new Error(`no matching arrival within ${timeoutMs} ms`));
      }, timeoutMs);
      this.events.on('arrival', onArrival);
    });
  }

  /**
   * Back to the state right after start: phones, IDs, counters and faults cleared,
   * quotas back to those given at start. Keys and tokens survive, so a running
   * service keeps its credentials across test cases.
   */
  reset(): void {
    this.phones.clear();
    this.ids.clear();
    this.messages.clear();
    this.perAgent.clear();
    this.counters = zeroCounters();
    this.faults.clear();
    this.quotas.clear();
    for (const [agentId, q] of Object.entries(this.initial.quotas ?? {})) this.setQuota(agentId, q);
  }

  countersView(): Counters & { perAgent: Record<string, { accepted: number; rateLimited: number }> } {
    return { ...this.counters, perAgent: Object.fromEntries([...this.perAgent].map(([k, v]) => [k, { ...v }])) };
  }
}
