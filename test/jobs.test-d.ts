/**
 * Type tests of the public job types: the registry's job names, each job's
 * payload type, and what a producer accepts (the library's and the API's
 * input). Type-checked by vitest (typecheck.include: test/**\/*.test-d.ts),
 * never run. The contracts' job IDs are pinned by their runtime tests; here,
 * only what the queue registry relies on: a payload holds its job's key, and a
 * queue kind's worker needs a handler for each of its job names.
 */
import { describe, expectTypeOf, it } from 'vitest';
import {
  type AgentMessage,
  type CheckExpiryPayload,
  type CHECK_EXPIRY,
  type DELIVER_CALLBACK,
  type DeliverCallbackPayload,
  type INBOUND_EVENT,
  type InboundEventPayload,
  type JobKeys,
  type JobName,
  type JobPayloads,
  type JobsOf,
  jobs,
  type SEND_EVENT,
  type SEND_MESSAGE,
  type SEND_SMS,
  type SendEventInput,
  type SendEventPayload,
  type SendMessageInput,
  type SendMessagePayload,
  type SendSmsPayload,
  type Validation,
  validatePayload,
} from '../jobs/index.ts';
import type { Producer, EnqueuedEvent, EnqueuedMessage, SendOptions } from '../src/index.ts';
import type * as library from '../src/index.ts';

describe('the job registry', () => {
  it('names six jobs, each under its own constant, each entry named as its key', () => {
    expectTypeOf<JobName>().toEqualTypeOf<
      'send-message' | 'send-event' | 'inbound-event' | 'check-expiry' | 'send-sms' | 'deliver-callback'
    >();
    expectTypeOf<keyof typeof jobs>().toEqualTypeOf<JobName>();
    expectTypeOf<
      typeof SEND_MESSAGE | typeof SEND_EVENT | typeof INBOUND_EVENT | typeof CHECK_EXPIRY | typeof SEND_SMS | typeof DELIVER_CALLBACK
    >().toEqualTypeOf<JobName>();
    expectTypeOf<{ [N in JobName]: (typeof jobs)[N]['name'] }>().toEqualTypeOf<{ [N in JobName]: N }>();
    expectTypeOf(jobs['send-message'].name).toEqualTypeOf<'send-message'>();
    expectTypeOf(jobs['send-event'].name).toEqualTypeOf<'send-event'>();
  });

  it('gives each job name the payload type its module exports', () => {
    expectTypeOf<JobPayloads>().toEqualTypeOf<{
      'send-message': SendMessagePayload;
      'send-event': SendEventPayload;
      'inbound-event': InboundEventPayload;
      'check-expiry': CheckExpiryPayload;
      'send-sms': SendSmsPayload;
      'deliver-callback': DeliverCallbackPayload;
    }>();
  });

  it('validatePayload answers with the payload type of the name it is given, and takes no other name', () => {
    expectTypeOf(validatePayload('send-sms', {})).toEqualTypeOf<Validation<SendSmsPayload>>();
    expectTypeOf(validatePayload('check-expiry', {})).toEqualTypeOf<Validation<CheckExpiryPayload>>();
    // @ts-expect-error: not a job name
    validatePayload('send-fax', {});
  });
});

describe('what the queue registry relies on', () => {
  it('every payload holds what its job ID is made of (src/queue/job-queues.ts keyOf)', () => {
    expectTypeOf<JobPayloads[typeof SEND_MESSAGE]>().toExtend<JobKeys[typeof SEND_MESSAGE]>();
    expectTypeOf<JobPayloads[typeof SEND_EVENT]>().toExtend<JobKeys[typeof SEND_EVENT]>();
    expectTypeOf<JobPayloads[typeof INBOUND_EVENT]>().toExtend<JobKeys[typeof INBOUND_EVENT]>();
    expectTypeOf<JobPayloads[typeof CHECK_EXPIRY]>().toExtend<JobKeys[typeof CHECK_EXPIRY]>();
    expectTypeOf<JobPayloads[typeof SEND_SMS]>().toExtend<JobKeys[typeof SEND_SMS]>();
    expectTypeOf<JobPayloads[typeof DELIVER_CALLBACK]>().toExtend<JobKeys[typeof DELIVER_CALLBACK]>();
  });

  it('each queue kind carries the job names its worker must handle', () => {
    expectTypeOf<JobsOf<'outbound'>>().toEqualTypeOf<typeof SEND_MESSAGE | typeof SEND_EVENT>();
    expectTypeOf<JobsOf<'inbound'>>().toEqualTypeOf<typeof INBOUND_EVENT | typeof CHECK_EXPIRY>();
    expectTypeOf<JobsOf<'sms'>>().toEqualTypeOf<typeof SEND_SMS>();
    expectTypeOf<JobsOf<'callbacks'>>().toEqualTypeOf<typeof DELIVER_CALLBACK>();
  });
});

