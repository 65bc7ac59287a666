/**
 * The RBM emulator's REST paths over real HTTP: Google's error shapes and the
 * platform's check order, accepted messages and events, duplicate-ID
 * suppression, revoke, capabilities and the control API.
 */
import { randomUUID } from 'node:crypto';
import { request } from 'undici';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startEmulator, type RunningEmulator } from '../src/emulator/index.ts';

interface Res {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  json: any;
}

async function http(
  emu: RunningEmulator,
  method: 'GET' | 'POST' | 'PUT' | 'DELETE',
  path: string,
  opts: { token?: string; body?: unknown; raw?: string } = {},
): Promise<Res> {
  const headers: Record<string, string> = {};
  if (opts.token !== undefined) headers.authorization = `Bearer ${opts.token}`;
  let body: string | undefined;
  if (opts.raw !== undefined || opts.body !== undefined) {
    headers['content-type'] = 'application/json';
    body = opts.raw ?? JSON.stringify(opts.body);
  }
  const res = await request(`${emu.url}${path}`, { method, headers, body });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, json: text === '' ? undefined : JSON.parse(text) };
}

function expectGoogleError(res: Res, code: number, status: string): void {
  expect(res.status).toBe(code);
  expect(res.json).toEqual({ error: expect.objectContaining({ code, status, message: expect.any(String) }) });
  expect(res.json.error.message.length).toBeGreaterThan(0);
}

const PHONE = '+12223334444';
const NOT_RCS = '+12223334440'; // default rule: ending in 0 means no RCS
const text = (t: string) => ({ contentMessage: { text: t } });
const sendPath = (phone: string, id: string, agent = 'agent-a') => `/v1/phones/${phone}/agentMessages?messageId=${id}&agentId=${agent}`;
const eventPath = (phone: string, id: string, agent = 'agent-a') => `/v1/phones/${phone}/agentEvents?eventId=${id}&agentId=${agent}`;

let emu: RunningEmulator;
let token: string;

beforeAll(async () => {
  emu = await startEmulator();
  // The token endpoint itself is covered in emulator-oauth.test.ts.
  token = emu.state.oauth.issueToken();
});
afterAll(() => emu.close());
beforeEach(() => emu.state.reset());

