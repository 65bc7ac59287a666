/**
 * The SMS adapters over real HTTP: local node:http servers play Twilio and a
 * webhook receiver, and record every request they see. No HTTP mocks.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  SmsProviderError,
  createSmsProvider,
  signWebhookBody,
  verifyWebhookSignature,
  type SmsProvider,
  type SmsRequest,
} from '../src/sms/index.ts';
import { EgressGuard } from '../src/egress/guard.ts';

/** A provider timeout for tests that are not about timeouts: the local server answers in ms; this only bounds a failure on a busy machine. */
const ANSWER_MS = 30_000;

const TO = '+15005550009';
const ACCOUNT_SID = 'AC0123456789abcdef0123456789abcdef';
const AUTH_TOKEN = `tok${randomBytes(16).toString('hex')}`;
const SECRET = `whsec${randomBytes(16).toString('hex')}`;
/** The receivers here run on this machine: the webhook adapter may reach loopback, as in emulator mode (test/ssrf.test.ts covers the refusals). */
const LOCAL = new EgressGuard({ allow: [], allowLoopback: true });

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
  remotePort: number | undefined;
}

type Respond = (seen: Seen, res: ServerResponse, req: IncomingMessage) => void;

interface FakeServer {
  url: string;
  seen: Seen[];
  respond: Respond;
  close(): Promise<void>;
}

/** A local server that records each request and answers with whatever `respond` is now. */
async function fakeServer(respond: Respond): Promise<FakeServer> {
  const fake: FakeServer = { url: '', seen: [], respond, close: async () => {} };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const seen = {
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
        remotePort: req.socket.remotePort,
      };
      fake.seen.push(seen);
      fake.respond(seen, res, req);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  fake.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  fake.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return fake;
}

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));
}

/** Twilio as far as we use it: Basic auth, a form body, 201 with a sid. */
const twilioAccepts: Respond = (seen, res) => {
  const expected = `Basic ${Buffer.from(`${ACCOUNT_SID}:${AUTH_TOKEN}`).toString('base64')}`;
  if (seen.headers.authorization !== expected) {
    return json(res, 401, { code: 20003, message: 'Authenticate', more_info: 'https://www.twilio.com/docs/errors/20003', status: 401 });
  }
  const form = new URLSearchParams(seen.body);
  json(res, 201, { sid: `SM${randomBytes(16).toString('hex')}`, to: form.get('To'), status: 'queued' });
};

function twilioError(status: number, code: number, message: string, headers: Record<string, string> = {}): Respond {
  return (_seen, res) => json(res, status, { code, message, more_info: `https://www.twilio.com/docs/errors/${code}`, status }, headers);
}

const request = (over: Partial<SmsRequest> = {}): SmsRequest => ({
  to: TO,
  text: 'Your code is 482913',
  idempotencyKey: '2f1e0c7e-4a3b-4c5d-9e8f-0a1b2c3d4e5f',
  ...over,
});

async function failure(promise: Promise<unknown>): Promise<SmsProviderError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(SmsProviderError);
  return err as SmsProviderError;
}

const noLog = { info: () => {} };

