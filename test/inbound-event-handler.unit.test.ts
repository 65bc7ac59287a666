/**
 * The inbound-event handler against fakes: which webhook event moves which
 * record, binding to the verifying agent and the message's phone, parking
 * while our own step is under way, the TTL events' policies, and what reaches
 * consumers. No Redis, no network.
 */
import { describe, expect, it } from 'vitest';
import { classify, PayloadError, RbmApiError, StatusTransitionError } from '../src/errors.ts';
import { type FallbackOutcome, PHONE_FIELD } from '../src/fallback/fallback.ts';
import { createInboundEventHandler } from '../src/handlers/inbound-event.ts';
import type { InboundEventPayload } from '../jobs/inbound-event.ts';
import type { MessageState } from '../src/status/states.ts';
import { type FakeRecord, fakeDeadlines, fakeFallback, fakeStatus, recordingLog, rejection } from './fakes.ts';

const ID = '2f1e0c7e-4a3b-4c5d-9e8f-0a1b2c3d4e5f';
const REF = { agentId: 'agent-a', messageId: ID };
const PHONE = '+12223334444';
const OTHER_PHONE = '+15556667777';
const ctx = { jobId: 'in-1', attempt: 1, maxAttempts: 2030 };

const envelope = (kind: string, payload: Record<string, unknown>) => ({ kind, agentId: 'agent-a', payload, receivedAt: 1 });
const userEvent = (eventType: string, over: Record<string, unknown> = {}) =>
  envelope('userEvent', { senderPhoneNumber: PHONE, eventType, eventId: 'e-1', messageId: ID, ...over });
const serverEvent = (eventType: string, over: Record<string, unknown> = {}) =>
  envelope('serverEvent', { phoneNumber: PHONE, eventType, eventId: 'e-2', messageId: ID, ...over });

interface Setup {
  /** The message's record; its full phone is kept unless `fields` says otherwise. */
  state?: MessageState;
  fields?: Record<string, string>;
  trafficType?: string;
  revoke?: boolean | Error;
  fallback?: (reason: string) => FallbackOutcome;
  heldByOtherAgent?: boolean;
  markRead?: boolean;
}

function setup(s: Setup = {}) {
  const record: Partial<FakeRecord> & { state: MessageState } = {
    state: s.state ?? 'SENT',
    fields: s.fields ?? { [PHONE_FIELD]: PHONE, to: '+1222***4444' },
    trafficType: s.trafficType,
  };
  const status = fakeStatus(s.state === undefined && s.fields === undefined ? {} : { [`agent-a/${ID}`]: record });
  const fallback = fakeFallback(s.fallback ? (req) => s.fallback!(req.reason) : undefined);
  const deadlines = fakeDeadlines();
  const log = recordingLog();
  const counted: string[] = [];
  const published: InboundEventPayload[] = [];
  const revokes: unknown[] = [];
  const reads: unknown[][] = [];
  const handler = createInboundEventHandler({
    status: status.port,
    requestFallback: fallback.requestFallback,
    deadlines: deadlines.port,
    rbm: {
      async revokeMessage(args) {
        revokes.push(args);
        if (s.revoke instanceof Error) throw s.revoke;
        return s.revoke ?? true;
      },
    },
    consumers: { publish: async (e) => void published.push(e) },
    immediateOnRevokeFailed: ['AUTHENTICATION'],
    ...(s.markRead ? { markRead: async (...args: unknown[]) => void reads.push(args) } : {}),
    count: async (name) => void counted.push(name),
    heldByOtherAgent: async () => s.heldByOtherAgent ?? false,
    log,
  });
  return { handler, status, fallback, deadlines, log, counted, published, revokes, reads };
}

