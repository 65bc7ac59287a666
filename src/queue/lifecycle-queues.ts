/**
 * BullMQ and Redis behind the lifecycle ports: the SMS queue (one job per
 * message, ID from the messageId), local deadlines (delayed check-expiry jobs
 * on the inbound queue), and the inbound stream consumers read.
 */
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { CHECK_EXPIRY, checkExpiryJobId, defaultCheckExpiryOptions, type CheckExpiryPayload } from '../../jobs/check-expiry.ts';
import { defaultInboundEventOptions, INBOUND_EVENT, INBOUND_QUEUE, type InboundEventPayload } from '../../jobs/inbound-event.ts';
import { SEND_SMS, SMS_QUEUE, sendSmsJobId, type SendSmsPayload } from '../../jobs/send-sms.ts';
import type { DeadlinePort, InboundConsumerPort, SmsQueuePort } from '../fallback/ports.ts';
import type { MessageRef } from '../status/store.ts';
import { sharedQueue } from './shared-queue.ts';

export class BullSmsQueue implements SmsQueuePort {
  readonly queue: Queue;
  constructor(
    connection: Redis,
    prefix: string,
    private readonly retry: { attempts: number; backoffMs: number },
  ) {
    this.queue = sharedQueue(SMS_QUEUE, connection, prefix);
  }

  async enqueue(payload: SendSmsPayload): Promise<void> {
    await this.queue.add(SEND_SMS, payload, {
      jobId: sendSmsJobId(payload.messageId, payload.agentId),
      attempts: this.retry.attempts,
      backoff: { type: 'exponential', delay: this.retry.backoffMs, jitter: 0.5 },
    });
  }

  close(): Promise<void> {
    return this.queue.close();
  }
}

export class BullDeadlines implements DeadlinePort {
  readonly queue: Queue;
  constructor(
    connection: Redis,
    prefix: string,
    private readonly now: () => number = Date.now,
  ) {
    this.queue = sharedQueue(INBOUND_QUEUE, connection, prefix);
  }

  async schedule(payload: CheckExpiryPayload, runAt: number): Promise<void> {
    await this.queue.add(CHECK_EXPIRY, payload, {
      jobId: checkExpiryJobId(payload.messageId, payload.agentId),
      delay: Math.max(0, runAt - this.now()),
      ...defaultCheckExpiryOptions,
    });
  }

  /** Best effort: a check that runs anyway finds the message delivered and does nothing. */
  async cancel(ref: MessageRef): Promise<void> {
    await this.queue.remove(checkExpiryJobId(ref.messageId, ref.agentId)).catch(() => 0);
  }

  close(): Promise<void> {
    return this.queue.close();
  }
}

/**
 * Inbound events that failed for a passing reason (Redis, a revoke call) leave
 * the webhook stream for a delayed job on the inbound queue, which BullMQ
 * retries on the inbound schedule; the stream stays a fast path.
 */
export class BullInboundRetries {
  readonly queue: Queue;
  constructor(connection: Redis, prefix: string) {
    this.queue = sharedQueue(INBOUND_QUEUE, connection, prefix);
  }

  async retryLater(event: unknown): Promise<void> {
    const { attempts, backoff } = defaultInboundEventOptions;
    // The stream's try was the first: the job starts after the schedule's first delay.
    await this.queue.add(INBOUND_EVENT, event, { attempts: attempts - 1, backoff, delay: backoff.delay });
  }

  close(): Promise<void> {
    return this.queue.close();
  }
}

/**
 * User messages and user events for consumers, in one Redis stream
 * `<prefix>:inbound` (fields: kind, agentId, payload as JSON, receivedAt),
 * capped at about maxLen entries; read it with XREAD or XREADGROUP. An
 * optional callback sees each event too (in the inbound worker's process).
 */
export class RedisInboundStream implements InboundConsumerPort {
  readonly key: string;
  constructor(
    private readonly redis: Redis,
    prefix: string,
    private readonly maxLen: number,
    private readonly callback?: (event: InboundEventPayload) => Promise<void> | void,
  ) {
    this.key = `${prefix}:inbound`;
  }

  async publish(event: InboundEventPayload): Promise<void> {
    await this.redis.xadd(
      this.key,
      'MAXLEN',
      '~',
      this.maxLen,
      '*',
      'kind',
      event.kind,
      'agentId',
      event.agentId,
      'payload',
      JSON.stringify(event.payload),
      'receivedAt',
      String(event.receivedAt),
    );
    await this.callback?.(event);
  }
}
