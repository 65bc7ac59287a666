/**
 * The one error catalogue (src/errors.ts), no Redis, no server: every code has
 * one HTTP status and one retry class; every code the source raises, answers
 * with or records is in it; routes take their status from it; every error
 * class extends DispatchError; classify() gives what it gave before the
 * catalogue; README lists the same table.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { errorBody, sendCode, toHttpError } from '../src/api/errors.ts';
import { CallbackDeliveryError, CallbackExpiredError, CallbackParkedError } from '../src/callbacks/errors.ts';
import { ReplayError } from '../src/callbacks/replay.ts';
import { ApiError, ApiUnreachableError, CliError, CliErrorCodes, ExitCodes, InputError, UsageError } from '../src/cli/errors.ts';
import {
  AmbiguousMessageIdError,
  ConfigError,
  DispatchError,
  ERROR_CATALOGUE,
  ErrorCodes,
  PayloadError,
  RbmApiError,
  RbmAuthError,
  RbmNetworkError,
  RbmTokenUnavailableError,
  RedisCheckError,
  StatusTransitionError,
  UnknownAgentError,
  UrlForbiddenError,
  classify,
  httpStatusOf,
  statusOf,
  type Classification,
  type ErrorCode,
  type HttpCode,
} from '../src/errors.ts';
import { RevokeError } from '../src/fallback/revoke.ts';
import { SmsProviderError } from '../src/sms/errors.ts';
import { WebhookBodyError } from '../src/webhook/envelope.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SRC = join(ROOT, 'src');
const codes = Object.keys(ERROR_CATALOGUE) as ErrorCode[];
const RETRY_CLASSES = new Set(['retry', 'rateLimited', 'defer', 'permanent', 'notRcs', 'byStatus', 'byKind']);

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return tsFiles(path);
    return e.name.endsWith('.ts') ? [path] : [];
  });
}
/** The service's sources; the emulator speaks Google's error JSON (google.rpc statuses), not ours. */
const sources = tsFiles(SRC)
  .filter((f) => !relative(SRC, f).startsWith('emulator'))
  .map((f) => ({ file: relative(ROOT, f), text: readFileSync(f, 'utf8') }));

