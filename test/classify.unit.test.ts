/**
 * classify() (src/errors.ts) beyond the named cases of error-catalogue.test.ts:
 * every RBM status for every kind of call, an error's own kind against its
 * class and code, network errors, values that are not errors, and every code
 * of ERROR_CATALOGUE against the class it gives. Pure: no I/O.
 */
import { describe, expect, it } from 'vitest';
import {
  type Classification,
  classify,
  DispatchError,
  ERROR_CATALOGUE,
  type ErrorCode,
  ErrorCodes,
  PayloadError,
  RbmApiError,
  RbmNetworkError,
} from '../src/errors.ts';
import { SmsProviderError } from '../src/sms/errors.ts';

type Call = 'send' | 'event' | 'revoke' | 'capabilities';
const CALLS: readonly Call[] = ['send', 'event', 'revoke', 'capabilities'];
const CLASSES = new Set<Classification>(['retry', 'rateLimited', 'defer', 'permanent', 'notRcs']);
const api = (status: number) => new RbmApiError({ status, rpcStatus: 'X', message: 'x', method: 'POST', path: '/p' });

/** RBM_API's line of the catalogue, as a rule: 429 rate-limits, 404 on a send is NOT_RCS, 408 and 5xx retry, the rest fail for good. */
function rbmRule(status: number, call: Call): Classification {
  if (status === 429) return 'rateLimited';
  if (status === 404) return call === 'send' || call === 'event' ? 'notRcs' : 'permanent';
  if (status === 408 || (status >= 500 && status <= 599)) return 'retry';
  return 'permanent';
}

describe('classify: RBM answers', () => {
  it('every status from 300 to 599, for every call, follows RBM_API’s rule', () => {
    const wrong: string[] = [];
    for (let status = 300; status <= 599; status++) {
      for (const call of CALLS) {
        const got = classify(api(status), call);
        if (got !== rbmRule(status, call)) wrong.push(`${status} ${call}: ${got}`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it('only a 404 on a send or an event means NOT_RCS', () => {
    const notRcs: string[] = [];
    for (let status = 100; status <= 599; status++)
      for (const call of CALLS) if (classify(api(status), call) === 'notRcs') notRcs.push(`${status} ${call}`);
    expect(notRcs).toEqual(['404 send', '404 event']);
  });

  it('a send is the default call', () => {
    expect(classify(api(404))).toBe('notRcs');
  });

  it('a Retry-After does not change the class: the status does', () => {
    const err = (status: number) => new RbmApiError({ status, rpcStatus: 'X', message: 'x', method: 'POST', path: '/p', retryAfterMs: 5 });
    expect([classify(err(429)), classify(err(503)), classify(err(400))]).toEqual(['rateLimited', 'retry', 'permanent']);
  });
});

describe('classify: an error’s own kind', () => {
  it('wins over its status and over its code’s class', () => {
    expect(classify(Object.assign(api(500), { kind: 'permanent' }))).toBe('permanent');
    expect(classify(Object.assign(api(400), { kind: 'retry' }))).toBe('retry');
    expect(classify(Object.assign(new PayloadError('p', []), { kind: 'defer' }))).toBe('defer');
    expect(classify(Object.assign(new Error('x'), { kind: 'rateLimited' }))).toBe('rateLimited');
  });

  it('is one of retry, permanent, rateLimited, defer; anything else is ignored', () => {
    for (const kind of ['notRcs', 'byStatus', 'byKind', 'RETRY', '', 1, null, { kind: 'retry' }]) {
      expect(classify(Object.assign(api(400), { kind })), String(kind)).toBe('permanent');
      expect(classify({ kind }), String(kind)).toBe('retry');
    }
  });

  it('an SMS provider error is what its adapter decided, whatever its HTTP status', () => {
    const sms = (kind: 'retry' | 'permanent' | 'rateLimited', status: number) =>
      new SmsProviderError({ provider: 'webhook', kind, message: 'x', status });
    expect(classify(sms('permanent', 503))).toBe('permanent');
    expect(classify(sms('retry', 400))).toBe('retry');
    expect(classify(sms('rateLimited', 200))).toBe('rateLimited');
  });
});

describe('classify: failures that are not ours', () => {
  it('network errors, Redis errors and timeouts are retried', () => {
    const errs = [
      ...['ECONNRESET', 'ECONNREFUSED', 'ETIMEDOUT', 'ENOTFOUND', 'EPIPE', 'EAI_AGAIN'].map((code) =>
        Object.assign(new Error(`connect ${code}`), { code }),
      ),
      Object.assign(new Error('The operation was aborted'), { name: 'AbortError' }),
      new TypeError('fetch failed'),
      new Error('Connection is closed.'),
      new Error("Reached the max retries per request limit (which is 20). Refer to 'maxRetriesPerRequest' option for details."),
      new RbmNetworkError('socket hang up'),
    ];
    for (const err of errs) expect(classify(err), err.message).toBe('retry');
  });

  it('a fetch-style error with an HTTP status is not read as an RBM answer', () => {
    expect(classify(Object.assign(new Error('x'), { status: 400 }))).toBe('retry');
    expect(classify(Object.assign(new Error('x'), { status: 429 }))).toBe('retry');
  });

  it('values that are not errors are retried, and classify never throws on them', () => {
    const values: unknown[] = [
      undefined,
      null,
      0,
      1,
      '',
      'boom',
      true,
      Symbol('s'),
      [],
      () => 1,
      Object.create(null),
      { code: 'RBM_AUTH' },
    ];
    for (const v of values) expect(classify(v), String(typeof v)).toBe('retry');
  });
});

describe('classify: the catalogue', () => {
  const codes = Object.keys(ERROR_CATALOGUE) as ErrorCode[];

  it('a DispatchError with any code gets its code’s class; by status or by kind without either is retried', () => {
    const got = Object.fromEntries(codes.map((code) => [code, classify(new DispatchError(code, 'x'))]));
    const expected = Object.fromEntries(
      codes.map((code) => {
        const retry = ERROR_CATALOGUE[code].retry;
        return [code, retry === 'byStatus' || retry === 'byKind' ? 'retry' : retry];
      }),
    );
    expect(got).toEqual(expected);
  });

  it('every code’s class is one classify() can give, for every call', () => {
    for (const code of codes)
      for (const call of CALLS) expect(CLASSES.has(classify(new DispatchError(code, 'x'), call)), `${code} ${call}`).toBe(true);
  });

  it('the catalogue uses every class but notRcs, which only an RBM answer can give', () => {
    const used = new Set(codes.map((c) => ERROR_CATALOGUE[c].retry));
    expect([...used].sort()).toEqual(['byKind', 'byStatus', 'defer', 'permanent', 'retry']);
    expect(ERROR_CATALOGUE.RBM_API.retry).toBe('byStatus');
    expect(ERROR_CATALOGUE.SMS_PROVIDER.retry).toBe('byKind');
  });

  it('a code outside the catalogue is retried', () => {
    expect(classify(new DispatchError('NO_SUCH_CODE' as ErrorCode, 'x'))).toBe('retry');
    expect(classify(new DispatchError('constructor' as ErrorCode, 'x'))).toBe('retry');
    expect(ErrorCodes.PAYLOAD_INVALID).toBe('PAYLOAD_INVALID');
  });
});