describe('twilio adapter', () => {
  let server: FakeServer;
  let twilio: SmsProvider;

  beforeAll(async () => {
    server = await fakeServer(twilioAccepts);
    twilio = createSmsProvider(
      {
        provider: 'twilio',
        accountSid: ACCOUNT_SID,
        authToken: AUTH_TOKEN,
        baseUrl: `${server.url}/`,
        from: '+15005550006',
        timeoutMs: ANSWER_MS,
      },
      { log: noLog },
    );
  });
  afterEach(() => {
    server.seen.length = 0;
    server.respond = twilioAccepts;
  });
  afterAll(async () => {
    await twilio.close();
    await server.close();
  });

  it('POSTs the Messages API form with Basic auth and both idempotency headers, and returns the sid', async () => {
    const result = await twilio.send(request());
    expect(result.provider).toBe('twilio');
    expect(result.providerMessageId).toMatch(/^SM[0-9a-f]{32}$/);

    expect(server.seen).toHaveLength(1);
    const [seen] = server.seen;
    expect(seen!.method).toBe('POST');
    expect(seen!.url).toBe(`/2010-04-01/Accounts/${ACCOUNT_SID}/Messages.json`);
    expect(seen!.headers.authorization).toBe(`Basic ${Buffer.from(`${ACCOUNT_SID}:${AUTH_TOKEN}`).toString('base64')}`);
    expect(seen!.headers['content-type']).toBe('application/x-www-form-urlencoded');
    expect(seen!.headers['i-twilio-idempotency-token']).toBe('2f1e0c7e-4a3b-4c5d-9e8f-0a1b2c3d4e5f');
    expect(seen!.headers['idempotency-key']).toBe('2f1e0c7e-4a3b-4c5d-9e8f-0a1b2c3d4e5f');
    expect(Object.fromEntries(new URLSearchParams(seen!.body))).toEqual({ To: TO, From: '+15005550006', Body: 'Your code is 482913' });
  });

  it("takes the request's from over the configured one, and reuses the kept-alive socket", async () => {
    await twilio.send(request({ from: 'ACME' }));
    for (const key of ['second', 'third', 'fourth']) await twilio.send(request({ idempotencyKey: key }));
    expect(server.seen.map((s) => new URLSearchParams(s.body).get('From'))).toEqual([
      'ACME',
      '+15005550006',
      '+15005550006',
      '+15005550006',
    ]);
    // Back to back, undici's pool may alternate between two sockets; without keep-alive it would open four.
    expect(new Set(server.seen.map((s) => s.remotePort)).size).toBeLessThanOrEqual(2);
  });

  it('a 400 Twilio error is permanent and carries status and providerCode 21211', async () => {
    server.respond = twilioError(400, 21211, "The 'To' number +15005550009 is not a valid phone number.");
    const err = await failure(twilio.send(request()));
    expect(err).toMatchObject({ code: 'SMS_PROVIDER', provider: 'twilio', kind: 'permanent', status: 400, providerCode: 21211 });
    expect(err.message).toContain('got 400 (Twilio error 21211)');
    expect(err.message).toContain('+1500***0009');
  });

  it('wrong credentials (401) are permanent', async () => {
    const wrong = createSmsProvider(
      {
        provider: 'twilio',
        accountSid: ACCOUNT_SID,
        authToken: 'not-the-token',
        baseUrl: server.url,
        from: '+15005550006',
        timeoutMs: ANSWER_MS,
      },
      { log: noLog },
    );
    const err = await failure(wrong.send(request()));
    await wrong.close();
    expect(err).toMatchObject({ kind: 'permanent', status: 401, providerCode: 20003 });
    expect(err.message).not.toContain('not-the-token');
  });

  it('a 500 is a retry', async () => {
    server.respond = twilioError(500, 20500, 'Internal Server Error');
    const err = await failure(twilio.send(request()));
    expect(err).toMatchObject({ kind: 'retry', status: 500, providerCode: 20500 });
  });

  it('a 429 is rateLimited and honours Retry-After in seconds or as an HTTP date', async () => {
    server.respond = twilioError(429, 20429, 'Too Many Requests', { 'retry-after': '3' });
    const seconds = await failure(twilio.send(request()));
    expect(seconds).toMatchObject({ kind: 'rateLimited', status: 429, retryAfterMs: 3000 });

    server.respond = twilioError(429, 20429, 'Too Many Requests', { 'retry-after': new Date(Date.now() + 10_000).toUTCString() });
    const date = await failure(twilio.send(request()));
    expect(date.kind).toBe('rateLimited');
    // An HTTP date has whole seconds: between 9 and 10 s from the moment it was written.
    expect(date.retryAfterMs).toBeGreaterThan(8_000);
    expect(date.retryAfterMs).toBeLessThanOrEqual(10_000);
  });

  it('a connection reset is a retry with no status', async () => {
    server.respond = (_seen, _res, req) => req.socket.destroy();
    const err = await failure(twilio.send(request()));
    expect(err).toMatchObject({ kind: 'retry', status: undefined });
    expect(err.cause).toBeDefined();
    expect(server.seen).toHaveLength(1);
  });

  it('no answer within timeoutMs is a retry', async () => {
    const quick = createSmsProvider(
      { provider: 'twilio', accountSid: ACCOUNT_SID, authToken: AUTH_TOKEN, baseUrl: server.url, from: '+15005550006', timeoutMs: 150 },
      { log: noLog },
    );
    server.respond = () => {}; // never answers; the server's close ends the socket
    const err = await failure(quick.send(request()));
    await quick.close();
    expect(err).toMatchObject({ kind: 'retry', status: undefined });
    expect(err.message).toContain('UND_ERR_HEADERS_TIMEOUT');
  });

  it('with no from anywhere, refuses before any request, naming SMS_FROM', async () => {
    const noSender = createSmsProvider(
      { provider: 'twilio', accountSid: ACCOUNT_SID, authToken: AUTH_TOKEN, baseUrl: server.url, timeoutMs: ANSWER_MS },
      { log: noLog },
    );
    const err = await failure(noSender.send(request()));
    await noSender.close();
    expect(err).toMatchObject({ kind: 'permanent', status: undefined });
    expect(err.message).toContain('SMS_FROM');
    expect(server.seen).toHaveLength(0);
  });

  it('refuses a missing or non-E.164 recipient before any request', async () => {
    for (const to of ['15005550009', '+05005550009', '+1500555000912345678', '', undefined]) {
      const err = await failure(twilio.send(request({ to: to as string })));
      expect(err).toMatchObject({ kind: 'permanent', status: undefined });
      expect(err.message).toContain('expected an E.164 recipient');
      expect(err.message).not.toContain('5005550009');
    }
    expect(server.seen).toHaveLength(0);
  });
});

