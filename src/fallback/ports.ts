/**
 * What the lifecycle handlers need from queues, as interfaces: handlers stay
 * free of BullMQ and test with plain fakes.
 */
import type { CheckExpiryPayload } from '../../jobs/check-expiry.ts';
import type { InboundEventPayload } from '../../jobs/inbound-event.ts';
import type { SendSmsPayload } from '../../jobs/send-sms.ts';
import type { MessageRef } from '../status/store.ts';

/** Queues the one SMS of a message; adding it twice is harmless (job ID from the agent and messageId). */
export interface SmsQueuePort {
  enqueue(payload: SendSmsPayload): Promise<void>;
}

/** The local deadline of a message with a TTL. */
export interface DeadlinePort {
  schedule(payload: CheckExpiryPayload, runAt: number): Promise<void>;
  cancel(ref: MessageRef): Promise<void>;
}

/** Where user messages and user events go for consumers (a Redis stream, a callback). */
export interface InboundConsumerPort {
  publish(event: InboundEventPayload): Promise<void>;
}

/** The fallback data kept with a message once it is being sent: all a later SMS needs. */
export interface StoredFallback {
  agentId: string;
  to: string;
  text: string;
  from?: string;
}