describe('the catalogue', () => {
  it('gives every code one HTTP status (or none) and one retry class', () => {
    expect(codes.length).toBeGreaterThan(40);
    for (const code of codes) {
      const entry = ERROR_CATALOGUE[code];
      expect(Object.keys(entry).sort(), code).toEqual(['http', 'means', 'retry']);
      if (entry.http !== null) {
        expect(Number.isInteger(entry.http) && entry.http >= 400 && entry.http <= 599, `${code}: ${entry.http}`).toBe(true);
      }
      expect(RETRY_CLASSES.has(entry.retry), `${code}: ${entry.retry}`).toBe(true);
      expect(entry.means.length, code).toBeGreaterThan(10);
      expect(code).toMatch(/^[A-Z][A-Z0-9_]+$/);
      expect(ErrorCodes[code]).toBe(code);
      expect(httpStatusOf(code)).toBe(entry.http);
    }
    expect(Object.keys(ErrorCodes).sort()).toEqual([...codes].sort());
    expect(httpStatusOf('NO_SUCH_CODE')).toBeNull();
    expect(httpStatusOf('constructor')).toBeNull();
  });

  it('holds every code the source raises, answers with or records', () => {
    const found = new Map<string, string>();
    const note = (code: string, file: string) => found.set(code, file);
    // Node's own errno codes, which egress/guard.ts puts on its DNS errors as dns.lookup would.
    const errno = new Set(['ENOTFOUND', 'ETIMEOUT']);
    for (const { file, text } of sources) {
      // Every code-like literal in the arguments of a sendCode or errorBody call (a ternary's both sides),
      // the call read to its closing parenthesis, over as many lines as the formatter gave it.
      for (const call of text.matchAll(/\b(?:sendCode|errorBody)\(/g)) {
        if (/function\s+$/.test(text.slice(Math.max(0, call.index - 20), call.index))) continue;
        let depth = 0;
        let end = call.index + call[0].length - 1;
        for (; end < text.length; end++) {
          if (text[end] === '(') depth++;
          else if (text[end] === ')' && --depth === 0) break;
        }
        for (const m of text.slice(call.index, end).matchAll(/'([A-Z][A-Z0-9_]{2,})'/g)) note(m[1]!, file);
      }
      for (const m of text.matchAll(/new (?:WebhookBodyError|DispatchError|ReplayError)\(\s*'([A-Z][A-Z0-9_]+)'/g)) note(m[1]!, file);
      for (const m of text.matchAll(/\bcode: '([A-Z][A-Z0-9_]+)'/g)) if (!errno.has(m[1]!)) note(m[1]!, file);
      for (const m of text.matchAll(/\b(?:ErrorCodes)\.([A-Z][A-Z0-9_]+)/g)) note(m[1]!, file);
    }
    // The scan must keep seeing the answers it is here for.
    for (const code of [
      'NOT_FOUND',
      'FORBIDDEN',
      'UNAUTHENTICATED',
      'BODY_INVALID_JSON',
      'BODY_TOO_LARGE',
      'UNSUPPORTED_MEDIA_TYPE',
      'SIGNATURE_INVALID',
      'UNAVAILABLE',
      'NOT_IMPLEMENTED',
      'PAYLOAD_INVALID',
      'INTERNAL',
      'REQUEST_TIMEOUT',
    ]) {
      expect(found.has(code), `${code} no longer found by the scan`).toBe(true);
    }
    const missing = [...found].filter(([code]) => !Object.hasOwn(ERROR_CATALOGUE, code)).map(([code, file]) => `${code} (${file})`);
    expect(missing).toEqual([]);
  });

  it('is where every HTTP error answer takes its status from', () => {
    const own: string[] = [];
    for (const { file, text } of sources) {
      // An error body sent with a status of the route's own choosing.
      for (const m of text.matchAll(/\.code\([^)]*\)\s*\.send\(\s*errorBody/g)) own.push(`${file}: ${m[0]}`);
      // Any error status set by hand; the webhook handshake's plain-text 403 is RBM's protocol, not an error body.
      for (const m of text.matchAll(/\.code\(([45]\d\d)\)(.{0,40})/g)) {
        if (!(file === join('src', 'webhook', 'receiver.ts') && m[1] === '403' && m[2]!.includes("type('text/plain')")))
          own.push(`${file}: ${m[0]}`);
      }
      if (text.includes('errorBody(') && ![join('src', 'api', 'errors.ts'), join('src', 'api', 'app.ts')].includes(file))
        own.push(`${file}: errorBody outside sendCode`);
    }
    expect(own).toEqual([]);

    const sent: Array<{ status: number; body: unknown }> = [];
    const reply = {
      code(status: number) {
        sent.push({ status, body: undefined });
        return this;
      },
      send(body: unknown) {
        sent.at(-1)!.body = body;
        return this;
      },
    };
    for (const code of codes.filter((c) => ERROR_CATALOGUE[c].http !== null) as HttpCode[]) {
      sendCode(reply as never, code, 'm');
      expect(sent.at(-1)).toEqual({ status: ERROR_CATALOGUE[code].http, body: errorBody(code, 'm') });
    }
  });

  it('answers what toHttpError maps with the status of the code it answers with', () => {
    const thrown: unknown[] = [
      new PayloadError('message', [{ path: 'to', problem: 'expected E.164' }]),
      new PayloadError('message', [{ path: 'callbackUrl', problem: 'private' }], { code: ErrorCodes.URL_FORBIDDEN }),
      new PayloadError('message', [{ path: 'callbackUrl', problem: 'no such host' }], { code: ErrorCodes.URL_UNRESOLVABLE }),
      new UnknownAgentError('z', ['a']),
      new AmbiguousMessageIdError('m', ['a', 'b']),
      new DispatchError(ErrorCodes.REDIS_UNAVAILABLE, 'down'),
      new RbmApiError({ status: 500, rpcStatus: 'INTERNAL', message: 'x', method: 'DELETE', path: '/p' }),
      new RbmNetworkError('reset'),
      new RbmTokenUnavailableError('token endpoint down', { retryAfterMs: 1000 }),
      new RbmAuthError('refused'),
      ...[
        'FST_ERR_CTP_INVALID_JSON_BODY',
        'FST_ERR_CTP_EMPTY_JSON_BODY',
        'FST_ERR_CTP_BODY_TOO_LARGE',
        'FST_ERR_BAD_URL',
        'FST_ERR_MAX_PARAM_LENGTH',
        'FST_ERR_CTP_INVALID_MEDIA_TYPE',
      ].map((code) => Object.assign(new Error('x'), { code })),
      ...[400, 401, 403, 404, 408, 412, 413, 414, 415, 416, 431].map((statusCode) => Object.assign(new Error('x'), { statusCode })),
      new Error('Connection is closed.'),
      new Error('boom'),
      new StatusTransitionError('m', 'SENT', 'QUEUED'),
    ];
    for (const err of thrown) {
      const { status, body } = toHttpError(err);
      expect(status, body.error.code).toBe(statusOf(body.error.code));
    }
    // Statuses as before the catalogue.
    const statuses = thrown.map((err) => toHttpError(err).status);
    expect(statuses).toEqual([
      400, 400, 400, 400, 409, 503, 502, 502, 502, 502, 400, 400, 413, 400, 414, 415, 400, 401, 403, 404, 408, 412, 413, 414, 415, 416, 431,
      503, 500, 500,
    ]);
    // A framework status the catalogue has no code for is a plain 400.
    expect(toHttpError(Object.assign(new Error('teapot'), { statusCode: 418 }))).toMatchObject({
      status: 400,
      body: { error: { code: 'BAD_REQUEST' } },
    });
  });
});

describe('error classes', () => {
  it('every exported error class extends DispatchError', async () => {
    const classes: string[] = [];
    for (const { file } of sources.filter((s) => /^export class /m.test(s.text))) {
      const mod = (await import(join(ROOT, file))) as Record<string, unknown>;
      for (const [name, value] of Object.entries(mod)) {
        if (typeof value !== 'function' || !(value.prototype instanceof Error)) continue;
        classes.push(name);
        expect(value === DispatchError || value.prototype instanceof DispatchError, `${file}: ${name}`).toBe(true);
      }
    }
    expect(classes).toEqual(
      expect.arrayContaining([
        'DispatchError',
        'SmsProviderError',
        'WebhookBodyError',
        'CliError',
        'ApiError',
        'RevokeError',
        'ReplayError',
        'CallbackParkedError',
        'UrlForbiddenError',
      ]),
    );
    // Unexported ones too: the only class on plain Error is the inbound handler's "must wait" signal,
    // which never leaves it (past a few rounds it becomes a StatusTransitionError).
    const plain = sources.flatMap(({ file, text }) => [...text.matchAll(/class (\w+) extends Error\b/g)].map((m) => `${file}: ${m[1]}`));
    expect(plain.sort()).toEqual([
      join('src', 'errors.ts') + ': DispatchError',
      join('src', 'handlers', 'inbound-event.ts') + ': MustWait',
    ]);
  });

  it('keep their codes, names and messages', () => {
    const sms = new SmsProviderError(
      { provider: 'twilio', kind: 'rateLimited', message: 'Twilio answered 429', status: 429, retryAfterMs: 2000 },
      { cause: 'c' },
    );
    expect(sms).toMatchObject({
      code: 'SMS_PROVIDER',
      name: 'SmsProviderError',
      message: 'Twilio answered 429',
      kind: 'rateLimited',
      status: 429,
      retryAfterMs: 2000,
      cause: 'c',
    });
    expect(sms).toBeInstanceOf(DispatchError);
    expect(new WebhookBodyError('DATA_NOT_JSON', 'no')).toMatchObject({ code: 'DATA_NOT_JSON', name: 'WebhookBodyError', message: 'no' });
    const usage = new UsageError('bad flag', [{ path: '--ttl', problem: 'x' }]);
    expect(usage).toMatchObject({
      code: 'CLI_USAGE',
      name: 'UsageError',
      exitCode: ExitCodes.USAGE,
      details: [{ path: '--ttl', problem: 'x' }],
      problemCount: 1,
    });
    expect(usage.withDetails([])).toMatchObject({ code: 'CLI_USAGE', details: [] });
    expect(new InputError('bad file', [], 3)).toMatchObject({ code: 'CLI_INPUT_INVALID', problemCount: 3 });
    const api = new ApiError({ status: 409, apiCode: 'REVOKE_NOT_POSSIBLE', apiMessage: 'no', details: [] });
    expect(api.as(CliErrorCodes.REVOKE_NOT_POSSIBLE, ExitCodes.REVOKE_NOT_POSSIBLE)).toMatchObject({
      code: 'CLI_REVOKE_NOT_POSSIBLE',
      exitCode: 4,
      status: 409,
      message: 'the service answered 409 REVOKE_NOT_POSSIBLE: no',
    });
    expect(new ApiUnreachableError('http://x', Object.assign(new Error('e'), { code: 'ECONNREFUSED' })).message).toBe(
      'cannot reach the service at http://x: ECONNREFUSED',
    );
    expect(new CliError(CliErrorCodes.INTERRUPTED, ExitCodes.INTERRUPTED, 'stopped')).toBeInstanceOf(DispatchError);
    expect(new ReplayError('m', 'NO_CALLBACK', 'none')).toMatchObject({
      code: 'CALLBACK_REPLAY',
      reason: 'NO_CALLBACK',
      name: 'ReplayError',
    });
    expect(new RevokeError('m', 'SENDING', 'busy')).toMatchObject({
      code: 'REVOKE_NOT_POSSIBLE',
      message: 'cannot revoke message m: busy',
      state: 'SENDING',
    });
  });
});

describe('classify()', () => {
  const api = (status: number) => new RbmApiError({ status, rpcStatus: 'X', message: 'x', method: 'POST', path: '/p' });
  const sms = (kind: 'retry' | 'permanent' | 'rateLimited') => new SmsProviderError({ provider: 'webhook', kind, message: 'x' });
  const redis = (problem: 'unreachable' | 'cluster') =>
    new RedisCheckError({ url: 'redis://h', problem, what: 'w', expected: 'e', got: 'g' });
  // What each gave before the catalogue (the catch-all was 'retry').
  const cases: Array<[string, unknown, Classification, ('send' | 'event' | 'revoke' | 'capabilities')?]> = [
    ['ConfigError', new ConfigError([{ path: 'X', problem: 'y' }]), 'retry'],
    ['PayloadError', new PayloadError('m', []), 'permanent'],
    ['PayloadError URL_FORBIDDEN', new PayloadError('m', [], { code: ErrorCodes.URL_FORBIDDEN }), 'permanent'],
    ['PayloadError URL_UNRESOLVABLE', new PayloadError('m', [], { code: ErrorCodes.URL_UNRESOLVABLE }), 'permanent'],
    ['RBM 429', api(429), 'rateLimited'],
    ['RBM 404 send', api(404), 'notRcs'],
    ['RBM 404 event', api(404), 'notRcs', 'event'],
    ['RBM 404 revoke', api(404), 'permanent', 'revoke'],
    ['RBM 400', api(400), 'permanent'],
    ['RBM 401', api(401), 'permanent'],
    ['RBM 403', api(403), 'permanent'],
    ['RBM 408', api(408), 'retry'],
    ['RBM 409', api(409), 'permanent'],
    ['RBM 500', api(500), 'retry'],
    ['RBM 503', api(503), 'retry'],
    ['RbmNetworkError', new RbmNetworkError('reset'), 'retry'],
    ['RbmTokenUnavailableError', new RbmTokenUnavailableError('down', { retryAfterMs: 5 }), 'defer'],
    ['RbmAuthError', new RbmAuthError('no'), 'permanent'],
    ['StatusTransitionError', new StatusTransitionError('m', 'SENDING', 'READ'), 'retry'],
    ['UnknownAgentError', new UnknownAgentError('z', []), 'permanent'],
    ['AmbiguousMessageIdError', new AmbiguousMessageIdError('m', ['a', 'b']), 'retry'],
    ['UrlForbiddenError', new UrlForbiddenError('10.0.0.1', 'is private'), 'permanent'],
    ['RedisCheckError unreachable', redis('unreachable'), 'retry'],
    ['RedisCheckError cluster', redis('cluster'), 'retry'],
    ['DispatchError REDIS_UNAVAILABLE', new DispatchError(ErrorCodes.REDIS_UNAVAILABLE, 'x'), 'retry'],
    ['RevokeError', new RevokeError('m', 'SENDING', 'busy'), 'retry'],
    ['ReplayError', new ReplayError('m', 'NOT_FOUND', 'x'), 'retry'],
    ['CallbackDeliveryError', new CallbackDeliveryError('https://r', 500, 'x'), 'retry'],
    ['CallbackParkedError', new CallbackParkedError('https://r', 'open', 100), 'defer'],
    ['CallbackExpiredError', new CallbackExpiredError('https://r', 'x'), 'permanent'],
    ['SmsProviderError retry', sms('retry'), 'retry'],
    ['SmsProviderError permanent', sms('permanent'), 'permanent'],
    ['SmsProviderError rateLimited', sms('rateLimited'), 'rateLimited'],
    ['a plain Error', new Error('ECONNRESET'), 'retry'],
    ['a thrown string', 'x', 'retry'],
    ['null', null, 'retry'],
    ['an object with our code, not our error', { code: 'PAYLOAD_INVALID' }, 'retry'],
  ];
  it.each(cases)('%s', (_name, err, expected, call) => {
    expect(classify(err, call)).toBe(expected);
  });

  it('reads a code-only error from the catalogue; a fixed kind agrees with its code', () => {
    for (const code of codes) {
      const retry = ERROR_CATALOGUE[code].retry;
      if (retry === 'byStatus' || retry === 'byKind') continue;
      expect(classify(new DispatchError(code, 'x')), code).toBe(retry);
    }
    for (const err of [
      new CallbackDeliveryError('o', 1, 'x'),
      new CallbackParkedError('o', 'busy', 1),
      new CallbackExpiredError('o', ''),
      new UrlForbiddenError('h', 'r'),
    ]) {
      expect(err.kind, err.name).toBe(ERROR_CATALOGUE[err.code].retry);
    }
  });
});

describe('README', () => {
  it('lists the catalogue as it is', () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const begin =
      '<!-- error-catalogue:begin (generated from ERROR_CATALOGUE in src/errors.ts; test/error-catalogue.test.ts checks it) -->\n';
    const end = '<!-- error-catalogue:end -->';
    const at = readme.indexOf(begin);
    expect(at, 'README has no error catalogue').toBeGreaterThan(0);
    const listed = readme.slice(at + begin.length, readme.indexOf(end, at));
    const table = [
      '| code | HTTP | retry class | when |',
      '|---|---|---|---|',
      ...codes.map((code) => {
        const e = ERROR_CATALOGUE[code];
        return `| \`${code}\` | ${e.http ?? '—'} | ${e.retry} | ${e.means.replaceAll('|', '\\|')} |`;
      }),
      '',
    ].join('\n');
    expect(listed).toBe(table);
  });

  it('names each code with its catalogue status wherever it gives both', () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const wrong = [...readme.matchAll(/\b([45]\d\d)\s+`([A-Z][A-Z0-9_]+)`/g)]
      .filter(([, status, code]) => Object.hasOwn(ERROR_CATALOGUE, code!) && httpStatusOf(code!) !== Number(status))
      .map(([text]) => text);
    expect(wrong).toEqual([]);
  });
});
