/**
 * The egress guard (src/egress): URLs users give (status callbacks, the SMS
 * webhook) never lead to loopback, private, link-local, metadata… addresses
 * unless an operator opened them. Refused when given (400 with a code, the
 * path and the reason), in every spelling of an address, and again at every
 * connect, where a name may resolve elsewhere (DNS rebinding). Real HTTP and
 * a real Redis; a resolver stands in for DNS where a name must lead to a
 * chosen address.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { lookup as dnsLookup } from 'node:dns/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CALLBACK_QUEUE, callbackWebhookId, deliverCallbackJobId, sendMessageJobId } from '../jobs/index.ts';
import { createCallbackClient } from '../src/callbacks/http.ts';
import { loadConfig } from '../src/config.ts';
import { blockedAddress } from '../src/egress/addresses.ts';
import { EgressGuard, type ResolveHost } from '../src/egress/guard.ts';
import { type ConfigError, UrlForbiddenError, classify } from '../src/errors.ts';
import { createDeliverCallbackHandler } from '../src/handlers/deliver-callback.ts';
import { createSmsProvider, SmsProviderError } from '../src/sms/index.ts';
import { httpCall, rcsPhone, startCallbackReceiver, startHarness, type Harness } from './helpers.ts';

const SECRET = `whsec_${randomBytes(32).toString('base64')}`;
/** What example.com resolved to once: an ordinary public address. */
const PUBLIC = '93.184.215.14';

/**
 * DNS as these tests need it: fixed names, a name that resolves to a public
 * address once and to loopback afterwards (rebinding), one that never
 * resolves; anything else (localhost) from the system.
 */
function testResolver(): { resolve: ResolveHost; calls: Map<string, number> } {
  const calls = new Map<string, number>();
  const resolve: ResolveHost = async (asked) => {
    const host = asked.replace(/\.$/, ''); // a fully qualified name is the same name
    const n = (calls.get(host) ?? 0) + 1;
    calls.set(host, n);
    switch (host) {
      case 'receiver.test':
        return [{ address: '127.0.0.1', family: 4 }];
      case 'internal.test':
        return [{ address: '10.1.2.3', family: 4 }];
      case 'public.test':
        return [{ address: PUBLIC, family: 4 }];
      case 'mixed.test':
        return [
          { address: PUBLIC, family: 4 },
          { address: 'fd00::5', family: 6 },
        ];
      case 'rebind.test':
        return n === 1 ? [{ address: PUBLIC, family: 4 }] : [{ address: '127.0.0.1', family: 4 }];
      case 'nowhere.test':
        throw Object.assign(new Error('getaddrinfo ENOTFOUND nowhere.test'), { code: 'ENOTFOUND' });
      default:
        return dnsLookup(host, { all: true });
    }
  };
  return { resolve, calls };
}

const strict = (resolve?: ResolveHost) => new EgressGuard({ allow: [], allowLoopback: false }, resolve ? { resolve } : {});

describe('addresses', () => {
  it.each([
    ['127.0.0.1', 'loopback', '127.0.0.1'],
    ['127.255.255.254', 'loopback', '127.255.255.254'],
    ['::1', 'loopback', '::1'],
    ['::ffff:127.0.0.1', 'loopback', '127.0.0.1'],
    ['::ffff:7f00:1', 'loopback', '127.0.0.1'],
    ['::ffff:0:7f00:1', 'loopback', '127.0.0.1'],
    ['::127.0.0.1', 'loopback', '127.0.0.1'],
    ['64:ff9b::a00:1', 'private', '10.0.0.1'],
    ['64:ff9b::7f00:1', 'loopback', '127.0.0.1'],
    ['64:ff9b:1::1', 'private', '64:ff9b:1::1'],
    ['2002:a9fe:a9fe::1', 'metadata', '169.254.169.254'],
    ['10.255.0.1', 'private', '10.255.0.1'],
    ['172.16.0.1', 'private', '172.16.0.1'],
    ['192.168.0.1', 'private', '192.168.0.1'],
    ['100.127.255.255', 'shared', '100.127.255.255'],
    ['169.254.0.1', 'linkLocal', '169.254.0.1'],
    ['fe80::1%eth0', 'linkLocal', 'fe80::1'],
    ['fc00::1', 'uniqueLocal', 'fc00::1'],
    ['fdff::1', 'uniqueLocal', 'fdff::1'],
    ['239.255.255.250', 'multicast', '239.255.255.250'],
    ['ff02::1', 'multicast', 'ff02::1'],
    ['0.0.0.0', 'unspecified', '0.0.0.0'],
    ['::', 'unspecified', '::'],
    ['255.255.255.255', 'broadcast', '255.255.255.255'],
    ['169.254.169.254', 'metadata', '169.254.169.254'],
    ['fd00:ec2::254', 'metadata', 'fd00:ec2::254'],
    ['100.100.100.200', 'metadata', '100.100.100.200'],
    ['192.0.2.1', 'reserved', '192.0.2.1'],
    ['2001:db8::1', 'reserved', '2001:db8::1'],
  ])('%s is %s (judged as %s)', (ip, kind, address) => {
    expect(blockedAddress(ip)).toMatchObject({ kind, address });
  });

  it.each([
    '93.184.215.14',
    '8.8.8.8',
    '2606:4700::1111',
    '::ffff:8.8.8.8',
    '64:ff9b::808:808',
    '2002:808:808::1',
    '172.32.0.1',
    '100.128.0.1',
  ])('%s is an ordinary public address', (ip) => {
    expect(blockedAddress(ip)).toBeUndefined();
  });
});

