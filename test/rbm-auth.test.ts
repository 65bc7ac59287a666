/**
 * The token source and the RBM client's 401 handling, against the emulator
 * over HTTP with the real google-auth-library: single-flight refresh, the
 * pause after a failed token request, and the key-refused path.
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startEmulator, type RunningEmulator } from '../src/emulator/index.ts';
import { classify, RbmAuthError, RbmTokenUnavailableError } from '../src/errors.ts';
import { createTokenSource, loadServiceAccountKey, type ServiceAccountKey, type TokenEvent, type TokenSource } from '../src/rbm/auth.ts';
import { RbmClient } from '../src/rbm/client.ts';
import { rcsPhone, waitFor } from './helpers.ts';

let emu: RunningEmulator;
let dir: string;
let key: ServiceAccountKey;

beforeAll(async () => {
  emu = await startEmulator();
  dir = await mkdtemp(join(tmpdir(), 'rbm-auth-'));
  await emu.writeKeyFile(join(dir, 'key.json'));
  key = await loadServiceAccountKey(join(dir, 'key.json'));
});
afterAll(async () => {
  await emu.close();
  await rm(dir, { recursive: true, force: true });
});
beforeEach(() => emu.state.reset());

/** A logger that keeps its lines, to check what is said loudly and how often. */
function capture() {
  const lines: Array<{ level: string; msg: string; obj: object }> = [];
  const at =
    (level: string) =>
    (obj: object, msg = '') =>
      void lines.push({ level, msg, obj });
  return { lines, log: { info: at('info'), warn: at('warn'), error: at('error'), debug: at('debug') } };
}

let clients: RbmClient[] = [];
afterEach(async () => {
  await Promise.all(clients.map((c) => c.close()));
  clients = [];
});

function setup(): { tokens: TokenSource; client: RbmClient; events: TokenEvent[]; lines: ReturnType<typeof capture>['lines'] } {
  const { lines, log } = capture();
  const events: TokenEvent[] = [];
  const tokens = createTokenSource(key, { log, onEvent: (e) => events.push(e) });
  const client = new RbmClient({ baseUrl: emu.url, tokens, fastRetries: 0 });
  clients.push(client);
  return { tokens, client, events, lines };
}

const send = (client: RbmClient, n: number) =>
  client.createMessage({ agentId: 'agent-a', to: rcsPhone(n), messageId: randomUUID(), body: { contentMessage: { text: `hi ${n}` } } });

const authOf = (n: number) => emu.state.phones.get(rcsPhone(n))!.arrivals[0]!.wire.authorization;

describe('token refresh after a 401', () => {
  it('50 concurrent calls refused with the same token share ONE token request, and each retries once with the new token', async () => {
    const { client, events } = setup();
    await send(client, 0);
    expect(emu.state.counters.tokenRequests).toBe(1);
    // One 401 per phone: a call's retry can never consume another call's scripted 401.
    emu.state.faults.set({ failNext: Array.from({ length: 50 }, (_, i) => ({ kind: '401' as const, count: 1, phone: rcsPhone(i + 1) })) });
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => send(client, i + 1)));
    expect(results.every((r) => 'name' in r)).toBe(true);
    expect(emu.state.counters.unauthorized).toBe(50);
    expect(emu.state.counters.tokenRequests).toBe(2);
    expect(emu.state.counters.tokensIssued).toBe(2);
    const fresh = authOf(1);
    expect(fresh).not.toBe(authOf(0));
    for (let i = 1; i <= 50; i++) expect(authOf(i)).toBe(fresh);
    expect(events.filter((e) => e === 'issued')).toHaveLength(2);
    expect(events.filter((e) => e === 'rejected')).toHaveLength(50);
  });

  it('refresh(rejected): concurrent callers share one request; a token already replaced is answered without one', async () => {
    const { tokens } = setup();
    const t1 = await tokens.getToken();
    const fresh = await Promise.all(Array.from({ length: 20 }, () => tokens.refresh(t1)));
    expect(new Set(fresh).size).toBe(1);
    expect(fresh[0]).not.toBe(t1);
    expect(emu.state.counters.tokenRequests).toBe(2);
    // A late 401 on the old token: the replacement, no request.
    expect(await tokens.refresh(t1)).toBe(fresh[0]);
    expect(await tokens.getToken()).toBe(fresh[0]);
    expect(emu.state.counters.tokenRequests).toBe(2);
    // The new token refused in turn: a new request (the JWT client still can fetch).
    expect(await tokens.refresh(fresh[0]!)).not.toBe(fresh[0]);
    expect(emu.state.counters.tokenRequests).toBe(3);
  });

  it('a 401 on the fresh token fails that call with RBM_AUTH (permanent), logged once per burst; the next call tries again and heals', async () => {
    const { client, lines } = setup();
    emu.state.faults.set({ failNext: [{ kind: '401', count: 6 }] });
    for (let i = 0; i < 3; i++) {
      const err = await send(client, i).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RbmAuthError);
      expect(err).toMatchObject({ code: 'RBM_AUTH' });
      expect(classify(err)).toBe('permanent');
    }
    // Each call: first token (cached after the first), one fresh token, both refused.
    expect(emu.state.counters.unauthorized).toBe(6);
    expect(emu.state.counters.tokenRequests).toBe(4);
    const loud = lines.filter((l) => l.level === 'error' && /RBM refuses freshly issued tokens/.test(l.msg));
    expect(loud).toHaveLength(1);
    expect(JSON.stringify(lines)).not.toMatch(/emu-|PRIVATE KEY/);
    expect(await send(client, 10)).toMatchObject({ name: expect.any(String) });
    expect(emu.state.counters.tokenRequests).toBe(4);
    expect(lines.some((l) => l.level === 'info' && /accepts our tokens again/.test(l.msg))).toBe(true);
  });
});