describe('payload types', () => {
  it('pins the payloads workers read', () => {
    expectTypeOf<JobPayloads['check-expiry']>().toEqualTypeOf<{ messageId: string; agentId: string; to: string; expireAt: number }>();
    expectTypeOf<JobPayloads['send-sms']['reason']>().toEqualTypeOf<
      'NOT_RCS' | 'TTL_EXPIRATION_REVOKED' | 'TTL_EXPIRATION_REVOKE_FAILED' | 'DEADLINE' | 'REVOKED_BY_PRODUCER'
    >();
    expectTypeOf<JobPayloads['send-sms']>().toEqualTypeOf<{
      messageId: string;
      agentId: string;
      to: string;
      text: string;
      from?: string | undefined;
      reason: JobPayloads['send-sms']['reason'];
      queuedAt: number;
    }>();
    expectTypeOf<JobPayloads['send-event']>().toEqualTypeOf<{
      eventId: string;
      agentId: string;
      to: string;
      eventType: 'READ' | 'IS_TYPING';
      messageId?: string | undefined;
      enqueuedAt: number;
    }>();
    expectTypeOf<JobPayloads['send-message']>().toEqualTypeOf<{
      messageId: string;
      agentId: string;
      to: string;
      message: AgentMessage;
      fallback?: { sms: { text: string; from?: string | undefined } } | undefined;
      enqueuedAt: number;
      expireAt?: number | undefined;
      batchId?: string | undefined;
      callback?: { url: string; scope: string } | undefined;
    }>();
    expectTypeOf<JobPayloads['inbound-event']['kind']>().toEqualTypeOf<
      'userMessage' | 'userEvent' | 'serverEvent' | 'agentLaunchEvent' | 'unknown'
    >();
    expectTypeOf<JobPayloads['inbound-event']['payload']>().toEqualTypeOf<Record<string, unknown>>();
    expectTypeOf<AgentMessage['messageTrafficType']>().toEqualTypeOf<
      'AUTHENTICATION' | 'TRANSACTION' | 'PROMOTION' | 'SERVICEREQUEST' | 'ACKNOWLEDGEMENT' | undefined
    >();
  });
});

describe('what a producer accepts', () => {
  it('the library exports the input types the Producer takes', () => {
    expectTypeOf<library.SendMessageInput>().toEqualTypeOf<SendMessageInput>();
    expectTypeOf<library.SendEventInput>().toEqualTypeOf<SendEventInput>();
    expectTypeOf<Producer['sendMessage']>().parameters.toEqualTypeOf<[SendMessageInput, (SendOptions | undefined)?]>();
    expectTypeOf<Producer['sendMessages']>().parameter(0).toEqualTypeOf<readonly SendMessageInput[]>();
    expectTypeOf<Producer['sendBatch']>().parameter(0).toEqualTypeOf<readonly SendMessageInput[]>();
    expectTypeOf<Producer['sendEvent']>().parameter(0).toEqualTypeOf<SendEventInput>();
    expectTypeOf<Producer['sendEvents']>().parameter(0).toEqualTypeOf<readonly SendEventInput[]>();
    expectTypeOf<Producer['sendMessage']>().returns.toEqualTypeOf<Promise<EnqueuedMessage>>();
    expectTypeOf<Producer['sendEvent']>().returns.toEqualTypeOf<Promise<EnqueuedEvent>>();
  });

  it('a message input: RBM’s AgentMessage fields at top level, `to`, and our optional fields', () => {
    expectTypeOf<SendMessageInput['to']>().toEqualTypeOf<string>();
    expectTypeOf<SendMessageInput['agentId']>().toEqualTypeOf<string | undefined>();
    expectTypeOf<SendMessageInput['idempotencyKey']>().toEqualTypeOf<string | undefined>();
    expectTypeOf<SendMessageInput['messageId']>().toEqualTypeOf<string | undefined>();
    expectTypeOf<SendMessageInput['callbackUrl']>().toEqualTypeOf<string | undefined>();
    expectTypeOf<SendMessageInput['fallback']>().toEqualTypeOf<{ sms: { text: string; from?: string | undefined } } | undefined>();
    expectTypeOf<SendMessageInput['messageTrafficType']>().toEqualTypeOf<AgentMessage['messageTrafficType']>();
    expectTypeOf<{ to: string; contentMessage: { text: string } }>().toExtend<SendMessageInput>();
    expectTypeOf<{
      to: string;
      contentMessage: { text: string };
      ttl: string;
      fallback: { sms: { text: string } };
    }>().toExtend<SendMessageInput>();
    // No phone, no message.
    expectTypeOf<{ contentMessage: { text: string } }>().not.toExtend<SendMessageInput>();
    // A payload is not an input: its message is nested, ours is at top level.
    expectTypeOf<SendMessagePayload>().not.toExtend<SendMessageInput>();
  });

  it('an event input: READ or IS_TYPING, to a phone', () => {
    expectTypeOf<SendEventInput['eventType']>().toEqualTypeOf<'READ' | 'IS_TYPING'>();
    expectTypeOf<SendEventInput['to']>().toEqualTypeOf<string>();
    expectTypeOf<{ to: string; eventType: 'READ'; messageId: string }>().toExtend<SendEventInput>();
    expectTypeOf<{ to: string; eventType: 'DELIVERED' }>().not.toExtend<SendEventInput>();
  });
});
