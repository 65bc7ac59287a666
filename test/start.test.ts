/**
 * The `npm start` entry as a user runs it: the whole service in one process
 * against the built-in emulator; the README's curl flow with its status
 * callbacks (signed with the secret made up for the run); a clean SIGTERM.
 */
import type { ChildProcess } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { Webhook } from 'standardwebhooks';
import { NO_CHANGE } from '../src/status/store.ts';
import { changeTo, dropKeys, redisUrl, spawnService, startCallbackReceiver, uniquePrefix, freePort, lineOf } from './helpers.ts';

let child: ChildProcess | undefined;
const prefix = uniquePrefix('start');
afterAll(async () => {
  child?.kill('SIGKILL');
  await dropKeys(prefix);
});

describe('npm start', () => {
  it("serves the README demo: SENT → DELIVERED → READ, an offline phone's OTP expires into one SMS; SIGTERM exits 0", async () => {
    const [port, emulatorPort] = [await freePort(), await freePort()];
    child = spawnService({ PORT: String(port), RBM_EMULATOR_PORT: String(emulatorPort), REDIS_URL: redisUrl(), QUEUE_PREFIX: prefix });
    const warning = lineOf(child, /EMULATOR MODE/);
    await lineOf(child, /rbm-dispatch is up/);
    expect(await warning).toContain('not to Google');

    const base = `http://127.0.0.1:${port}`;
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    expect(await (await fetch(`${base}/readyz`)).json()).toEqual({ status: 'ready', checks: { redis: 'ok', workers: 'ok' } });
    const receiver = await startCallbackReceiver();
    const registered = await fetch(`${base}/v1/callback`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ url: receiver.url }),
    });
    const { secret } = (await registered.json()) as { secret: string };
    const posted = await fetch(`${base}/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ to: '+12223334444', messageTrafficType: 'TRANSACTION', contentMessage: { text: 'Your order has shipped' } }),
    });
    expect(posted.status).toBe(202);
    const { messageId } = (await posted.json()) as { messageId: string };

    // The READ callback goes out after the move to READ.
    await receiver.until(1, changeTo(messageId, 'READ'));
    const status = (await (await fetch(`${base}/v1/messages/${messageId}`)).json()) as {
      state: string;
      timeline: Array<{ state: string }>;
    };
    expect(status.state).toBe('READ');
    expect(status.timeline.map((t) => t.state)).toEqual(['QUEUED', 'SENDING', 'SENT', 'DELIVERED', 'READ']);
    const callbacks = (await receiver.until(4, (r) => r.body.includes(messageId))).map(
      (r) => (new Webhook(secret).verify(r.body, r.headers) as { data: { state: string; at: number } }).data,
    );
    expect(callbacks.sort((a, b) => a.at - b.at).map((c) => c.state)).toEqual(['SENDING', 'SENT', 'DELIVERED', 'READ']);

    const phone = (await (await fetch(`http://127.0.0.1:${emulatorPort}/_emulator/phones/%2B12223334444`)).json()) as {
      arrivals: Array<{ id: string; count: number }>;
    };
    expect(phone.arrivals).toEqual([expect.objectContaining({ id: messageId, count: 1 })]);

    // The README's second demo: a phone that is offline, an OTP with a short TTL and an SMS fallback.
    const emu = `http://127.0.0.1:${emulatorPort}/_emulator`;
    const offline = '+12223335555';
    await fetch(`${emu}/phones/%2B12223335555`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ online: false }),
    });
    const otp = await fetch(`${base}/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        to: offline,
        messageTrafficType: 'AUTHENTICATION',
        ttl: '3s',
        contentMessage: { text: 'Your code is 123456' },
        fallback: { sms: { text: 'Your code is 123456' } },
      }),
    });
    const otpId = ((await otp.json()) as { messageId: string }).messageId;
    await receiver.until(1, changeTo(otpId, 'FALLBACK_SENT'));
    const fellBack = (await (await fetch(`${base}/v1/messages/${otpId}`)).json()) as { state: string; timeline: Array<{ state: string }> };
    expect(fellBack.state).toBe('FALLBACK_SENT');
    // The moves; RBM's TTL event and the local deadline race (on a busy machine either can come first), and the
    // later one is kept in the timeline as a "no change" entry.
    const moves = (fellBack.timeline as Array<{ state: string; detail?: string }>).filter((t) => !t.detail?.startsWith(NO_CHANGE));
    expect(moves.map((t) => t.state)).toEqual(['QUEUED', 'SENDING', 'SENT', 'FALLBACK_QUEUED', 'FALLBACK_SENDING', 'FALLBACK_SENT']);
    expect(((await (await fetch(`${emu}/sms/%2B12223335555`)).json()) as { count: number }).count).toBe(1);

    const exited = new Promise<number | null>((resolve) => child!.once('exit', (code) => resolve(code)));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    child = undefined;
    await receiver.close();
  });
});