describe('webhook adapter', () => {
  let receiver: FakeServer;
  let webhook: SmsProvider;
  /** The receiver's verdict on each request, with the right secret. */
  const verdicts: boolean[] = [];

  const verifyingReceiver =
    (answer: (res: ServerResponse) => void): Respond =>
    (seen, res) => {
      verdicts.push(
        verifyWebhookSignature(
          SECRET,
          seen.headers['x-rbm-dispatch-timestamp'] as string,
          seen.body,
          seen.headers['x-rbm-dispatch-signature'] as string,
        ),
      );
      answer(res);
    };

  beforeAll(async () => {
    receiver = await fakeServer(verifyingReceiver((res) => json(res, 200, { id: 'gw-1' })));
    webhook = createSmsProvider(
      { provider: 'webhook', url: `${receiver.url}/sms/send?tenant=t1`, secret: SECRET, from: 'ACME', timeoutMs: ANSWER_MS },
      { log: noLog, egress: LOCAL },
    );
  });
  afterEach(() => {
    receiver.seen.length = 0;
    verdicts.length = 0;
  });
  afterAll(async () => {
    await webhook.close();
    await receiver.close();
  });

  it('POSTs signed JSON that the receiver verifies, and returns the body id', async () => {
    const before = Math.floor(Date.now() / 1000);
    const result = await webhook.send(request());
    expect(result).toEqual({ providerMessageId: 'gw-1', provider: 'webhook' });
    expect(verdicts).toEqual([true]);

    const [seen] = receiver.seen;
    expect(seen!.method).toBe('POST');
    expect(seen!.url).toBe('/sms/send?tenant=t1');
    expect(seen!.headers['content-type']).toBe('application/json');
    expect(seen!.headers['idempotency-key']).toBe('2f1e0c7e-4a3b-4c5d-9e8f-0a1b2c3d4e5f');
    const timestamp = Number(seen!.headers['x-rbm-dispatch-timestamp']);
    expect(timestamp).toBeGreaterThanOrEqual(before);
    expect(timestamp).toBeLessThanOrEqual(Math.floor(Date.now() / 1000));
    const body = JSON.parse(seen!.body) as Record<string, unknown>;
    expect(body).toEqual({
      to: TO,
      from: 'ACME',
      text: 'Your code is 482913',
      idempotencyKey: '2f1e0c7e-4a3b-4c5d-9e8f-0a1b2c3d4e5f',
      sentAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
    });
    // sentAt and the signed timestamp are the same instant.
    expect(Math.floor(Date.parse(body.sentAt as string) / 1000)).toBe(timestamp);
    expect(seen!.headers['x-rbm-dispatch-signature']).toBe(signWebhookBody(SECRET, timestamp, seen!.body));
  });

  it('a wrong secret, a changed body, a changed timestamp or an old timestamp fail verification', async () => {
    await webhook.send(request());
    const [seen] = receiver.seen;
    const timestamp = seen!.headers['x-rbm-dispatch-timestamp'] as string;
    const signature = seen!.headers['x-rbm-dispatch-signature'] as string;
    expect(verifyWebhookSignature(SECRET, timestamp, seen!.body, signature)).toBe(true);
    expect(verifyWebhookSignature(`${SECRET}x`, timestamp, seen!.body, signature)).toBe(false);
    expect(verifyWebhookSignature(SECRET, timestamp, seen!.body.replace('482913', '000000'), signature)).toBe(false);
    expect(verifyWebhookSignature(SECRET, String(Number(timestamp) - 1), seen!.body, signature)).toBe(false);
    expect(verifyWebhookSignature(SECRET, timestamp, seen!.body, 'sha256=abc')).toBe(false);
    expect(verifyWebhookSignature(SECRET, timestamp, seen!.body, undefined)).toBe(false);

    // A correctly signed request replayed after the tolerance is refused; one inside it is not.
    const old = Math.floor(Date.now() / 1000) - 301;
    expect(verifyWebhookSignature(SECRET, old, seen!.body, signWebhookBody(SECRET, old, seen!.body))).toBe(false);
    const recent = Math.floor(Date.now() / 1000) - 200;
    expect(verifyWebhookSignature(SECRET, recent, seen!.body, signWebhookBody(SECRET, recent, seen!.body))).toBe(true);
    expect(verifyWebhookSignature(SECRET, recent, seen!.body, signWebhookBody(SECRET, recent, seen!.body), 60)).toBe(false);
  });

  it('any 2xx is accepted; with no id in the answer the idempotency key is the provider ID', async () => {
    receiver.respond = verifyingReceiver((res) => res.writeHead(202).end());
    const result = await webhook.send(request({ idempotencyKey: 'k-42', from: 'OTHER' }));
    receiver.respond = verifyingReceiver((res) => json(res, 200, { id: 'gw-1' }));
    expect(result).toEqual({ providerMessageId: 'k-42', provider: 'webhook' });
    expect(JSON.parse(receiver.seen[0]!.body)).toMatchObject({ from: 'OTHER', idempotencyKey: 'k-42' });
  });

  it('a 503 is a retry, a 429 rateLimited, a 422 permanent', async () => {
    receiver.respond = verifyingReceiver((res) => json(res, 503, { error: { code: 'UNAVAILABLE' } }, { 'retry-after': '7' }));
    const unavailable = await failure(webhook.send(request()));
    receiver.respond = verifyingReceiver((res) => json(res, 429, {}, { 'retry-after': '2' }));
    const limited = await failure(webhook.send(request()));
    receiver.respond = verifyingReceiver((res) => json(res, 422, { code: 'BAD_NUMBER' }));
    const refused = await failure(webhook.send(request()));
    receiver.respond = verifyingReceiver((res) => json(res, 200, { id: 'gw-1' }));

    expect(unavailable).toMatchObject({ provider: 'webhook', kind: 'retry', status: 503, providerCode: 'UNAVAILABLE', retryAfterMs: 7000 });
    expect(limited).toMatchObject({ kind: 'rateLimited', status: 429, retryAfterMs: 2000 });
    expect(refused).toMatchObject({ kind: 'permanent', status: 422, providerCode: 'BAD_NUMBER' });
    expect(verdicts).toEqual([true, true, true]);
  });
});

