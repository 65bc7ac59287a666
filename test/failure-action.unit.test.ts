/**
 * The runner's decision (src/queue/failure-action.ts): what each failure
 * class becomes on a queue with or without an adaptive rate, with or without
 * a wait of its own, on any attempt; then real errors through classify() and
 * the decision together. Pure: no BullMQ, no Redis.
 */
import { describe, expect, it } from 'vitest';
import { CallbackDeliveryError, CallbackExpiredError, CallbackParkedError } from '../src/callbacks/errors.ts';
import {
  type Classification,
  classify,
  PayloadError,
  RbmApiError,
  RbmAuthError,
  RbmNetworkError,
  RbmTokenUnavailableError,
  StatusTransitionError,
} from '../src/errors.ts';
import { type FailureAction, type FailureFacts, failureAction, retryAfterOf } from '../src/queue/failure-action.ts';
import { SmsProviderError } from '../src/sms/errors.ts';

const PAUSE = 1_000;
const facts = (over: Partial<FailureFacts> = {}): FailureFacts => ({
  retryAfterMs: undefined,
  attemptsMade: 0,
  maxAttempts: 8,
  adaptive: false,
  rateLimitPauseMs: PAUSE,
  ...over,
});
const CLASSES: readonly Classification[] = ['retry', 'rateLimited', 'defer', 'permanent', 'notRcs'];

describe('failureAction: rateLimited (429)', () => {
  it('without an adaptive rate: the queue pauses for Retry-After, or the default pause when none was said', () => {
    expect(failureAction('rateLimited', facts({ retryAfterMs: 7_000 }))).toEqual({ kind: 'pause-queue', ms: 7_000 });
    expect(failureAction('rateLimited', facts())).toEqual({ kind: 'pause-queue', ms: PAUSE });
  });

  it('with one and no Retry-After: the rate is lowered and nothing pauses; the job waits the default pause', () => {
    expect(failureAction('rateLimited', facts({ adaptive: true }))).toEqual({ kind: 'throttle', ms: PAUSE });
  });

  it('with one and a Retry-After: RBM said how long, so the queue pauses that long', () => {
    expect(failureAction('rateLimited', facts({ adaptive: true, retryAfterMs: 30_000 }))).toEqual({ kind: 'pause-queue', ms: 30_000 });
  });

  it('a Retry-After of 0 counts as none said', () => {
    expect(failureAction('rateLimited', facts({ retryAfterMs: 0 }))).toEqual({ kind: 'pause-queue', ms: PAUSE });
    expect(failureAction('rateLimited', facts({ retryAfterMs: 0, adaptive: true }))).toEqual({ kind: 'throttle', ms: PAUSE });
  });
});

describe('failureAction: defer (no token, a parked callback)', () => {
  it('delays the job by its own wait, or the default pause; the queue and its rate are untouched', () => {
    for (const adaptive of [false, true]) {
      expect(failureAction('defer', facts({ adaptive, retryAfterMs: 4_321 }))).toEqual({ kind: 'delay', ms: 4_321 });
      expect(failureAction('defer', facts({ adaptive }))).toEqual({ kind: 'delay', ms: PAUSE });
    }
  });
});

describe('failureAction: attempts', () => {
  it('permanent fails the job on any attempt', () => {
    for (const attemptsMade of [0, 3, 7, 20]) expect(failureAction('permanent', facts({ attemptsMade }))).toEqual({ kind: 'fail' });
  });

  it('retry rethrows; the last attempt is the one that makes attemptsMade + 1 reach maxAttempts', () => {
    const cases: Array<[attemptsMade: number, maxAttempts: number, last: boolean]> = [
      [0, 1, true],
      [0, 2, false],
      [1, 2, true],
      [0, 8, false],
      [6, 8, false],
      [7, 8, true],
      // Past it (the attempts were lowered while the job waited): still the last.
      [9, 8, true],
    ];
    for (const [attemptsMade, maxAttempts, lastAttempt] of cases) {
      expect(failureAction('retry', facts({ attemptsMade, maxAttempts })), `${attemptsMade}/${maxAttempts}`).toEqual({
        kind: 'retry',
        lastAttempt,
      });
    }
  });

  it('a 429 or a deferral on the last attempt uses no attempt: delayed, never failed', () => {
    const last = { attemptsMade: 7, maxAttempts: 8 };
    expect(failureAction('rateLimited', facts(last)).kind).toBe('pause-queue');
    expect(failureAction('rateLimited', facts({ ...last, adaptive: true })).kind).toBe('throttle');
    expect(failureAction('defer', facts(last)).kind).toBe('delay');
  });

  it('notRcs that escapes a handler is retried like any failure not understood here', () => {
    expect(failureAction('notRcs', facts())).toEqual({ kind: 'retry', lastAttempt: false });
  });

  it('over every class and context: only retry and fail use an attempt, and every wait is the one said or the default', () => {
    const kinds = new Map<Classification, Set<FailureAction['kind']>>();
    for (const kind of CLASSES) {
      for (const adaptive of [false, true]) {
        for (const retryAfterMs of [undefined, 0, 1, 60_000]) {
          for (const [attemptsMade, maxAttempts] of [
            [0, 1],
            [0, 8],
            [7, 8],
          ] as const) {
            const action = failureAction(kind, facts({ adaptive, retryAfterMs, attemptsMade, maxAttempts }));
            if (!kinds.has(kind)) kinds.set(kind, new Set());
            kinds.get(kind)!.add(action.kind);
            if ('ms' in action) expect(action.ms).toBe(retryAfterMs || PAUSE);
          }
        }
      }
    }
    expect(Object.fromEntries([...kinds].map(([k, v]) => [k, [...v].sort()]))).toEqual({
      retry: ['retry'],
      rateLimited: ['pause-queue', 'throttle'],
      defer: ['delay'],
      permanent: ['fail'],
      notRcs: ['retry'],
    });
  });
});

