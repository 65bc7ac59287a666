/** GET /metrics: the domain metrics follow what really happened (real stack, Prometheus text). */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendSmsJobId, SMS_QUEUE } from '../jobs/index.ts';
import { buildApi } from '../src/api/app.ts';
import { createMetrics } from '../src/api/metrics.ts';
import { httpCall, rcsPhone, startHarness, waitFor, type Harness } from './helpers.ts';

let h: Harness;
let base: string;
beforeAll(async () => {
  h = await startHarness({ name: 'metrics', env: { RBM_RATE_LIMIT_PAUSE_MS: '20' } });
  base = await h.startHttp();
  h.startDispatch();
  h.startInbound();
  h.startSms();
});
afterAll(async () => {
  await h.close();
});

/** `name{labels} value` lines → value by the line's left side. */
async function scrape(): Promise<Map<string, number>> {
  const res = await fetch(`${base}/metrics`);
  expect(res.headers.get('content-type')).toContain('text/plain');
  const lines = (await res.text()).split('\n').filter((l) => l && !l.startsWith('#'));
  return new Map(lines.map((l) => [l.slice(0, l.lastIndexOf(' ')), Number(l.slice(l.lastIndexOf(' ') + 1))]));
}

describe('metrics', () => {
  it('counts moves, fallbacks, 429s, retries, and times delivery and fallback', async () => {
    const online = rcsPhone(1);
    await fetch(`${h.emulator.url}/_emulator/faults`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        failNext: [
          { kind: '429', count: 1, phone: online },
          { kind: '503', count: 3, phone: online },
        ],
      }),
    });
    const a = (await httpCall(base, 'POST', '/v1/messages', { to: online, contentMessage: { text: 'hi' } })).body.messageId;
    const b = (
      await httpCall(base, 'POST', '/v1/messages', {
        to: '+15550007770',
        contentMessage: { text: 'hi' },
        fallback: { sms: { text: 'hi by SMS' } },
      })
    ).body.messageId;
    await waitFor(
      async () => (await httpCall(base, 'GET', `/v1/messages/${a}`)).body.state,
      (s) => s === 'DELIVERED',
    );
    // The SMS job writes FALLBACK_SENT before it completes.
    expect(await h.outcomeOn(SMS_QUEUE, sendSmsJobId(b, 'agent-a'))).toMatchObject({ outcome: 'FALLBACK_SENT' });
    expect((await httpCall(base, 'GET', `/v1/messages/${b}`)).body.state).toBe('FALLBACK_SENT');

    // A webhook entry leaves the stream just after its handler moved the status: wait for the stream to drain.
    const m = await waitFor(scrape, (scraped) => scraped.get('rbm_webhook_events_pending') === 0);
    expect(m.get('rbm_messages_total{state="SENT",agent="agent-a"}')).toBe(1);
    expect(m.get('rbm_messages_total{state="DELIVERED",agent="agent-a"}')).toBe(1);
    expect(m.get('rbm_messages_total{state="NOT_RCS",agent="agent-a"}')).toBe(1);
    expect(m.get('rbm_messages_total{state="FALLBACK_SENT",agent="agent-a"}')).toBe(1);
    expect(m.get('rbm_fallbacks_total{reason="NOT_RCS"}')).toBe(1);
    expect(m.get('rbm_rate_limited_total{queue="rbm-outbound.agent-a"}')).toBe(1);
    // A 429 without Retry-After lowers the agent's rate (one 10 % step here) instead of pausing its queue.
    expect(m.has('rbm_throttled_seconds_total{queue="rbm-outbound.agent-a"}')).toBe(false);
    expect(m.get('rbm_agent_effective_rate{agent="agent-a"}')).toBeGreaterThanOrEqual(900);
    expect(m.get('rbm_agent_effective_rate{agent="agent-a"}')).toBeLessThan(1000);
    expect(m.get('rbm_retries_total{queue="rbm-outbound.agent-a"}')).toBe(1);
    expect(m.get('rbm_time_to_delivered_seconds_count')).toBe(1);
    expect(m.get('rbm_time_to_delivered_seconds_bucket{le="+Inf"}')).toBe(1);
    expect(m.get('rbm_time_to_delivered_seconds_bucket{le="60"}')).toBe(1);
    expect(m.get('rbm_time_to_fallback_seconds_count')).toBe(1);
    expect(m.get('rbm_webhooks_total{outcome="queued"}')).toBeGreaterThanOrEqual(1);
    expect(m.get('rbm_webhook_lag_seconds_count')).toBeGreaterThanOrEqual(1);
    expect(m.has('rbm_queue_jobs{queue="sms-outbound",state="completed"}')).toBe(true);
    expect([...m.keys()].some((k) => k.startsWith('process_cpu_user_seconds_total'))).toBe(true);
  });

  it('a scrape that cannot read Redis answers 503 in the one error shape', async () => {
    const app = buildApi({
      producer: h.producer,
      apiKeys: [],
      openWithoutKeys: true,
      metrics: createMetrics({ read: () => Promise.reject(new Error('Connection is closed.')) }),
    });
    const res = await app.inject({ method: 'GET', url: '/metrics' });
    expect(res.statusCode).toBe(503);
    expect(res.json()).toEqual({ error: { code: 'REDIS_UNAVAILABLE', message: expect.any(String), details: [], problemCount: 0 } });
    await app.close();
  });
});