describe('the guard alone', () => {
  it('opens what CALLBACK_ALLOW_HOSTS lists, and loopback in emulator mode, but never a metadata address', async () => {
    const { resolve } = testResolver();
    const config = loadConfig({
      CALLBACK_ALLOW_HOSTS: '10.0.0.0/8, fd00::/8,192.168.7.7,receiver.test,0.0.0.0/0',
      RBM_ENDPOINT: 'emulator',
    });
    const open = new EgressGuard(config.egress, { resolve });
    expect(await open.check('http://10.9.8.7/cb')).toBeUndefined();
    expect(await open.check('http://[::ffff:10.9.8.7]/cb')).toBeUndefined();
    expect(await open.check('http://[fd00::5]/cb')).toBeUndefined();
    expect(await open.check('http://internal.test/cb')).toBeUndefined(); // 10.1.2.3, inside 10/8
    expect(await open.check('http://localhost/cb')).toBeUndefined(); // emulator mode
    // Even 0.0.0.0/0 leaves the metadata endpoints shut.
    expect(await open.check('http://169.254.169.254/latest/meta-data/')).toMatchObject({
      code: 'URL_FORBIDDEN',
      reason: expect.stringContaining('a cloud metadata address (169.254.169.254), which is never reachable'),
    });
    expect(await open.check('http://metadata.google.internal/')).toMatchObject({ code: 'URL_FORBIDDEN' });

    const named = new EgressGuard(
      loadConfig({ CALLBACK_ALLOW_HOSTS: 'receiver.test', GOOGLE_APPLICATION_CREDENTIALS: '/k.json', RBM_AGENTS: 'a:1' }).egress,
      { resolve },
    );
    expect(await named.check('http://receiver.test:8080/cb')).toBeUndefined();
    expect(await named.check('http://RECEIVER.test./cb')).toBeUndefined();
    expect(await named.check('http://internal.test/cb')).toMatchObject({
      code: 'URL_FORBIDDEN',
      reason: expect.stringContaining('internal.test resolves to a private address (10.1.2.3)'),
    });
    expect(await named.check('http://localhost/cb')).toMatchObject({
      code: 'URL_FORBIDDEN',
      reason: expect.stringContaining('a loopback address (127.0.0.1)'),
    });
    expect(await named.check(`http://public.test/cb`)).toBeUndefined();
  });

  it('refuses a name when any of its addresses is refused, and one that does not resolve in time', async () => {
    const { resolve } = testResolver();
    expect(await strict(resolve).check('https://mixed.test/cb')).toMatchObject({
      code: 'URL_FORBIDDEN',
      reason: expect.stringContaining('a unique-local address (fd00::5)'),
    });
    expect(await strict(resolve).check('https://nowhere.test/cb')).toMatchObject({
      code: 'URL_UNRESOLVABLE',
      reason: expect.stringContaining('ENOTFOUND'),
    });
    const silent = new EgressGuard({ allow: [], allowLoopback: false }, { resolve: () => new Promise(() => {}), resolveTimeoutMs: 50 });
    expect(await silent.check('https://slow.test/cb')).toMatchObject({
      code: 'URL_UNRESOLVABLE',
      reason: expect.stringContaining('ETIMEOUT'),
    });
  });

  it.each([
    'http://127.0.0.1./',
    'http://0x7f.1/',
    'http://127.0.0.1%2e/',
    'http://127%2e0%2e0%2e1/',
    'http://①②⑦.0.0.1/',
    'http://127。0。0。1/',
    'HTTP://[0:0:0:0:0:FFFF:7F00:0001]/',
    'http://017700000001/',
  ])('%s is 127.0.0.1 to the URL parser undici connects by, and refused as such', async (url) => {
    expect(await strict().check(url)).toMatchObject({
      code: 'URL_FORBIDDEN',
      reason: expect.stringContaining('a loopback address (127.0.0.1'),
    });
  });

  it('refuses schemes other than http(s) and user:password@', async () => {
    expect(await strict().check('ftp://example.com/x')).toMatchObject({
      code: 'URL_FORBIDDEN',
      reason: expect.stringContaining('got ftp:'),
    });
    expect(await strict().check('https://user:pass@example.com/x')).toMatchObject({
      code: 'URL_FORBIDDEN',
      reason: expect.stringContaining('without user:password@'),
    });
    expect(await strict().check('https://user@example.com/x')).toMatchObject({ code: 'URL_FORBIDDEN' });
  });
});

