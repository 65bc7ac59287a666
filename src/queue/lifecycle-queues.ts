/**
 * BullMQ and Redis behind the lifecycle ports: the SMS queue (one job per
 * message, ID from the messageId), local deadlines (delayed check-expiry jobs
 * on the inbound queue), and the inbound stream consumers read. Each adds
 * through the queue registry, which knows each job's queue, ID and options.
 */
import type { Redis } from 'ioredis';
import { CHECK_EXPIRY, type CheckExpiryPayload } from '../../jobs/check-expiry.ts';
import { defaultInboundEventOptions, INBOUND_EVENT, type InboundEventPayload } from '../../jobs/inbound-event.ts';
import { SEND_SMS, type SendSmsPayload } from '../../jobs/send-sms.ts';
import { validatePayload } from '../../jobs/index.ts';
import { PayloadError } from '../errors.ts';
import type { DeadlinePort, InboundConsumerPort, SmsQueuePort } from '../fallback/ports.ts';
import type { MessageRef } from '../status/store.ts';
import type { JobQueues } from './job-queues.ts';

export class BullSmsQueue implements SmsQueuePort {
  constructor(private readonly queues: JobQueues) {}

  enqueue(payload: SendSmsPayload): Promise<void> {
    return this.queues.add(SEND_SMS, payload);
  }
}

export class BullDeadlines implements DeadlinePort {
  constructor(
    private readonly queues: JobQueues,
    private readonly now: () => number = Date.now,
  ) {}

  schedule(payload: CheckExpiryPayload, runAt: number): Promise<void> {
    return this.queues.add(CHECK_EXPIRY, payload, { delay: Math.max(0, runAt - this.now()) });
  }

  /** Best effort: a check that runs anyway finds the message delivered and does nothing. */
  async cancel(ref: MessageRef): Promise<void> {
    await this.queues.remove(CHECK_EXPIRY, ref).catch(() => 'absent');
  }
}

/**
 * Inbound events that failed for a passing reason (Redis, a revoke call) leave
 * the webhook stream for a delayed job on the inbound queue, which BullMQ
 * retries on the inbound schedule; the stream stays a fast path.
 */
export class BullInboundRetries {
  constructor(private readonly queues: JobQueues) {}

  /** `event` is a stream entry the handler took as valid (an invalid one is permanent, never retried). */
  retryLater(event: unknown): Promise<void> {
    const checked = validatePayload(INBOUND_EVENT, event);
    if (!checked.ok) return Promise.reject(new PayloadError('inbound event', checked.problems));
    const { attempts, backoff } = defaultInboundEventOptions;
    // The stream's try was the first: the job starts after the schedule's first delay.
    return this.queues.add(INBOUND_EVENT, checked.value, { attempts: attempts - 1, delay: backoff.delay });
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
