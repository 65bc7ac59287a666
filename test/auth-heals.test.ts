/**
 * Auth that heals, end to end: producer → Redis → dispatch worker → the
 * emulator over HTTP, tokens from its token endpoint through the real
 * google-auth-library. The emulator scripts RBM's 401s and the token
 * endpoint's outages; its counters are the truth about token requests.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createMetrics } from '../src/api/metrics.ts';
import { metricsKey } from '../src/status/store.ts';
import { rcsPhone, startHarness, waitFor, type Harness } from './helpers.ts';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

const AGENT = 'agent-a';
const QUEUE = `rbm-outbound.${AGENT}`;
const text = (t: string) => ({ contentMessage: { text: t } });

interface Counters {
  tokenRequests: number;
  tokensIssued: number;
  tokenFaults: number;
  unauthorized: number;
  messagesAccepted: number;
}

async function control<T = unknown>(h: Harness, path: string, method: string, body?: unknown): Promise<T> {
  const res = await fetch(`${h.emulator.url}/_emulator${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  expect(res.status, `control ${method} ${path}`).toBeLessThan(300);
  return (await res.json()) as T;
}

const counters = (h: Harness) => control<Counters>(h, '/counters', 'GET');

async function metrics(h: Harness): Promise<Record<string, number>> {
  const hash = await h.redis.producer.hgetall(metricsKey(h.config.queuePrefix));
  return Object.fromEntries(Object.entries(hash).map(([k, v]) => [k, Number(v)]));
}

/** What GET /metrics would show: `name{labels}` → value. */
async function exposed(h: Harness): Promise<Map<string, number>> {
  const text = await createMetrics({ read: () => h.service.metricsSource.read() }).registry.metrics();
  const lines = text.split('\n').filter((l) => l && !l.startsWith('#'));
  return new Map(lines.map((l) => [l.slice(0, l.lastIndexOf(' ')), Number(l.slice(l.lastIndexOf(' ') + 1))]));
}

/** Queues `n` messages to distinct phones; their IDs. */
async function queue(h: Harness, n: number, from: number, label: string): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) ids.push((await h.producer.sendMessage({ to: rcsPhone(from + i), ...text(`${label} ${i}`) })).messageId);
  return ids;
}

/** Every job's outcome: SENT, or the reason it failed for good. */
function outcomes(h: Harness, ids: string[]): Promise<string[]> {
  return Promise.all(
    ids.map((id) =>
      h.outcome(AGENT, `msg-${id}`).then(
        (o) => (o as { outcome: string }).outcome,
        (e: Error) => `FAILED: ${e.message}`,
      ),
    ),
  );
}