describe('RBM paths: request checks in platform order', () => {
  it('401 UNAUTHENTICATED without a token or with one it never issued', async () => {
    expectGoogleError(await http(emu, 'POST', sendPath(PHONE, randomUUID()), { body: text('x') }), 401, 'UNAUTHENTICATED');
    const forged = await http(emu, 'POST', sendPath(PHONE, randomUUID()), { token: 'ya29.forged', body: text('x') });
    expectGoogleError(forged, 401, 'UNAUTHENTICATED');
    expect(forged.headers['www-authenticate']).toMatch(/^Bearer/);
    // Auth is checked before the body: a broken body without a token is still a 401.
    expectGoogleError(await http(emu, 'POST', sendPath(PHONE, randomUUID()), { raw: '{nope' }), 401, 'UNAUTHENTICATED');
    expect(emu.state.counters.unauthorized).toBe(3);
    expect(emu.state.counters.accepted).toBe(0);
  });

  it('403 PERMISSION_DENIED with the partner-model text when agentId is missing', async () => {
    const res = await http(emu, 'POST', `/v1/phones/${PHONE}/agentMessages?messageId=${randomUUID()}`, { token, body: text('x') });
    expectGoogleError(res, 403, 'PERMISSION_DENIED');
    expect(res.json.error.message).toMatch(/error looking up the RBM agent/);
    expect(res.json.error.errors[0]).toMatchObject({ domain: 'global', reason: 'forbidden' });
  });

  it('400 INVALID_ARGUMENT for bad IDs, phones and bodies', async () => {
    const bad = [
      sendPath(PHONE, 'not-a-uuid'),
      `/v1/phones/${PHONE}/agentMessages?agentId=agent-a`,
      sendPath('12223334444', randomUUID()),
      sendPath('+0123', randomUUID()),
    ];
    for (const p of bad) expectGoogleError(await http(emu, 'POST', p, { token, body: text('x') }), 400, 'INVALID_ARGUMENT');
    const bodies: { raw?: string; body?: unknown }[] = [
      { raw: '{"contentMessage":' },
      { body: [1, 2] },
      { body: { messageTrafficType: 'TRANSACTION' } },
      { body: { ...text('x'), ttl: '60s', expireTime: new Date(Date.now() + 60_000).toISOString() } },
      { body: { contentMessage: { text: 'x', richCard: {} } } },
    ];
    for (const b of bodies)
      expectGoogleError(await http(emu, 'POST', sendPath(PHONE, randomUUID()), { token, ...b }), 400, 'INVALID_ARGUMENT');
    expectGoogleError(
      await http(emu, 'POST', eventPath(PHONE, randomUUID()), { token, body: { eventType: 'WAVE' } }),
      400,
      'INVALID_ARGUMENT',
    );
    expectGoogleError(await http(emu, 'GET', `/v1/phones/${PHONE}/capabilities?agentId=agent-a`, { token }), 400, 'INVALID_ARGUMENT');
    expect(emu.state.counters.accepted).toBe(0);
  });

  it('404 NOT_FOUND for a phone without RCS, and nothing arrives', async () => {
    const res = await http(emu, 'POST', sendPath(NOT_RCS, randomUUID()), { token, body: text('x') });
    expectGoogleError(res, 404, 'NOT_FOUND');
    expect(res.json.error.message).toBe('The specified phone number cannot be reached by RBM at this time.');
    expectGoogleError(
      await http(emu, 'POST', eventPath(NOT_RCS, randomUUID()), { token, body: { eventType: 'IS_TYPING' } }),
      404,
      'NOT_FOUND',
    );
    expect((await http(emu, 'GET', `/_emulator/phones/${NOT_RCS}`)).json).toMatchObject({ rcs: false, arrivals: [] });
  });
});