describe('CALLBACK_ALLOW_HOSTS and SMS_WEBHOOK_URL', () => {
  const problemsOf = (env: Record<string, string>) => {
    try {
      loadConfig(env);
      return [];
    } catch (err) {
      return (err as ConfigError).problems;
    }
  };

  it('parses CIDRs, addresses and names; refuses anything else, naming the variable and what came', () => {
    expect(loadConfig({ CALLBACK_ALLOW_HOSTS: '10.0.0.0/8,[::1],hooks.internal, 192.168.1.20' }).egress.allow).toEqual([
      { kind: 'subnet', address: '10.0.0.0', prefix: 8, family: 'ipv4' },
      { kind: 'subnet', address: '::1', prefix: 128, family: 'ipv6' },
      { kind: 'host', name: 'hooks.internal' },
      { kind: 'subnet', address: '192.168.1.20', prefix: 32, family: 'ipv4' },
    ]);
    const problems = problemsOf({ CALLBACK_ALLOW_HOSTS: '10.0.0.0/33,fd00::/129,300.1.2.3/8,0x7f000001,127.1,bad host,a/b' });
    expect(problems.map((p) => p.path)).toEqual(Array(7).fill('CALLBACK_ALLOW_HOSTS'));
    expect(problems.map((p) => p.problem)).toEqual(
      ['10.0.0.0/33', 'fd00::/129', '300.1.2.3/8', '0x7f000001', '127.1', 'bad host', 'a/b'].map((got) =>
        expect.stringContaining(`got '${got}'`),
      ),
    );
  });

  it('loopback is open in emulator mode only', () => {
    expect(loadConfig({}).egress).toEqual({ allow: [], allowLoopback: true });
    expect(
      loadConfig({ RBM_ENDPOINT: 'http://127.0.0.1:3001', GOOGLE_APPLICATION_CREDENTIALS: '/k.json', RBM_AGENTS: 'a:1' }).egress
        .allowLoopback,
    ).toBe(false);
  });

  it('an SMS webhook URL that names a blocked address stops the start, unless allowed', () => {
    const real = {
      GOOGLE_APPLICATION_CREDENTIALS: '/k.json',
      RBM_AGENTS: 'a:1',
      SMS_PROVIDER: 'webhook',
      SMS_WEBHOOK_SECRET: 'x'.repeat(16),
    };
    for (const url of [
      'http://127.0.0.1:9000/sms',
      'http://[::ffff:7f00:1]/sms',
      'http://169.254.169.254/',
      'http://metadata.google.internal/',
      'http://10.0.0.9/sms',
    ]) {
      const problems = problemsOf({ ...real, SMS_WEBHOOK_URL: url });
      expect(
        problems.map((p) => p.path),
        url,
      ).toEqual(['SMS_WEBHOOK_URL']);
    }
    expect(problemsOf({ ...real, SMS_WEBHOOK_URL: 'http://10.0.0.9/sms', CALLBACK_ALLOW_HOSTS: '10.0.0.0/24' })).toEqual([]);
    expect(problemsOf({ ...real, SMS_WEBHOOK_URL: 'https://sms.example.com/send' })).toEqual([]);
    expect(
      problemsOf({ SMS_PROVIDER: 'webhook', SMS_WEBHOOK_SECRET: 'x'.repeat(16), SMS_WEBHOOK_URL: 'http://127.0.0.1:9000/sms' }),
    ).toEqual([]);
  });
});

