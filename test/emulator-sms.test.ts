/**
 * The emulator's Twilio-compatible SMS sink over real HTTP: the Message
 * resource, Basic auth, Twilio's error codes, idempotency keys, its own fault
 * script, and the control routes tests count SMS with.
 */
import { request } from 'undici';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startEmulator, type RunningEmulator } from '../src/emulator/index.ts';

const SID = 'AC0123456789abcdef0123456789abcdef';
const AUTH = `Basic ${Buffer.from(`${SID}:secret-token`).toString('base64')}`;
const TO = '+12223334444';

let emu: RunningEmulator;

async function sms(
  form: Record<string, string>,
  opts: { auth?: string | null; account?: string; headers?: Record<string, string> } = {},
): Promise<{ status: number; json: any }> {
  const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded', ...opts.headers };
  const auth = opts.auth === undefined ? AUTH : opts.auth;
  if (auth !== null) headers.authorization = auth;
  const res = await request(`${emu.url}/2010-04-01/Accounts/${opts.account ?? SID}/Messages.json`, {
    method: 'POST',
    headers,
    body: new URLSearchParams(form).toString(),
  });
  return { status: res.statusCode, json: await res.body.json() };
}

async function control(method: 'GET' | 'PUT', path: string, body?: unknown): Promise<{ status: number; json: any }> {
  const res = await request(`${emu.url}/_emulator${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.statusCode, json: await res.body.json() };
}

const twilioError = (code: number, status: number) => ({
  code,
  status,
  message: expect.any(String),
  more_info: `https://www.twilio.com/docs/errors/${code}`,
});

beforeAll(async () => {
  emu = await startEmulator();
});
afterAll(() => emu.close());
beforeEach(() => emu.state.reset());

describe('POST /2010-04-01/Accounts/:sid/Messages.json', () => {
  it('answers 201 with a Twilio Message resource and records the SMS', async () => {
    const seen = emu.state.waitFor('sms');
    const res = await sms({ To: TO, From: '+15005550006', Body: 'Your code is 123456' });
    expect(res.status).toBe(201);
    expect(res.json).toMatchObject({
      sid: expect.stringMatching(/^SM[0-9a-f]{32}$/),
      account_sid: SID,
      to: TO,
      from: '+15005550006',
      body: 'Your code is 123456',
      status: 'queued',
      num_segments: '1',
      direction: 'outbound-api',
      date_created: expect.stringMatching(/^\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d \+0000$/),
      uri: `/2010-04-01/Accounts/${SID}/Messages/${res.json.sid}.json`,
    });
    expect((await seen).sid).toBe(res.json.sid);
    const list = (await control('GET', '/sms')).json;
    expect(list).toEqual({
      messages: [{ sid: res.json.sid, to: TO, from: '+15005550006', body: 'Your code is 123456', receivedAt: expect.any(Number) }],
      perNumber: { [TO]: 1 },
    });
    expect(emu.state.counters.smsReceived).toBe(1);
  });

  it('counts segments as a carrier does (GSM-7 160/153, UCS-2 70/67) and accepts a MessagingServiceSid instead of From', async () => {
    const long = await sms({ To: TO, MessagingServiceSid: 'MG0123', Body: 'x'.repeat(161) });
    expect(long.json).toMatchObject({ num_segments: '2', from: null, messaging_service_sid: 'MG0123' });
    expect((await sms({ To: TO, From: '+15005550006', Body: 'é'.repeat(160) })).json.num_segments).toBe('1');
    expect((await sms({ To: TO, From: '+15005550006', Body: 'ж'.repeat(71) })).json.num_segments).toBe('2');
    const mine = (await control('GET', `/sms/${encodeURIComponent(TO)}`)).json;
    expect(mine).toMatchObject({ e164: TO, count: 3 });
    expect(mine.messages[0].from).toBe('MG0123');
  });

  it('401 code 20003 without Basic auth, for another account, or with an empty token', async () => {
    const wrongUser = `Basic ${Buffer.from('ACother:secret').toString('base64')}`;
    const emptyToken = `Basic ${Buffer.from(`${SID}:`).toString('base64')}`;
    for (const auth of [null, wrongUser, emptyToken, 'Bearer x']) {
      const res = await sms({ To: TO, From: '+15005550006', Body: 'x' }, { auth });
      expect(res.status).toBe(401);
      expect(res.json).toEqual({
        code: 20003,
        message: 'Authenticate',
        more_info: 'https://www.twilio.com/docs/errors/20003',
        status: 401,
      });
    }
    expect(emu.state.counters.smsReceived).toBe(0);
  });

  it('400 with Twilio codes for a bad To (masked), a missing Body or a missing sender', async () => {
    const bad = await sms({ To: '12223334444', From: '+15005550006', Body: 'x' });
    expect(bad.status).toBe(400);
    expect(bad.json).toEqual({ ...twilioError(21211, 400), message: "The 'To' number 12223***4444 is not a valid phone number." });
    expect((await sms({ To: TO, From: '+15005550006' })).json).toEqual(twilioError(21602, 400));
    expect((await sms({ To: TO, Body: 'x' })).json).toEqual(twilioError(21603, 400));
    expect((await control('GET', '/sms')).json).toEqual({ messages: [], perNumber: {} });
  });

  it('answers a repeated idempotency key with the original message, recorded once', async () => {
    const form = { To: TO, From: '+15005550006', Body: 'once' };
    const first = await sms(form, { headers: { 'Idempotency-Key': 'fallback-1' } });
    const again = await sms({ ...form, Body: 'changed' }, { headers: { 'Idempotency-Key': 'fallback-1' } });
    expect(again).toEqual(first);
    const twilioHeader = await sms(form, { headers: { 'I-Twilio-Idempotency-Token': 'fallback-2' } });
    expect((await sms(form, { headers: { 'I-Twilio-Idempotency-Token': 'fallback-2' } })).json.sid).toBe(twilioHeader.json.sid);
    expect(twilioHeader.json.sid).not.toBe(first.json.sid);
    expect((await control('GET', `/sms/${encodeURIComponent(TO)}`)).json.count).toBe(2);
    expect(emu.state.counters).toMatchObject({ smsReceived: 2, smsDuplicates: 2 });
  });
});