describe('RBM paths: accepted calls', () => {
  it('creates an AgentMessage with name, sendTime, echoed content, traffic type and computed expireTime', async () => {
    const id = randomUUID();
    const before = Date.now();
    const body = {
      contentMessage: { text: 'Hello', suggestions: [{ reply: { text: 'Yes', postbackData: 'y' } }] },
      messageTrafficType: 'TRANSACTION',
      ttl: '600s',
    };
    const waited = emu.state.waitForArrival((a) => a.id === id);
    const res = await http(emu, 'POST', sendPath(PHONE, id), { token, body });
    expect(res.status).toBe(200);
    expect(res.json).toEqual({
      name: `phones/${PHONE}/agentMessages/${id}`,
      sendTime: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/),
      contentMessage: body.contentMessage,
      messageTrafficType: 'TRANSACTION',
      expireTime: expect.any(String),
    });
    const ttlMs = Date.parse(res.json.expireTime) - Date.parse(res.json.sendTime);
    expect(ttlMs).toBe(600_000);
    expect(Date.parse(res.json.sendTime)).toBeGreaterThanOrEqual(before - 1);
    const arrival = await waited;
    expect(arrival).toMatchObject({ kind: 'message', agentId: 'agent-a', phone: PHONE, count: 1 });
  });

  it('accepts the phone as %2B as well as a literal +', async () => {
    const id = randomUUID();
    const res = await http(emu, 'POST', sendPath('%2B12223334445', id), { token, body: text('x') });
    expect(res.status).toBe(200);
    expect(res.json.name).toBe(`phones/+12223334445/agentMessages/${id}`);
    expect((await http(emu, 'GET', '/_emulator/phones/%2B12223334445')).json.arrivals).toHaveLength(1);
  });

  it('creates agent events (READ, IS_TYPING)', async () => {
    const id = randomUUID();
    const res = await http(emu, 'POST', eventPath(PHONE, id), {
      token,
      body: { eventType: 'READ', messageId: 'MxIgT-4pWCQu2tH9hMkSTljQ' },
    });
    expect(res.status).toBe(200);
    expect(res.json).toEqual({
      name: `phones/${PHONE}/agentEvents/${id}`,
      eventType: 'READ',
      messageId: 'MxIgT-4pWCQu2tH9hMkSTljQ',
      sendTime: expect.any(String),
    });
    expect((await http(emu, 'POST', eventPath(PHONE, randomUUID()), { token, body: { eventType: 'IS_TYPING' } })).status).toBe(200);
    expect(emu.state.counters).toMatchObject({ eventsAccepted: 2, messagesAccepted: 0, accepted: 2 });
  });

  it('revokes an undelivered message (200 {}), then 404 for delivered or unknown ones', async () => {
    await http(emu, 'PUT', `/_emulator/phones/${PHONE}`, { body: { online: false } });
    const queued = randomUUID();
    expect((await http(emu, 'POST', sendPath(PHONE, queued), { token, body: text('x') })).status).toBe(200);
    const revoke = await http(emu, 'DELETE', `/v1/phones/${PHONE}/agentMessages/${queued}?agentId=agent-a`, { token });
    expect(revoke.status).toBe(200);
    expect(revoke.json).toEqual({});
    const record = await http(emu, 'GET', `/_emulator/messages/${queued}`);
    expect(record.json).toMatchObject({ messageId: queued, phone: PHONE, agentId: 'agent-a', revoked: true, delivered: false });
    expect(emu.state.counters.revoked).toBe(1);

    await http(emu, 'PUT', `/_emulator/phones/${PHONE}`, { body: { online: true } });
    const delivered = randomUUID();
    await http(emu, 'POST', sendPath(PHONE, delivered), { token, body: text('y') });
    expectGoogleError(
      await http(emu, 'DELETE', `/v1/phones/${PHONE}/agentMessages/${delivered}?agentId=agent-a`, { token }),
      404,
      'NOT_FOUND',
    );
    expectGoogleError(
      await http(emu, 'DELETE', `/v1/phones/${PHONE}/agentMessages/${randomUUID()}?agentId=agent-a`, { token }),
      404,
      'NOT_FOUND',
    );
    expect((await http(emu, 'GET', `/_emulator/messages/${randomUUID()}`)).status).toBe(404);
  });

  it('answers capabilities 200 with the feature list, 404 without RCS', async () => {
    const ok = await http(emu, 'GET', `/v1/phones/${PHONE}/capabilities?requestId=${randomUUID()}&agentId=agent-a`, { token });
    expect(ok.status).toBe(200);
    expect(ok.json.features).toEqual(
      expect.arrayContaining(['RICHCARD_STANDALONE', 'RICHCARD_CAROUSEL', 'ACTION_DIAL', 'PDF_IN_RICH_CARDS']),
    );
    expectGoogleError(
      await http(emu, 'GET', `/v1/phones/${NOT_RCS}/capabilities?requestId=${randomUUID()}&agentId=agent-a`, { token }),
      404,
      'NOT_FOUND',
    );
  });

  it('control API overrides a phone both ways', async () => {
    const put = await http(emu, 'PUT', `/_emulator/phones/${NOT_RCS}`, { body: { rcs: true } });
    expect(put.json).toEqual({ e164: NOT_RCS, rcs: true, online: true });
    expect((await http(emu, 'POST', sendPath(NOT_RCS, randomUUID()), { token, body: text('x') })).status).toBe(200);
    await http(emu, 'PUT', `/_emulator/phones/${PHONE}`, { body: { rcs: false } });
    expectGoogleError(await http(emu, 'POST', sendPath(PHONE, randomUUID()), { token, body: text('x') }), 404, 'NOT_FOUND');
    expect((await http(emu, 'PUT', `/_emulator/phones/${PHONE}`, { body: { rcs: 'yes' } })).status).toBe(400);
  });
});