describe('at connect time', () => {
  let receiver: Awaited<ReturnType<typeof startCallbackReceiver>>;
  beforeAll(async () => {
    receiver = await startCallbackReceiver();
  });
  afterAll(() => receiver.close());

  it('a name that resolves to loopback, a literal loopback and its IPv6 spellings are refused before a byte is sent', async () => {
    const { resolve } = testResolver();
    const client = createCallbackClient(5000, strict(resolve));
    const open = createCallbackClient(5000, new EgressGuard({ allow: [], allowLoopback: true }));
    try {
      for (const url of [
        `http://localhost:${receiver.port}/cb?token=s3cret`,
        `http://receiver.test:${receiver.port}/cb`,
        `http://127.0.0.1:${receiver.port}/cb`,
        `http://[::ffff:127.0.0.1]:${receiver.port}/cb`,
        `http://2130706433:${receiver.port}/cb`,
      ]) {
        const err = await client.post(url, '{}', {}).catch((e: unknown) => e);
        expect(err, url).toBeInstanceOf(UrlForbiddenError);
        expect((err as UrlForbiddenError).code).toBe('URL_FORBIDDEN');
        expect((err as Error).message).toContain('a loopback address (127.0.0.1');
        expect((err as Error).message).not.toContain('s3cret');
        expect(classify(err)).toBe('permanent');
      }
      expect(receiver.received).toHaveLength(0);
      // The same request where loopback is open reaches the receiver: the refusal above was the guard's.
      expect(await open.post(`http://localhost:${receiver.port}/cb`, '{}', {})).toBe(200);
      expect(receiver.received).toHaveLength(1);
    } finally {
      await client.close();
      await open.close();
    }
  });

  it('a redirect is not followed', async () => {
    const redirector = createServer((_req, res) => res.writeHead(302, { location: `${receiver.url}/redirected` }).end());
    await new Promise<void>((resolve) => redirector.listen(0, '127.0.0.1', resolve));
    const client = createCallbackClient(5000, new EgressGuard({ allow: [], allowLoopback: true }));
    try {
      const before = receiver.received.length;
      expect(await client.post(`http://127.0.0.1:${(redirector.address() as { port: number }).port}/cb`, '{}', {})).toBe(302);
      expect(receiver.received.slice(before).map((r) => r.path)).not.toContain('/redirected');
    } finally {
      await client.close();
      await new Promise<void>((resolve) => redirector.close(() => resolve()));
    }
  });

  it('deliver-callback: a refused address fails the job for good at once, counted, logged by origin only', async () => {
    const client = createCallbackClient(5000, strict());
    const counted: string[] = [];
    const errors: object[] = [];
    const log = { info() {}, warn() {}, debug() {}, error: (obj: object) => void errors.push(obj) };
    const reports: unknown[] = [];
    // The receivers' gate admits the call (its own tests are in deliver-callback-handler.test.ts); the slot must come back.
    const receivers = {
      admit: async () => ({ verdict: 'call' as const }),
      report: async (_o: string, _j: string, r: unknown) => void reports.push(r),
      forget: async () => {},
    };
    const handler = createDeliverCallbackHandler({
      secretFor: () => SECRET,
      post: client.post,
      count: async (o) => void counted.push(o),
      log,
      receivers,
      retryForMs: 60_000,
    });
    const data = { messageId: randomUUID(), agentId: 'agent-a', state: 'SENT', previousState: 'SENDING', at: Date.now() };
    try {
      const err = await handler(
        { url: `http://localhost:${receiver.port}/cb?token=s3cret`, scope: 'default', data },
        { jobId: 'j', attempt: 1, maxAttempts: 33 },
      ).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(UrlForbiddenError);
      expect(classify(err)).toBe('permanent');
      expect(counted).toEqual(['failed']);
      expect(reports).toEqual([expect.objectContaining({ ok: false, done: true })]);
      expect(errors).toEqual([
        expect.objectContaining({ origin: `http://localhost:${receiver.port}`, reason: expect.stringContaining('loopback') }),
      ]);
      expect(JSON.stringify(errors)).not.toContain('s3cret');
    } finally {
      await client.close();
    }
  });

  it('the SMS webhook: a name that resolves to loopback fails the SMS for good, nothing sent; allowed by name, it goes', async () => {
    const sms = await startCallbackReceiver();
    const settings = {
      provider: 'webhook' as const,
      url: `http://localhost:${sms.port}/sms?tenant=t1`,
      secret: 'x'.repeat(16),
      timeoutMs: 5000,
    };
    const refused = createSmsProvider(settings, { log: { info() {} }, egress: strict() });
    const byDefault = createSmsProvider(settings, { log: { info() {} } });
    const allowed = createSmsProvider(settings, {
      log: { info() {} },
      egress: new EgressGuard(
        loadConfig({ CALLBACK_ALLOW_HOSTS: 'localhost', GOOGLE_APPLICATION_CREDENTIALS: '/k.json', RBM_AGENTS: 'a:1' }).egress,
      ),
    });
    try {
      for (const provider of [refused, byDefault]) {
        const err = await provider.send({ to: '+15005550009', text: 'code 1234', idempotencyKey: randomUUID() }).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(SmsProviderError);
        expect(err).toMatchObject({ kind: 'permanent', message: expect.stringContaining('resolves to a loopback address (127.0.0.1)') });
        expect((err as Error).message).not.toContain('+15005550009');
      }
      expect(sms.received).toHaveLength(0);
      expect(await allowed.send({ to: '+15005550009', text: 'code 1234', idempotencyKey: 'k-1' })).toMatchObject({ provider: 'webhook' });
      expect(sms.received).toHaveLength(1);
    } finally {
      await Promise.all([refused.close(), byDefault.close(), allowed.close(), sms.close()]);
    }
  });
});

