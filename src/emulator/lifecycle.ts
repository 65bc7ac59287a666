/**
 * What happens to an accepted agent message: delivered after the phone's delay
 * (held while the phone is offline), maybe READ, and TTL expiry with revoke or
 * revoke failure (spec §2.2, §6.6 C, §8.3). Every step is a Scheduler task at a
 * time on the emulator's clock, and each checks the message's state first, so
 * a message ends up delivered or revoked, never both.
 */
import type { EventEmitter } from 'node:events';
import { userEvent, serverEvent } from './envelope.ts';
import type { Counters, EmulatorEvents, MessageArrival, Phone } from './records.ts';
import type { Scheduler } from './scheduler.ts';
import type { DeliverySettings } from './settings.ts';
import type { WebhookSender } from './webhook.ts';

/** What a Lifecycle uses of the emulator's state: EmulatorState implements it (so this file need not import state.ts). */
export interface LifecycleHost {
  readonly phoneDefaults: DeliverySettings;
  readonly revokeFailedRate: number;
  readonly scheduler: Scheduler;
  readonly counters: Counters;
  readonly events: EventEmitter<EmulatorEvents>;
  readonly webhooks: WebhookSender;
  phone(e164: string): Phone;
}

export class Lifecycle {
  constructor(private readonly s: LifecycleHost) {}

  settingsOf(phone: Phone | undefined): DeliverySettings {
    const d = this.s.phoneDefaults;
    const own = phone?.settings;
    if (own === undefined) return d;
    const before = own.deliverBeforeExpiryMs ?? d.deliverBeforeExpiryMs;
    return {
      deliveryDelayMs: own.deliveryDelayMs ?? d.deliveryDelayMs,
      readDelayMs: own.readDelayMs ?? d.readDelayMs,
      readProbability: own.readProbability ?? d.readProbability,
      ...(before !== undefined ? { deliverBeforeExpiryMs: before } : {}),
    };
  }

  /** Starts the clock of a just-accepted message (called right after it is recorded). */
  accept(m: MessageArrival, now: number): void {
    if (m.expireAtMs !== undefined) this.s.scheduler.at(Math.max(m.expireAtMs, now), (at) => this.expire(m, at));
    const phone = this.s.phone(m.phone);
    if (phone.online) this.scheduleDelivery(m, phone, now);
    else phone.held.push(m);
  }

  /** The phone came online: what it missed is delivered deliveryDelayMs from now. */
  release(phone: Phone, now: number): void {
    const held = phone.held;
    phone.held = [];
    for (const m of held) if (!m.delivered && !m.revoked) this.scheduleDelivery(m, phone, now);
  }

  private scheduleDelivery(m: MessageArrival, phone: Phone, now: number): void {
    const { deliveryDelayMs, deliverBeforeExpiryMs } = this.settingsOf(phone);
    const at =
      deliverBeforeExpiryMs !== undefined && m.expireAtMs !== undefined
        ? Math.max(now, m.expireAtMs - deliverBeforeExpiryMs)
        : now + deliveryDelayMs;
    this.s.scheduler.at(at, (t) => this.deliver(m, t));
  }

  private deliver(m: MessageArrival, at: number): void {
    if (m.delivered || m.revoked) return;
    // The heap already runs an earlier expiry first; this keeps the rule local: expired by `at` means expiry decides first.
    if (m.expireAtMs !== undefined && at >= m.expireAtMs && m.ttlEvent === undefined) {
      this.expire(m, at);
      if (m.revoked) return;
    }
    const phone = this.s.phone(m.phone);
    if (!phone.online) {
      phone.held.push(m);
      return;
    }
    m.delivered = true;
    m.deliveredAt = at;
    this.s.counters.delivered += 1;
    this.s.events.emit('delivered', m);
    if (this.s.webhooks.active) this.s.webhooks.publish(m.agentId, userEvent(m.phone, m.agentId, 'DELIVERED', at, m.id), undefined, at);
    const { readProbability, readDelayMs } = this.settingsOf(phone);
    if (readProbability > 0 && Math.random() < readProbability) this.s.scheduler.at(at + readDelayMs, (t) => this.read(m, t));
  }

  private read(m: MessageArrival, at: number): void {
    m.read = true;
    m.readAt = at;
    this.s.counters.read += 1;
    this.s.events.emit('read', m);
    if (this.s.webhooks.active) this.s.webhooks.publish(m.agentId, userEvent(m.phone, m.agentId, 'READ', at, m.id), undefined, at);
  }

  /** TTL reached before delivery: revoked (never delivered afterwards), or, at revokeFailedRate, still deliverable. */
  private expire(m: MessageArrival, at: number): void {
    if (m.delivered || m.revoked || m.ttlEvent !== undefined) return;
    const failed = this.s.revokeFailedRate > 0 && Math.random() < this.s.revokeFailedRate;
    m.expiredAt = at;
    if (failed) {
      m.ttlEvent = 'TTL_EXPIRATION_REVOKE_FAILED';
      this.s.counters.ttlRevokeFailed += 1;
    } else {
      m.ttlEvent = 'TTL_EXPIRATION_REVOKED';
      m.revoked = true;
      m.revokedAt = at;
      this.s.counters.ttlRevoked += 1;
    }
    this.s.events.emit('expired', m);
    if (this.s.webhooks.active) this.s.webhooks.publish(m.agentId, serverEvent(m.phone, m.agentId, m.ttlEvent, m.id, at), undefined, at);
  }
}