describe('retryAfterOf', () => {
  it('reads a number, and nothing else, from anything thrown', () => {
    expect(retryAfterOf({ retryAfterMs: 250 })).toBe(250);
    expect(retryAfterOf(new RbmTokenUnavailableError('down', { retryAfterMs: 900 }))).toBe(900);
    for (const v of [undefined, null, 'x', 42, {}, { retryAfterMs: '5000' }, { retryAfterMs: null }, new Error('x')]) {
      expect(retryAfterOf(v), String(v)).toBeUndefined();
    }
  });
});

describe('real errors through classify() and the decision', () => {
  const api = (status: number, retryAfterMs?: number) =>
    new RbmApiError({ status, rpcStatus: 'X', message: 'x', method: 'POST', path: '/p', retryAfterMs });
  const decide = (err: unknown, over: Partial<FailureFacts> = {}) =>
    failureAction(classify(err), facts({ retryAfterMs: retryAfterOf(err), ...over }));

  it('maps each error the handlers let through to its BullMQ action', () => {
    const cases: Array<[string, unknown, Partial<FailureFacts>, FailureAction]> = [
      ['RBM 429 with Retry-After', api(429, 5_000), {}, { kind: 'pause-queue', ms: 5_000 }],
      ['RBM 429 with Retry-After, adaptive', api(429, 5_000), { adaptive: true }, { kind: 'pause-queue', ms: 5_000 }],
      ['RBM 429 without, adaptive', api(429), { adaptive: true }, { kind: 'throttle', ms: PAUSE }],
      ['RBM 503', api(503), {}, { kind: 'retry', lastAttempt: false }],
      ['RBM 503, last attempt', api(503), { attemptsMade: 7 }, { kind: 'retry', lastAttempt: true }],
      ['RBM 400', api(400), {}, { kind: 'fail' }],
      ['RBM 404 (a handler makes it an outcome; escaped, it is retried)', api(404), {}, { kind: 'retry', lastAttempt: false }],
      ['no answer from RBM', new RbmNetworkError('ECONNRESET'), {}, { kind: 'retry', lastAttempt: false }],
      ['no token', new RbmTokenUnavailableError('down', { retryAfterMs: 12_000 }), {}, { kind: 'delay', ms: 12_000 }],
      ['key refused', new RbmAuthError('invalid_grant'), {}, { kind: 'fail' }],
      ['bad payload', new PayloadError('send-message payload', []), {}, { kind: 'fail' }],
      [
        'SMS 429',
        new SmsProviderError({ provider: 'twilio', kind: 'rateLimited', message: 'x', retryAfterMs: 3_000 }),
        {},
        {
          kind: 'pause-queue',
          ms: 3_000,
        },
      ],
      ['SMS 500', new SmsProviderError({ provider: 'twilio', kind: 'retry', message: 'x' }), {}, { kind: 'retry', lastAttempt: false }],
      ['callback parked', new CallbackParkedError('https://r', 'busy', 800), {}, { kind: 'delay', ms: 800 }],
      ['callback not delivered', new CallbackDeliveryError('https://r', 500, ''), {}, { kind: 'retry', lastAttempt: false }],
      ['callback expired', new CallbackExpiredError('https://r', ''), {}, { kind: 'fail' }],
      ['event still settling', new StatusTransitionError('m', 'SENT', 'DELIVERED'), {}, { kind: 'retry', lastAttempt: false }],
      ['a Redis hiccup', new Error('Connection is closed.'), {}, { kind: 'retry', lastAttempt: false }],
      ['a thrown null', null, { attemptsMade: 0, maxAttempts: 1 }, { kind: 'retry', lastAttempt: true }],
    ];
    for (const [name, err, over, expected] of cases) expect(decide(err, over), name).toEqual(expected);
  });
});
