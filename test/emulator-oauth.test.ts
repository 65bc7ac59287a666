/**
 * The emulator's OAuth side over real HTTP, driven by the real
 * google-auth-library (token_uri honoured through a transporter interceptor,
 * spec §7.5): key files, token issue and use, refused assertions.
 */
import { createSign, generateKeyPairSync, randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
// gaxios through google-auth-library, so the transporter is the same (CJS) module the JWT client expects.
import { JWT, gaxios } from 'google-auth-library';
import { request } from 'undici';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { GOOGLE_TOKEN_URL, RBM_SCOPE, startEmulator, type RunningEmulator, type ServiceAccountKey } from '../src/emulator/index.ts';

/** google-auth-library's JWT client with its token request sent to the key's token_uri (spec §7.5). */
function jwtClient(
  key: Pick<ServiceAccountKey, 'client_email' | 'private_key' | 'token_uri'>,
  opts: { libraryRetries?: boolean } = {},
): JWT {
  // Without its own retries (as the service runs it), one token fetch is one request: what fault scripts count.
  const transporter = new gaxios.Gaxios(opts.libraryRetries === false ? { retryConfig: { retry: 0, noResponseRetries: 0 } } : {});
  transporter.interceptors.request.add({
    resolved: async (cfg) => {
      if (cfg.url.toString() === GOOGLE_TOKEN_URL) cfg.url = new URL(key.token_uri);
      return cfg;
    },
  });
  return new JWT({ email: key.client_email, key: key.private_key, scopes: [RBM_SCOPE], transporter });
}

/** A hand-made RS256 assertion, for cases the library would never produce. */
function assertion(privateKeyPem: string, claims: Record<string, unknown>): string {
  const enc = (o: unknown): string => Buffer.from(JSON.stringify(o)).toString('base64url');
  const data = `${enc({ alg: 'RS256', typ: 'JWT' })}.${enc(claims)}`;
  return `${data}.${createSign('RSA-SHA256').update(data).sign(privateKeyPem).toString('base64url')}`;
}

const PHONE = '+12223334444';

let emu: RunningEmulator;
let dir: string;
let key: ServiceAccountKey;

beforeAll(async () => {
  emu = await startEmulator();
  dir = await mkdtemp(join(tmpdir(), 'rbm-emu-'));
  key = await emu.writeKeyFile(join(dir, 'sub', 'key.json'), { clientEmail: 'svc@test-project.iam.gserviceaccount.com' });
});
afterAll(async () => {
  await emu.close();
  await rm(dir, { recursive: true, force: true });
});
beforeEach(() => emu.state.reset());

describe('OAuth token endpoint', () => {
  it('writes a standard service-account key file pointing at the emulator', async () => {
    const onDisk = JSON.parse(await readFile(join(dir, 'sub', 'key.json'), 'utf8'));
    expect(onDisk).toEqual(key);
    expect(key).toMatchObject({
      type: 'service_account',
      client_email: 'svc@test-project.iam.gserviceaccount.com',
      token_uri: `${emu.url}/token`,
    });
    for (const f of ['project_id', 'private_key_id', 'client_id', 'auth_uri', 'auth_provider_x509_cert_url', 'client_x509_cert_url']) {
      expect(typeof onDisk[f]).toBe('string');
    }
    expect(key.private_key).toMatch(/^-----BEGIN PRIVATE KEY-----/);
  });

  it('issues a token to google-auth-library, caches it, and the RBM path accepts it', async () => {
    const client = jwtClient(key);
    const first = await client.getAccessToken();
    const second = await client.getAccessToken();
    expect(first.token).toMatch(/^emu-/);
    expect(second.token).toBe(first.token);
    expect(emu.state.counters.tokensIssued).toBe(1);
    const id = randomUUID();
    const send = (authorization: string) =>
      request(`${emu.url}/v1/phones/${PHONE}/agentMessages?messageId=${id}&agentId=agent-a`, {
        method: 'POST',
        headers: { authorization, 'content-type': 'application/json' },
        body: JSON.stringify({ contentMessage: { text: 'hi' } }),
      });
    const refused = await send('Bearer ya29.not-from-this-emulator');
    expect(refused.statusCode).toBe(401);
    await refused.body.dump();
    const res = await send(`Bearer ${first.token}`);
    expect(res.statusCode).toBe(200);
    expect(await res.body.json()).toMatchObject({ name: `phones/${PHONE}/agentMessages/${id}` });
    expect(emu.state.phones.get(PHONE)?.arrivals).toHaveLength(1);
  });

  it('refuses an assertion signed by a key it never issued (real library and raw form)', async () => {
    const foreign = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    await expect(jwtClient({ ...key, private_key: foreign }).getAccessToken()).rejects.toThrow(/invalid_grant/);
    const now = Math.floor(Date.now() / 1000);
    const claims = { iss: key.client_email, scope: RBM_SCOPE, aud: GOOGLE_TOKEN_URL, iat: now, exp: now + 3600 };
    const res = await request(`${emu.url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer',
        assertion: assertion(foreign, claims),
      }).toString(),
    });
    expect(res.statusCode).toBe(400);
    expect(await res.body.json()).toMatchObject({ error: 'invalid_grant', error_description: expect.any(String) });
    expect(emu.state.counters.tokensIssued).toBe(0);
    expect(emu.state.counters.tokensRefused).toBe(2);
  });

  it('refuses tampered claims, a wrong audience, an expired assertion and a missing scope', async () => {
    const now = Math.floor(Date.now() / 1000);
    const good = { iss: key.client_email, scope: RBM_SCOPE, aud: GOOGLE_TOKEN_URL, iat: now, exp: now + 3600 };
    const signed = assertion(key.private_key, good);
    const [h, , s] = signed.split('.');
    const tampered = `${h}.${Buffer.from(JSON.stringify({ ...good, iss: 'evil@x.iam.gserviceaccount.com' })).toString('base64url')}.${s}`;
    const cases = [
      tampered,
      assertion(key.private_key, { ...good, aud: 'https://elsewhere.example/token' }),
      assertion(key.private_key, { ...good, exp: now - 10 }),
      assertion(key.private_key, { ...good, scope: 'https://www.googleapis.com/auth/cloud-platform' }),
    ];
    for (const a of cases) {
      const res = await request(`${emu.url}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: `grant_type=${encodeURIComponent('urn:ietf:params:oauth:grant-type:jwt-bearer')}&assertion=${a}`,
      });
      expect(res.statusCode).toBe(400);
      expect((await res.body.json()) as object).toMatchObject({ error: 'invalid_grant' });
    }
    // The same claims, untampered and addressed to the emulator itself, are accepted.
    const ok = await request(`${emu.url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: `grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=${assertion(key.private_key, { ...good, aud: `${emu.url}/token` })}`,
    });
    expect(ok.statusCode).toBe(200);
    expect(await ok.body.json()).toMatchObject({ access_token: expect.stringMatching(/^emu-/), expires_in: 3600, token_type: 'Bearer' });
  });
});

describe('token endpoint faults (PUT /_emulator/token/faults)', () => {
  const control = async (method: string, path: string, body?: unknown) => {
    const res = await request(`${emu.url}/_emulator${path}`, {
      method: method as 'GET',
      ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
    });
    return { status: res.statusCode, body: (await res.body.json()) as any };
  };

  it('answers the next N token requests with the scripted fault, then issues again; counts every request', async () => {
    const put = await control('PUT', '/token/faults', {
      failNext: [
        { kind: '503', count: 2 },
        { kind: '400', count: 1 },
      ],
    });
    expect(put).toMatchObject({
      status: 200,
      body: {
        latencyMs: 0,
        failNext: [
          { kind: '503', count: 2 },
          { kind: '400', count: 1 },
        ],
      },
    });
    const client = jwtClient(key, { libraryRetries: false });
    await expect(client.getAccessToken()).rejects.toMatchObject({ status: 503 });
    await expect(client.getAccessToken()).rejects.toMatchObject({ status: 503 });
    await expect(client.getAccessToken()).rejects.toThrow(/invalid_grant/);
    expect((await client.getAccessToken()).token).toMatch(/^emu-/);
    expect((await control('GET', '/counters')).body).toMatchObject({ tokenRequests: 4, tokenFaults: 3, tokensIssued: 1, tokensRefused: 0 });
    expect((await control('GET', '/token/faults')).body).toEqual({ latencyMs: 0, failNext: [] });
  });

  it('a window in ms (forMs) and a reset; DELETE and POST /reset clear them; bad scripts are 400', async () => {
    const put = await control('PUT', '/token/faults', { failNext: [{ kind: 'reset', forMs: 60_000 }] });
    expect(put.body.failNext[0]).toMatchObject({ kind: 'reset', forMs: expect.any(Number) });
    await expect(jwtClient(key, { libraryRetries: false }).getAccessToken()).rejects.toThrow();
    await expect(jwtClient(key, { libraryRetries: false }).getAccessToken()).rejects.toThrow();
    expect(emu.state.counters.tokenFaults).toBe(2);
    expect((await control('DELETE', '/token/faults')).body).toEqual({ latencyMs: 0, failNext: [] });
    expect((await jwtClient(key).getAccessToken()).token).toMatch(/^emu-/);
    await control('PUT', '/token/faults', { latencyMs: 5, failNext: [{ kind: '500', count: 1 }] });
    await control('POST', '/reset');
    expect((await control('GET', '/token/faults')).body).toEqual({ latencyMs: 0, failNext: [] });
    for (const bad of [
      { failNext: [{ kind: '418', count: 1 }] },
      { failNext: [{ kind: '503' }] },
      { failNext: [{ kind: '503', forMs: -1 }] },
      { latencyMs: 'slow' },
      [],
    ]) {
      const res = await control('PUT', '/token/faults', bad);
      expect(res.status).toBe(400);
      expect(res.body.error.status).toBe('INVALID_ARGUMENT');
    }
  });

  it("RBM's failNext kind 401 refuses the next N calls of one agent, with a valid token", async () => {
    const { token } = await jwtClient(key).getAccessToken();
    await control('PUT', '/faults', { failNext: [{ kind: '401', count: 1, agentId: 'agent-b' }] });
    const send = (agentId: string) =>
      request(`${emu.url}/v1/phones/${PHONE}/agentMessages?messageId=${randomUUID()}&agentId=${agentId}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ contentMessage: { text: 'hi' } }),
      });
    const a = await send('agent-a');
    expect(a.statusCode).toBe(200);
    await a.body.dump();
    const b = await send('agent-b');
    expect(b.statusCode).toBe(401);
    expect(b.headers['www-authenticate']).toMatch(/^Bearer/);
    expect(await b.body.json()).toMatchObject({ error: { status: 'UNAUTHENTICATED' } });
    const again = await send('agent-b');
    expect(again.statusCode).toBe(200);
    await again.body.dump();
    expect(emu.state.counters.unauthorized).toBe(1);
  });
});