describe('token endpoint outage', () => {
  it('a 503 fails the call as RBM_TOKEN_UNAVAILABLE (deferred, not an attempt); no request before the pause ends; then a token', async () => {
    const { tokens, client, events } = setup();
    emu.state.tokenFaults.set({ failNext: [{ kind: '503', count: 1 }] });
    const err = await send(client, 1).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RbmTokenUnavailableError);
    expect(err).toMatchObject({ code: 'RBM_TOKEN_UNAVAILABLE' });
    expect(classify(err)).toBe('defer');
    const { retryAfterMs } = err as RbmTokenUnavailableError;
    expect(retryAfterMs).toBeGreaterThan(0);
    expect(retryAfterMs).toBeLessThanOrEqual(500);
    // Within the pause: failed at once, without a request.
    await expect(tokens.getToken()).rejects.toBeInstanceOf(RbmTokenUnavailableError);
    expect(emu.state.counters.tokenRequests).toBe(1);
    const token = await waitFor(
      () => tokens.getToken().catch(() => undefined),
      (t) => t !== undefined,
      5000,
    );
    expect(token).toMatch(/^emu-/);
    expect(emu.state.counters).toMatchObject({ tokenRequests: 2, tokenFaults: 1, tokensIssued: 1 });
    expect(events).toEqual(['unavailable', 'issued']);
    expect(await send(client, 2)).toMatchObject({ name: expect.any(String) });
  });

  it('a connection reset and a 401 whose refresh meets the outage: deferred, never RBM_AUTH', async () => {
    const { tokens, client } = setup();
    await tokens.getToken();
    emu.state.faults.set({ failNext: [{ kind: '401', count: 1 }] });
    emu.state.tokenFaults.set({ failNext: [{ kind: 'reset', count: 1 }] });
    const err = await send(client, 1).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RbmTokenUnavailableError);
    expect(emu.state.counters.tokenFaults).toBe(1);
    // The refused token is never handed out again, even during the pause.
    await expect(tokens.getToken()).rejects.toBeInstanceOf(RbmTokenUnavailableError);
    await waitFor(
      () => send(client, 2).catch(() => undefined),
      (r) => r !== undefined,
      5000,
    );
    expect(emu.state.counters.tokensIssued).toBe(2);
  });

  it('a key the library cannot sign with: RBM_AUTH at once (permanent, loud), never a silent wait', async () => {
    const { lines, log } = capture();
    const broken = createTokenSource(
      { ...key, private_key: '-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n' },
      { log },
    );
    const err = await broken.getToken().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RbmAuthError);
    expect(classify(err)).toBe('permanent');
    expect(emu.state.counters.tokenRequests).toBe(0);
    expect(lines.filter((l) => l.level === 'error')).toHaveLength(1);
    expect(JSON.stringify(lines)).not.toMatch(/PRIVATE KEY/);
  });
});