describe('auth that heals', () => {
  it('one 401: exactly one new token request, the message SENT, then 100 more SENT with no further token request', async () => {
    h = await startHarness({ name: 'auth-401' });
    h.startDispatch();
    const [warm] = await queue(h, 1, 1, 'warm');
    expect(await outcomes(h, [warm!])).toEqual(['SENT']);
    expect(await counters(h)).toMatchObject({ tokenRequests: 1, tokensIssued: 1, unauthorized: 0 });

    // RBM refuses the cached token once, as after a key rotation or an early revocation.
    await control(h, '/faults', 'PUT', { failNext: [{ kind: '401', count: 1, agentId: AGENT }] });
    const [refused] = await queue(h, 1, 2, 'refused once');
    expect(await outcomes(h, [refused!])).toEqual(['SENT']);
    expect(await counters(h)).toMatchObject({ tokenRequests: 2, tokensIssued: 2, unauthorized: 1 });
    // Healed within the same try: no attempt used up, no error left behind.
    expect(await h.producer.getStatus(refused!)).toMatchObject({ state: 'SENT', attempts: 1 });
    const wire = (phone: string) => h!.emulator.state.phones.get(phone)!.arrivals[0]!.wire.authorization;
    expect(wire(rcsPhone(2))).not.toBe(wire(rcsPhone(1)));

    const next = await queue(h, 100, 3, 'after');
    expect(await outcomes(h, next)).toEqual(next.map(() => 'SENT'));
    expect(await counters(h)).toMatchObject({ tokenRequests: 2, tokensIssued: 2, unauthorized: 1, messagesAccepted: 102 });
    const m = await metrics(h);
    expect(m['token|issued']).toBe(2);
    expect(m['token|rejected']).toBe(1);
    expect(m['token|unavailable']).toBeUndefined();
  });

  it('token endpoint answering 503 for 10 s: nothing FAILED, no attempt used, paced token requests, all SENT after it recovers', async () => {
    h = await startHarness({ name: 'auth-outage' });
    const outageMs = 10_000;
    // Before the first token: no cached token to fall back on, every send needs the endpoint.
    const faultSetAt = Date.now();
    await control(h, '/token/faults', 'PUT', { failNext: [{ kind: '503', forMs: outageMs }] });
    const ids = await queue(h, 20, 1, 'outage');
    h.startDispatch();
    expect(await outcomes(h, ids)).toEqual(ids.map(() => 'SENT'));
    const recovered = Date.now() - faultSetAt;

    for (let i = 0; i < ids.length; i++) {
      // The emulator accepted each one only after the outage ended.
      expect(h.emulator.state.phones.get(rcsPhone(1 + i))!.arrivals[0]!.receivedAt).toBeGreaterThanOrEqual(faultSetAt + outageMs);
      expect(await h.producer.getStatus(ids[i]!)).toMatchObject({ state: 'SENT', attempts: 1 });
    }
    const c = await counters(h);
    // One token request per pause of the token source (0.5 s doubling to 5 s), not one per job or per try.
    expect(c.tokensIssued).toBe(1);
    expect(c.tokenFaults).toBeGreaterThanOrEqual(2);
    expect(c.tokenFaults).toBeLessThanOrEqual(8);
    const m = await metrics(h);
    expect(m['token|unavailable']).toBe(c.tokenFaults);
    expect(m[`deferred|${QUEUE}`]).toBeGreaterThanOrEqual(ids.length);
    expect(m[`retries|${QUEUE}`]).toBeUndefined();
    expect(m[`state|FAILED|${AGENT}`]).toBeUndefined();
    // Waiting for a token is no try: one SENDING per message.
    expect(m[`state|SENDING|${AGENT}`]).toBe(ids.length);
    const scraped = await exposed(h);
    expect(scraped.get('rbm_token_requests_total{outcome="unavailable"}')).toBe(c.tokenFaults);
    expect(scraped.get('rbm_token_requests_total{outcome="issued"}')).toBe(1);
    expect(scraped.get(`rbm_deferred_total{queue="${QUEUE}"}`)).toBe(m[`deferred|${QUEUE}`]);
    console.log(
      `token outage ${outageMs} ms: all ${ids.length} SENT after ${recovered} ms; token requests ${c.tokenRequests} (${c.tokenFaults} answered 503)`,
    );
  });

  it('a slow token endpoint: requests time out, sends wait, and resume once it answers in time', async () => {
    h = await startHarness({ name: 'auth-slow', env: { RBM_REQUEST_TIMEOUT_MS: '300' } });
    await control(h, '/token/faults', 'PUT', { latencyMs: 1500 });
    const ids = await queue(h, 5, 1, 'slow');
    h.startDispatch();
    await waitFor(
      () => metrics(h!),
      (m) => (m['token|unavailable'] ?? 0) >= 2,
      20_000,
    );
    await control(h, '/token/faults', 'DELETE');
    expect(await outcomes(h, ids)).toEqual(ids.map(() => 'SENT'));
    for (const id of ids) expect(await h.producer.getStatus(id)).toMatchObject({ state: 'SENT', attempts: 1 });
  });

  it('a key the token endpoint refuses (400 invalid_grant): that message FAILED with RBM_AUTH, the next one SENT', async () => {
    h = await startHarness({ name: 'auth-refused' });
    await control(h, '/token/faults', 'PUT', { failNext: [{ kind: '400', count: 1 }] });
    h.startDispatch();
    const [refused] = await queue(h, 1, 1, 'refused');
    expect((await outcomes(h, [refused!]))[0]).toMatch(/^FAILED: .*refused the service account/);
    expect(await h.producer.getStatus(refused!)).toMatchObject({ state: 'FAILED', attempts: 1, lastError: { code: 'RBM_AUTH' } });
    const [next] = await queue(h, 1, 2, 'next');
    expect(await outcomes(h, [next!])).toEqual(['SENT']);
    expect(await counters(h)).toMatchObject({ tokenRequests: 2, tokenFaults: 1, tokensIssued: 1 });
    expect((await metrics(h))['token|refused']).toBe(1);
  });

  it('key revoked (401 on every call): messages FAILED with RBM_AUTH, one fresh token and one retry each; healed without restart once RBM accepts again', async () => {
    h = await startHarness({ name: 'auth-revoked' });
    h.startDispatch();
    await control(h, '/faults', 'PUT', { failNext: [{ kind: '401', count: 1_000_000 }] });
    const ids = await queue(h, 5, 1, 'revoked');
    const results = await outcomes(h, ids);
    for (const r of results) expect(r).toMatch(/^FAILED: RBM answered 401 to a freshly issued token/);
    for (const id of ids)
      expect(await h.producer.getStatus(id)).toMatchObject({ state: 'FAILED', attempts: 1, lastError: { code: 'RBM_AUTH' } });
    const c = await counters(h);
    // Each call: its token refused, one fresh token (shared by concurrent calls), refused again.
    expect(c.unauthorized).toBe(2 * ids.length);
    expect(c.tokenRequests).toBeGreaterThanOrEqual(2);
    expect(c.tokenRequests).toBeLessThanOrEqual(1 + ids.length);
    expect((await metrics(h))['token|rejected']).toBe(2 * ids.length);
    expect((await exposed(h)).get('rbm_unauthorized_total')).toBe(2 * ids.length);

    await control(h, '/faults', 'DELETE');
    const [healed] = await queue(h, 1, 100, 'healed');
    expect(await outcomes(h, [healed!])).toEqual(['SENT']);
    expect(await h.producer.getStatus(healed!)).toMatchObject({ state: 'SENT', attempts: 1 });
  });
});