describe('over the API, with a real RBM endpoint configured (no loopback by default)', () => {
  let h: Harness;
  let base: string;
  let resolver: ReturnType<typeof testResolver>;
  let receiver: Awaited<ReturnType<typeof startCallbackReceiver>>;
  let allowedReceiver: Awaited<ReturnType<typeof startCallbackReceiver>>;

  beforeAll(async () => {
    resolver = testResolver();
    h = await startHarness({
      name: 'ssrf',
      env: { CALLBACK_SECRET: SECRET, CALLBACK_ALLOW_HOSTS: '127.0.0.2,receiver.test', RBM_WEBHOOK_CLIENT_TOKENS: 'test-client-token-a' },
      resolveHost: resolver.resolve,
    });
    base = await h.startHttp();
    receiver = await startCallbackReceiver();
    allowedReceiver = await startCallbackReceiver(() => 200, { host: '127.0.0.2' });
    h.startDispatch();
    h.startCallbacks();
  });
  afterAll(async () => {
    await h.close();
    await receiver.close();
    await allowedReceiver.close();
  });

  const message = (extra: Record<string, unknown> = {}) => ({ to: rcsPhone(1), contentMessage: { text: 'hi' }, ...extra });

  // [what, the URL, words the problem must hold]
  const FORMS: Array<[string, () => string, string]> = [
    ['a literal loopback 127.0.0.1', () => `http://127.0.0.1:${receiver.port}/cb`, 'a loopback address (127.0.0.1)'],
    ['decimal 2130706433', () => 'http://2130706433/cb', 'a loopback address (127.0.0.1)'],
    ['hex 0x7f000001', () => 'http://0x7f000001/cb', 'a loopback address (127.0.0.1)'],
    ['octal 0177.0.0.1', () => 'http://0177.0.0.1/cb', 'a loopback address (127.0.0.1)'],
    ['short 127.1', () => 'http://127.1:8080/cb', 'a loopback address (127.0.0.1)'],
    ['IPv6 [::1]', () => 'http://[::1]/cb', 'a loopback address (::1)'],
    ['IPv4-mapped [::ffff:127.0.0.1]', () => 'http://[::ffff:127.0.0.1]/cb', 'a loopback address (127.0.0.1, inside ::ffff:7f00:1)'],
    ['IPv4-mapped [::ffff:7f00:1]', () => 'http://[::ffff:7f00:1]/cb', 'a loopback address (127.0.0.1, inside ::ffff:7f00:1)'],
    ['IPv4-compatible [::127.0.0.1]', () => 'http://[::127.0.0.1]/cb', 'a loopback address (127.0.0.1, inside ::7f00:1)'],
    ['NAT64 [64:ff9b::10.0.0.1]', () => 'http://[64:ff9b::10.0.0.1]/cb', 'a private address (10.0.0.1, inside 64:ff9b::a00:1)'],
    ['NAT64 [64:ff9b::7f00:1]', () => 'http://[64:ff9b::7f00:1]/cb', 'a loopback address (127.0.0.1, inside 64:ff9b::7f00:1)'],
    ['6to4 [2002:7f00:1::]', () => 'http://[2002:7f00:1::]/cb', 'a loopback address (127.0.0.1, inside 2002:7f00:1::)'],
    ['the name localhost', () => `http://localhost:${receiver.port}/cb`, 'localhost resolves to a loopback address (127.0.0.1)'],
    ['a name that resolves to 10.1.2.3', () => 'https://internal.test/cb', 'internal.test resolves to a private address (10.1.2.3)'],
    ['RFC 1918 10.0.0.1', () => 'http://10.0.0.1/cb', 'a private address (10.0.0.1)'],
    ['RFC 1918 172.31.255.1', () => 'http://172.31.255.1/cb', 'a private address (172.31.255.1)'],
    ['RFC 1918 192.168.1.1', () => 'https://192.168.1.1/cb', 'a private address (192.168.1.1)'],
    ['CGNAT 100.64.0.1', () => 'http://100.64.0.1/cb', 'a shared (carrier-grade NAT) address (100.64.0.1)'],
    ['link-local 169.254.1.1', () => 'http://169.254.1.1/cb', 'a link-local address (169.254.1.1)'],
    ['link-local [fe80::1]', () => 'http://[fe80::1]/cb', 'a link-local address (fe80::1)'],
    ['unique-local [fd12:3456::1]', () => 'http://[fd12:3456::1]/cb', 'a unique-local address (fd12:3456::1)'],
    ['multicast 224.0.0.1', () => 'http://224.0.0.1/cb', 'a multicast address (224.0.0.1)'],
    ['multicast [ff02::1]', () => 'http://[ff02::1]/cb', 'a multicast address (ff02::1)'],
    ['unspecified 0.0.0.0', () => 'http://0.0.0.0/cb', 'an unspecified address (0.0.0.0)'],
    ['unspecified 0', () => 'http://0/cb', 'an unspecified address (0.0.0.0)'],
    ['unspecified [::]', () => 'http://[::]/cb', 'an unspecified address (::)'],
    ['broadcast 255.255.255.255', () => 'http://255.255.255.255/cb', 'a broadcast address (255.255.255.255)'],
    ['metadata 169.254.169.254', () => 'http://169.254.169.254/latest/meta-data/', 'a cloud metadata address (169.254.169.254)'],
    ['metadata as decimal 2852039166', () => 'http://2852039166/latest/meta-data/', 'a cloud metadata address (169.254.169.254)'],
    ['metadata [fd00:ec2::254]', () => 'http://[fd00:ec2::254]/latest/meta-data/', 'a cloud metadata address (fd00:ec2::254)'],
    [
      'metadata.google.internal',
      () => 'http://metadata.google.internal/computeMetadata/v1/',
      'metadata.google.internal names a cloud metadata service',
    ],
    ['metadata', () => 'http://metadata/computeMetadata/v1/', 'metadata names a cloud metadata service'],
    ['user:password@', () => 'https://user:pass@example.com/cb', 'without user:password@'],
  ];

  it.each(FORMS)(
    '%s: refused at registration (url) and per message (callbackUrl) with 400 URL_FORBIDDEN, nothing kept',
    async (_what, urlOf, words) => {
      const url = urlOf();
      const put = await httpCall(base, 'PUT', '/v1/callback', { url });
      expect(put.status).toBe(400);
      expect(put.body.error).toMatchObject({ code: 'URL_FORBIDDEN', details: [{ path: 'url', problem: expect.stringContaining(words) }] });
      expect((await httpCall(base, 'GET', '/v1/callback')).body.url).toBeNull();

      const messageId = randomUUID();
      const sent = await httpCall(base, 'POST', '/v1/messages', message({ messageId, callbackUrl: url }));
      expect(sent.status).toBe(400);
      expect(sent.body.error).toMatchObject({
        code: 'URL_FORBIDDEN',
        details: [{ path: 'callbackUrl', problem: expect.stringContaining(words) }],
      });
      expect(await h.producer.getStatus(messageId)).toBeNull();
    },
  );

  it('a batch names the item; a name that does not resolve is 400 URL_UNRESOLVABLE', async () => {
    const ids = [randomUUID(), randomUUID()];
    const batch = await httpCall(base, 'POST', '/v1/messages:batch', {
      messages: [message({ messageId: ids[0] }), message({ messageId: ids[1], callbackUrl: 'http://[::1]:9/cb' })],
    });
    expect(batch.status).toBe(400);
    expect(batch.body.error).toMatchObject({
      code: 'URL_FORBIDDEN',
      details: [{ path: 'messages.1.callbackUrl', problem: expect.stringContaining('a loopback address (::1)') }],
    });
    for (const id of ids) expect(await h.producer.getStatus(id)).toBeNull();

    const put = await httpCall(base, 'PUT', '/v1/callback', { url: 'https://nowhere.test/cb' });
    expect(put).toMatchObject({
      status: 400,
      body: { error: { code: 'URL_UNRESOLVABLE', details: [{ path: 'url', problem: expect.stringContaining('nowhere.test') }] } },
    });
    const sent = await httpCall(base, 'POST', '/v1/messages', message({ callbackUrl: 'https://nowhere.test/cb' }));
    expect(sent).toMatchObject({ status: 400, body: { error: { code: 'URL_UNRESOLVABLE', details: [{ path: 'callbackUrl' }] } } });
  });

  it('CALLBACK_ALLOW_HOSTS opens a chosen private receiver, by address (127.0.0.2) and by name (receiver.test → 127.0.0.1)', async () => {
    const put = await httpCall(base, 'PUT', '/v1/callback', { url: `${allowedReceiver.url}/registered` });
    expect(put).toMatchObject({ status: 200, body: { url: `${allowedReceiver.url}/registered` } });
    const viaRegistration = await httpCall(base, 'POST', '/v1/messages', message());
    expect(viaRegistration.status).toBe(202);
    const byName = await httpCall(base, 'POST', '/v1/messages', message({ callbackUrl: `http://receiver.test:${receiver.port}/named` }));
    expect(byName.status).toBe(202);
    const mine = (id: string) => (r: { body: string }) => r.body.includes(id);
    expect((await allowedReceiver.until(2, mine(viaRegistration.body.messageId))).map((r) => r.path)).toEqual([
      '/registered',
      '/registered',
    ]);
    const named = await receiver.until(2, mine(byName.body.messageId));
    expect(named.map((r) => [r.path, r.headers.host])).toEqual([
      ['/named', `receiver.test:${receiver.port}`],
      ['/named', `receiver.test:${receiver.port}`],
    ]);
    expect((await httpCall(base, 'DELETE', '/v1/callback')).status).toBe(204);
  });

  it('a name that resolves elsewhere at connect time (DNS rebinding): accepted when given, then refused at connect, failed for good without retries', async () => {
    const sent = await httpCall(base, 'POST', '/v1/messages', message({ callbackUrl: `http://rebind.test:${receiver.port}/rebound` }));
    expect(sent.status).toBe(202); // rebind.test resolved to a public address when given
    const { messageId } = sent.body as { messageId: string };
    await h.outcome('agent-a', sendMessageJobId(messageId));
    const status = (await h.producer.getStatus(messageId))!;
    const sending = status.timeline.find((t) => t.state === 'SENDING')!;
    const jobId = deliverCallbackJobId(callbackWebhookId({ messageId, state: 'SENDING', at: sending.at }));
    await expect(h.outcomeOn(CALLBACK_QUEUE, jobId)).rejects.toThrow(
      'refused to connect to rebind.test: it resolves to a loopback address (127.0.0.1)',
    );
    const job = await h.service.metricsSource.queues.find((q) => q.name === CALLBACK_QUEUE)!.getJob(jobId);
    expect(job!.attemptsMade).toBe(1);
    expect(job!.opts.attempts).toBeGreaterThan(1); // it had retries left, and used none
    expect(resolver.calls.get('rebind.test')).toBeGreaterThanOrEqual(2);
    expect(receiver.received.filter((r) => r.path === '/rebound')).toHaveLength(0);
  });
});