describe('duplicate IDs (one namespace per agent)', () => {
  it("'200' mode: a reused messageId echoes the original and is not delivered again", async () => {
    const id = randomUUID();
    let arrivals = 0;
    const count = (): void => {
      arrivals += 1;
    };
    emu.state.events.on('arrival', count);
    const first = await http(emu, 'POST', sendPath(PHONE, id), { token, body: text('first') });
    const again = await http(emu, 'POST', sendPath(PHONE, id), { token, body: text('second') });
    emu.state.events.off('arrival', count);
    expect(again.status).toBe(200);
    expect(again.json).toEqual(first.json);
    expect(arrivals).toBe(1);
    const phone = (await http(emu, 'GET', `/_emulator/phones/${PHONE}`)).json;
    expect(phone.arrivals).toHaveLength(1);
    expect(phone.arrivals[0]).toMatchObject({ id, count: 2, body: text('first') });
    expect(phone.received).toEqual({ messages: 1, events: 0, duplicates: 1 });
    const counters = (await http(emu, 'GET', '/_emulator/counters')).json;
    expect(counters).toMatchObject({
      messagesAccepted: 1,
      duplicatesSuppressed: 1,
      requests: 2,
      perAgent: { 'agent-a': { accepted: 1, rateLimited: 0 } },
    });
  });

  it("'409' mode: a reused ID answers ALREADY_EXISTS and is still counted once", async () => {
    const strict = await startEmulator({ duplicateResponse: '409' });
    try {
      const t = strict.state.oauth.issueToken();
      const id = randomUUID();
      expect((await http(strict, 'POST', sendPath(PHONE, id), { token: t, body: text('x') })).status).toBe(200);
      expectGoogleError(await http(strict, 'POST', sendPath(PHONE, id), { token: t, body: text('x') }), 409, 'ALREADY_EXISTS');
      expect(strict.state.counters).toMatchObject({ messagesAccepted: 1, duplicatesSuppressed: 1 });
      expect(strict.state.phones.get(PHONE)?.arrivals).toHaveLength(1);
    } finally {
      await strict.close();
    }
  });

  it('a message ID reused as an event ID is suppressed; another agent may use it', async () => {
    const id = randomUUID();
    const msg = await http(emu, 'POST', sendPath(PHONE, id), { token, body: text('x') });
    const evt = await http(emu, 'POST', eventPath(PHONE, id), { token, body: { eventType: 'IS_TYPING' } });
    expect(evt.status).toBe(200);
    expect(evt.json).toEqual(msg.json); // the stored original, a message
    expect(emu.state.counters).toMatchObject({ eventsAccepted: 0, duplicatesSuppressed: 1 });
    const other = await http(emu, 'POST', eventPath(PHONE, id, 'agent-b'), { token, body: { eventType: 'IS_TYPING' } });
    expect(other.json.name).toBe(`phones/${PHONE}/agentEvents/${id}`);
    expect(emu.state.counters).toMatchObject({ eventsAccepted: 1, duplicatesSuppressed: 1 });
  });

  it('an ID refused with 404 is not used up', async () => {
    const id = randomUUID();
    expect((await http(emu, 'POST', sendPath(NOT_RCS, id), { token, body: text('x') })).status).toBe(404);
    await http(emu, 'PUT', `/_emulator/phones/${NOT_RCS}`, { body: { rcs: true } });
    expect((await http(emu, 'POST', sendPath(NOT_RCS, id), { token, body: text('x') })).status).toBe(200);
    expect(emu.state.counters).toMatchObject({ messagesAccepted: 1, duplicatesSuppressed: 0, notReachable: 1 });
  });
});

describe('control API reset', () => {
  it('clears phones and counters but keeps issued tokens', async () => {
    await http(emu, 'POST', sendPath(PHONE, randomUUID()), { token, body: text('x') });
    expect(emu.state.counters.accepted).toBe(1);
    const res = await http(emu, 'POST', '/_emulator/reset', { raw: '' });
    expect(res.status).toBe(200);
    expect((await http(emu, 'GET', '/_emulator/counters')).json).toMatchObject({ accepted: 0, requests: 0, perAgent: {} });
    expect((await http(emu, 'GET', `/_emulator/phones/${PHONE}`)).json.arrivals).toEqual([]);
    expect((await http(emu, 'POST', sendPath(PHONE, randomUUID()), { token, body: text('x') })).status).toBe(200);
  });
});