describe('inbound-event: DELIVERED and READ', () => {
  for (const eventType of ['DELIVERED', 'READ'] as const) {
    it(`${eventType} moves a SENT message there and cancels its local deadline`, async () => {
      const s = setup({ state: 'SENT' });
      await expect(s.handler(userEvent(eventType), ctx)).resolves.toEqual({ outcome: eventType });
      expect(s.status.path(REF)).toEqual([eventType]);
      expect(s.status.calls[0]!.options).toEqual({ event: eventType });
      expect(s.deadlines.cancelled).toEqual([REF]);
      expect(s.counted).toEqual(['inboundEvents']);
    });
  }

  for (const state of ['FAILED', 'EXPIRED', 'REVOKED', 'FALLBACK_QUEUED', 'FALLBACK_SENT', 'FALLBACK_FAILED'] as const) {
    it(`a late DELIVERED wins over ${state}: the RCS message did reach the phone`, async () => {
      const s = setup({ state });
      await expect(s.handler(userEvent('DELIVERED'), ctx)).resolves.toEqual({ outcome: 'DELIVERED' });
      expect(s.status.record(REF)!.state).toBe('DELIVERED');
    });
  }

  it('a DELIVERED after READ changes nothing and is not parked', async () => {
    const s = setup({ state: 'READ' });
    await expect(s.handler(userEvent('DELIVERED'), ctx)).resolves.toEqual({ outcome: 'NO_CHANGE', event: 'DELIVERED', state: 'READ' });
    expect(s.status.record(REF)!.parked).toEqual([]);
    expect(s.deadlines.cancelled).toEqual([]);
  });

  it('a DELIVERED without the messageId it reports on is invalid (permanent)', async () => {
    const s = setup({ state: 'SENT' });
    const err = await rejection(s.handler(userEvent('DELIVERED', { messageId: undefined }), ctx));
    expect(err).toBeInstanceOf(PayloadError);
    expect((err as PayloadError).problems).toEqual([{ path: 'messageId', problem: 'required for DELIVERED' }]);
    expect(classify(err)).toBe('permanent');
  });
});

describe('inbound-event: bound to the agent and the phone', () => {
  it('a message unknown to this agent: counted and dropped', async () => {
    const s = setup();
    await expect(s.handler(userEvent('DELIVERED'), ctx)).resolves.toEqual({ outcome: 'UNKNOWN_MESSAGE', event: 'DELIVERED' });
    expect(s.counted).toEqual(['inboundEvents', 'unknownMessageEvents']);
    expect(s.status.calls).toEqual([]);
  });

  it('a message of another agent: counted as agentMismatch, moves nothing', async () => {
    const s = setup({ heldByOtherAgent: true });
    await expect(s.handler(serverEvent('TTL_EXPIRATION_REVOKED'), ctx)).resolves.toEqual({
      outcome: 'AGENT_MISMATCH',
      event: 'TTL_EXPIRATION_REVOKED',
    });
    expect(s.counted).toEqual(['inboundEvents', 'agentMismatch']);
    expect(s.fallback.requests).toEqual([]);
  });

  it('another phone: counted as phoneMismatch, moves nothing, logged masked and at most once per window', async () => {
    const s = setup({ state: 'SENT' });
    for (let i = 0; i < 3; i++) {
      await expect(s.handler(userEvent('DELIVERED', { senderPhoneNumber: OTHER_PHONE }), ctx)).resolves.toEqual({
        outcome: 'PHONE_MISMATCH',
        event: 'DELIVERED',
      });
    }
    expect(s.counted.filter((c) => c === 'phoneMismatch')).toHaveLength(3);
    expect(s.status.calls).toEqual([]);
    expect(s.log.lines).toHaveLength(1);
    expect(s.log.lines[0]!.obj).toMatchObject({ phone: '+1555***7777', expected: '+1222***4444' });
    expect(s.log.text()).not.toContain(OTHER_PHONE);
  });

  it('before the full number is kept (QUEUED), the masked one decides: same mask passes, another fails', async () => {
    const masked = { to: '+1222***4444' };
    const same = setup({ state: 'QUEUED', fields: masked });
    await expect(same.handler(userEvent('DELIVERED'), ctx)).resolves.toEqual({ outcome: 'PARKED', event: 'DELIVERED' });
    const other = setup({ state: 'QUEUED', fields: masked });
    await expect(other.handler(userEvent('DELIVERED', { senderPhoneNumber: OTHER_PHONE }), ctx)).resolves.toMatchObject({
      outcome: 'PHONE_MISMATCH',
    });
  });
});