describe('SMS faults', () => {
  it('runs its own failNext script: 503, 429 (20429), reset, 500, 400, then success', async () => {
    const put = await control('PUT', '/sms/faults', {
      failNext: [
        { kind: '503', count: 1 },
        { kind: '429', count: 1 },
        { kind: 'reset', count: 1 },
        { kind: '500', count: 1 },
        { kind: '400', count: 1 },
      ],
    });
    expect(put.status).toBe(200);
    const form = { To: TO, From: '+15005550006', Body: 'x' };
    expect((await sms(form)).json).toEqual(twilioError(20503, 503));
    expect((await sms(form)).json).toEqual(twilioError(20429, 429));
    await expect(sms(form)).rejects.toThrow();
    expect((await sms(form)).json).toEqual(twilioError(20500, 500));
    expect((await sms(form)).status).toBe(400);
    expect((await sms(form)).status).toBe(201);
    expect(emu.state.counters.smsReceived).toBe(1);
    expect((await control('GET', '/sms/faults')).json).toEqual({ failNext: [] });
    expect((await control('PUT', '/sms/faults', { failNext: [{ kind: '418', count: 1 }] })).status).toBe(400);
    // RBM faults are a separate script: they do not touch the sink.
    expect((await control('GET', '/faults')).json.failNext).toEqual([]);
  });

  it('reset clears messages, idempotency keys and faults', async () => {
    await sms({ To: TO, From: '+15005550006', Body: 'x' }, { headers: { 'Idempotency-Key': 'k' } });
    await control('PUT', '/sms/faults', { failNext: [{ kind: '500', count: 5 }] });
    emu.state.reset();
    expect((await control('GET', '/sms')).json).toEqual({ messages: [], perNumber: {} });
    expect((await sms({ To: TO, From: '+15005550006', Body: 'x' }, { headers: { 'Idempotency-Key': 'k' } })).status).toBe(201);
    expect(emu.state.counters).toMatchObject({ smsReceived: 1, smsDuplicates: 0 });
  });
});