describe('log adapter', () => {
  it('logs one line with the masked number and the text length, never the text, and never fails', async () => {
    const lines: Array<{ obj: object; msg: string | undefined }> = [];
    const provider = createSmsProvider({ provider: 'log', from: 'ACME' }, { log: { info: (obj, msg) => lines.push({ obj, msg }) } });
    expect(provider.name).toBe('log');

    const result = await provider.send(request());
    expect(result).toEqual({ providerMessageId: 'log-2f1e0c7e-4a3b-4c5d-9e8f-0a1b2c3d4e5f', provider: 'log' });
    expect(lines).toHaveLength(1);
    expect(lines[0]!.obj).toMatchObject({ to: '+1500***0009', textLength: 'Your code is 482913'.length, from: 'ACME' });
    const written = JSON.stringify(lines);
    expect(written).not.toContain('482913');
    expect(written).not.toContain(TO);

    await expect(provider.send(request({ to: undefined as unknown as string, idempotencyKey: 'k' }))).resolves.toMatchObject({
      providerMessageId: 'log-k',
    });
    await provider.close();
  });
});

describe('error messages', () => {
  it('never carry the full number, the auth token or the webhook secret, even when the provider echoes them', async () => {
    const echo = `The 'To' number ${TO} (${TO.slice(1)}) was refused for token ${AUTH_TOKEN} and secret ${SECRET}`;
    const server = await fakeServer((_seen, res) => json(res, 400, { code: 21211, message: echo, status: 400 }));
    const twilio = createSmsProvider(
      { provider: 'twilio', accountSid: ACCOUNT_SID, authToken: AUTH_TOKEN, baseUrl: server.url, from: 'ACME', timeoutMs: ANSWER_MS },
      { log: noLog },
    );
    const webhook = createSmsProvider(
      { provider: 'webhook', url: server.url, secret: SECRET, timeoutMs: ANSWER_MS },
      { log: noLog, egress: LOCAL },
    );
    const noSender = createSmsProvider(
      { provider: 'twilio', accountSid: ACCOUNT_SID, authToken: AUTH_TOKEN, baseUrl: server.url, timeoutMs: ANSWER_MS },
      { log: noLog },
    );

    const errors = [
      await failure(twilio.send(request())),
      await failure(webhook.send(request())),
      await failure(noSender.send(request())),
      await failure(twilio.send(request({ to: TO.slice(1) }))),
    ];
    server.respond = (_seen, _res, req) => req.socket.destroy();
    errors.push(await failure(twilio.send(request())), await failure(webhook.send(request())));
    await Promise.all([twilio.close(), webhook.close(), noSender.close()]);
    await server.close();

    expect(errors.map((e) => e.kind)).toEqual(['permanent', 'permanent', 'permanent', 'permanent', 'retry', 'retry']);
    for (const err of errors) {
      const text = `${err.message} ${JSON.stringify(err)} ${String(err.stack)}`;
      expect(text).not.toContain(TO.slice(1));
      // Each adapter knows, and scrubs, its own credential.
      expect(text).not.toContain(err.provider === 'twilio' ? AUTH_TOKEN : SECRET);
    }
    expect(errors[0]!.message).toContain('+1500***0009');
  });

  it('closing a provider twice is harmless', async () => {
    const server = await fakeServer(twilioAccepts);
    const twilio = createSmsProvider(
      { provider: 'twilio', accountSid: ACCOUNT_SID, authToken: AUTH_TOKEN, baseUrl: server.url, from: 'ACME', timeoutMs: ANSWER_MS },
      { log: noLog },
    );
    await twilio.send(request());
    await twilio.close();
    await expect(twilio.close()).resolves.toBeUndefined();
    await server.close();
  });
});