describe('inbound-event: the message is still waiting on our own step', () => {
  for (const state of ['SENDING', 'FALLBACK_SENDING'] as const) {
    it(`${state}: the whole event is parked on the record`, async () => {
      const s = setup({ state });
      const event = userEvent('READ');
      await expect(s.handler(event, ctx)).resolves.toEqual({ outcome: 'PARKED', event: 'READ' });
      expect(s.status.record(REF)!.parked).toEqual([{ eventType: 'READ', event }]);
      expect(s.status.record(REF)!.state).toBe(state);
      expect(s.deadlines.cancelled).toEqual([]);
    });
  }

  it('it settled between the refusal and the park: handled again, and applied', async () => {
    const s = setup({ state: 'SENDING' });
    // Refused from SENDING; the send settles (SENT) before the park, which then finds nothing to wait for.
    s.status.scripted.push(() => {
      s.status.record(REF)!.state = 'SENT';
      return { ok: false, from: 'SENDING' };
    });
    await expect(s.handler(userEvent('DELIVERED'), ctx)).resolves.toEqual({ outcome: 'DELIVERED' });
    expect(s.status.record(REF)).toMatchObject({ state: 'DELIVERED', parked: [] });
    expect(s.deadlines.cancelled).toEqual([REF]);
  });

  it('past three such rounds the queue’s retry takes over (StatusTransitionError, retry)', async () => {
    const s = setup({ state: 'SENDING' });
    s.status.answerParks('SENT', 'SENT', 'SENT');
    const err = await rejection(s.handler(userEvent('DELIVERED'), ctx));
    expect(err).toBeInstanceOf(StatusTransitionError);
    expect(err).toMatchObject({ messageId: ID, from: 'SENT', to: 'DELIVERED' });
    expect(classify(err)).toBe('retry');
    expect(s.status.calls).toHaveLength(3);
  });
});

describe('inbound-event: TTL_EXPIRATION_REVOKED', () => {
  it('falls back (RBM revoked it) and cancels the local deadline', async () => {
    const s = setup({ state: 'SENT' });
    await expect(s.handler(serverEvent('TTL_EXPIRATION_REVOKED'), ctx)).resolves.toEqual({ outcome: 'FALLBACK_QUEUED' });
    expect(s.fallback.requests).toEqual([
      { ...REF, reason: 'TTL_EXPIRATION_REVOKED', event: 'TTL_EXPIRATION_REVOKED', detail: 'RBM revoked the message at its TTL' },
    ]);
    expect(s.deadlines.cancelled).toEqual([REF]);
  });

  it('refused by a delivered message: no change, the deadline stays as it was', async () => {
    const s = setup({ state: 'DELIVERED', fallback: () => ({ outcome: 'REFUSED', state: 'DELIVERED' }) });
    await expect(s.handler(serverEvent('TTL_EXPIRATION_REVOKED'), ctx)).resolves.toEqual({
      outcome: 'NO_CHANGE',
      event: 'TTL_EXPIRATION_REVOKED',
      state: 'DELIVERED',
    });
    expect(s.deadlines.cancelled).toEqual([]);
  });

  it('refused by a message still sending: parked', async () => {
    const s = setup({ state: 'SENDING', fallback: () => ({ outcome: 'REFUSED', state: 'SENDING' }) });
    await expect(s.handler(serverEvent('TTL_EXPIRATION_REVOKED'), ctx)).resolves.toEqual({
      outcome: 'PARKED',
      event: 'TTL_EXPIRATION_REVOKED',
    });
  });

  it('EVENT_TYPE_UNSPECIFIED is ignored before any lookup', async () => {
    const s = setup();
    await expect(s.handler(serverEvent('EVENT_TYPE_UNSPECIFIED'), ctx)).resolves.toEqual({
      outcome: 'IGNORED',
      eventType: 'EVENT_TYPE_UNSPECIFIED',
    });
    expect(s.counted).toEqual(['inboundEvents']);
  });
});

describe('inbound-event: TTL_EXPIRATION_REVOKE_FAILED', () => {
  const FAILED = 'TTL_EXPIRATION_REVOKE_FAILED';

  it('a traffic type that falls back at once (AUTHENTICATION): SMS now, no revoke', async () => {
    const s = setup({ state: 'SENT', trafficType: 'AUTHENTICATION' });
    await expect(s.handler(serverEvent(FAILED), ctx)).resolves.toEqual({ outcome: 'FALLBACK_QUEUED' });
    expect(s.revokes).toEqual([]);
    expect(s.fallback.requests).toEqual([{ ...REF, reason: FAILED, event: FAILED, detail: 'AUTHENTICATION: falling back at once' }]);
    expect(s.deadlines.cancelled).toEqual([REF]);
  });

  it('any other: revoke; 200 falls back', async () => {
    const s = setup({ state: 'SENT', trafficType: 'PROMOTION', revoke: true });
    await expect(s.handler(serverEvent(FAILED), ctx)).resolves.toEqual({ outcome: 'FALLBACK_QUEUED' });
    expect(s.revokes).toEqual([{ agentId: 'agent-a', to: PHONE, messageId: ID }]);
    expect(s.fallback.requests).toMatchObject([{ reason: FAILED, detail: 'revoked after the failed TTL revocation (200)' }]);
    expect(s.deadlines.cancelled).toEqual([REF]);
  });

  it('any other: revoke; 404 means delivered', async () => {
    const s = setup({ state: 'SENT', revoke: false });
    await expect(s.handler(serverEvent(FAILED), ctx)).resolves.toEqual({ outcome: 'DELIVERED' });
    expect(s.status.path(REF)).toEqual(['DELIVERED']);
    expect(s.fallback.requests).toEqual([]);
  });

  it('revoke refused for good (403): REVOKE_REFUSED, logged; the local deadline is left to decide', async () => {
    const err = new RbmApiError({ status: 403, rpcStatus: 'PERMISSION_DENIED', message: 'x', method: 'DELETE', path: '/p' });
    const s = setup({ state: 'SENT', revoke: err });
    await expect(s.handler(serverEvent(FAILED), ctx)).resolves.toEqual({ outcome: 'REVOKE_REFUSED' });
    expect(s.log.lines.map((l) => l.level)).toEqual(['error']);
    expect(s.deadlines.cancelled).toEqual([]);
  });

  it('revoke failing for now (503): thrown, so the event is retried; nothing cancelled', async () => {
    const err = new RbmApiError({ status: 503, rpcStatus: 'UNAVAILABLE', message: 'x', method: 'DELETE', path: '/p' });
    const s = setup({ state: 'SENT', revoke: err });
    expect(await rejection(s.handler(serverEvent(FAILED), ctx))).toBe(err);
    expect(classify(err, 'revoke')).toBe('retry');
    expect(s.deadlines.cancelled).toEqual([]);
  });

  it('a message no longer SENT keeps the event in its timeline where the edge allows (QUEUED → EXPIRED), else no change', async () => {
    const queued = setup({ state: 'QUEUED' });
    await expect(queued.handler(serverEvent(FAILED), ctx)).resolves.toEqual({ outcome: 'EXPIRED' });
    expect(queued.status.calls[0]!.options).toEqual({ event: FAILED, detail: 'revocation at TTL failed' });
    const failed = setup({ state: 'FAILED' });
    await expect(failed.handler(serverEvent(FAILED), ctx)).resolves.toEqual({ outcome: 'NO_CHANGE', event: FAILED, state: 'FAILED' });
    expect([...queued.revokes, ...failed.revokes]).toEqual([]);
    const delivered = setup({ state: 'DELIVERED' });
    await expect(delivered.handler(serverEvent(FAILED), ctx)).resolves.toMatchObject({ outcome: 'NO_CHANGE', state: 'DELIVERED' });
  });
});

describe('inbound-event: for consumers', () => {
  it('a user message is published, and marked read when asked', async () => {
    const s = setup({ markRead: true });
    const event = envelope('userMessage', { senderPhoneNumber: PHONE, messageId: 'MxU-1', text: 'hi' });
    await expect(s.handler(event, ctx)).resolves.toEqual({ outcome: 'PUBLISHED', kind: 'userMessage' });
    expect(s.published).toEqual([event]);
    expect(s.reads).toEqual([[PHONE, 'MxU-1', 'agent-a']]);
  });

  it('user events other than DELIVERED/READ, launch events and unknown kinds are published as they came', async () => {
    const s = setup({ markRead: true });
    const events = [
      userEvent('IS_TYPING', { messageId: undefined }),
      envelope('agentLaunchEvent', { anything: 1 }),
      envelope('unknown', { x: 'y' }),
    ];
    for (const e of events) await expect(s.handler(e, ctx)).resolves.toMatchObject({ outcome: 'PUBLISHED', kind: e.kind });
    expect(s.published).toEqual(events);
    expect(s.reads).toEqual([]);
  });

  it('a user message without its sender is invalid, and is not published', async () => {
    const s = setup();
    await expect(s.handler(envelope('userMessage', { messageId: 'MxU-1' }), ctx)).rejects.toBeInstanceOf(PayloadError);
    expect(s.published).toEqual([]);
  });
});

describe('inbound-event: an invalid envelope', () => {
  it('is permanent and not counted', async () => {
    const s = setup();
    for (const bad of [null, { kind: 'userEvent' }, { ...userEvent('READ'), kind: 'email' }, { ...userEvent('READ'), agentId: '' }]) {
      const err = await rejection(s.handler(bad, ctx));
      expect(err).toBeInstanceOf(PayloadError);
      expect(classify(err)).toBe('permanent');
    }
    expect(s.counted).toEqual([]);
  });
});
