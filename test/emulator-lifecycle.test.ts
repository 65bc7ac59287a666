/**
 * The delivery lifecycle of agent messages in the emulator, over real HTTP
 * with a real webhook receiver: delivery delay, offline hold, READ, TTL expiry
 * (revoked or revoke-failed), revoke, delivered-xor-revoked, and reset.
 */
import { randomUUID } from 'node:crypto';
import { request } from 'undici';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  startEmulator,
  startWebhookReceiver,
  type MessageArrival,
  type RunningEmulator,
  type WebhookReceiver,
} from '../src/emulator/index.ts';

const TOKEN = 'client-token-lifecycle';
const PHONE = '+12223334441';
const OTHER = '+12223334442';

let emu: RunningEmulator;
let hook: WebhookReceiver;
let token: string;

async function http(
  method: 'GET' | 'POST' | 'PUT' | 'DELETE',
  path: string,
  body?: unknown,
  auth = false,
): Promise<{ status: number; json: any }> {
  const headers: Record<string, string> = {};
  if (auth) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await request(`${emu.url}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.body.text();
  return { status: res.statusCode, json: text === '' ? undefined : JSON.parse(text) };
}

async function send(phone: string, extra: Record<string, unknown> = {}, id = randomUUID()): Promise<string> {
  const res = await http(
    'POST',
    `/v1/phones/${phone}/agentMessages?messageId=${id}&agentId=agent-a`,
    { contentMessage: { text: 'hi' }, ...extra },
    true,
  );
  expect(res.status).toBe(200);
  return id;
}

const revoke = (phone: string, id: string) => http('DELETE', `/v1/phones/${phone}/agentMessages/${id}?agentId=agent-a`, undefined, true);
const setPhone = async (phone: string, patch: Record<string, unknown>) =>
  expect((await http('PUT', `/_emulator/phones/${phone}`, patch)).status).toBe(200);
const message = (id: string): MessageArrival => emu.state.messages.get(id) as MessageArrival;
/** Resolves at once when it already happened: a zero delay delivers before the test's `await send()` returns. */
function delivered(id: string): Promise<MessageArrival> {
  const m = emu.state.messages.get(id) as MessageArrival | undefined;
  return m?.delivered ? Promise.resolve(m) : emu.state.waitFor('delivered', (d) => d.id === id);
}
/**
 * Sends a message having already started to wait for `event` about it: with a delay of a few ms it can
 * happen before the test sees the 200 (on a busy machine, often), and an event emitted before anyone
 * listened is never seen.
 */
async function sendThen(
  event: 'delivered' | 'read' | 'expired',
  phone: string,
  extra: Record<string, unknown> = {},
): Promise<MessageArrival> {
  const id = randomUUID();
  const happened = emu.state.waitFor(event, (m) => m.id === id);
  await send(phone, extra, id);
  return happened;
}
/** The webhook payloads about one message, by eventType. */
const hookFor = (id: string, eventType: string) =>
  hook.waitFor(1, (r) => r.payload?.messageId === id && r.payload?.eventType === eventType);

beforeAll(async () => {
  hook = await startWebhookReceiver();
  emu = await startEmulator({ webhook: { url: hook.url, clientTokens: { '*': TOKEN } } });
  token = emu.state.oauth.issueToken();
});
afterAll(async () => {
  await emu.close();
  await hook.close();
});
beforeEach(() => {
  emu.state.reset();
  hook.clear();
});

describe('delivery', () => {
  it("deliverBeforeExpiryMs delivers just before the message's own expireTime, however late it was sent", async () => {
    await setPhone(PHONE, { deliverBeforeExpiryMs: 150, deliveryDelayMs: 60_000 });
    const id = await send(PHONE, { ttl: '0.5s' });
    const m = await delivered(id);
    const expireAt = Date.parse(String(m.expireTime));
    expect(m.revoked).toBe(false);
    expect(expireAt - m.deliveredAt!).toBeGreaterThanOrEqual(140);
    expect(expireAt - m.deliveredAt!).toBeLessThanOrEqual(160);
    // Without a TTL the setting does not apply: deliveryDelayMs does (here: not within the test).
    const plain = await send(PHONE);
    expect(message(plain).delivered).toBe(false);
  });

  it('delivers to an online phone deliveryDelayMs after the 200, then sends DELIVERED', async () => {
    await setPhone(PHONE, { deliveryDelayMs: 40 });
    const id = await send(PHONE);
    // Not "undelivered when the 200 came back": on a busy machine the answer can take longer than 40 ms.
    // The emulator's clock says when it delivered, whenever its timer ran.
    const m = await delivered(id);
    expect(m.deliveredAt! - m.receivedAt).toBe(40);
    const [req] = await hookFor(id, 'DELIVERED');
    expect(req!.payload).toEqual({
      senderPhoneNumber: PHONE,
      eventType: 'DELIVERED',
      eventId: expect.stringMatching(/^Mx[\w-]{22}$/),
      messageId: id,
      sendTime: new Date(m.deliveredAt!).toISOString(),
      agentId: 'agent-a@rbm.goog',
    });
    expect(emu.state.counters.delivered).toBe(1);
  });

  it('holds messages for an offline phone and delivers them deliveryDelayMs after it comes online', async () => {
    await setPhone(PHONE, { online: false, deliveryDelayMs: 20 });
    const held = [await send(PHONE), await send(PHONE)];
    // A message to an online phone, delivered later than the held ones would have been: time passed, they stayed.
    await setPhone(OTHER, { deliveryDelayMs: 30 });
    await delivered(await send(OTHER));
    expect(held.map((id) => message(id).delivered)).toEqual([false, false]);
    expect((await http('GET', `/_emulator/phones/${PHONE}`)).json).toMatchObject({ online: false, held: 2, deliveryDelayMs: 20 });

    const both = Promise.all(held.map(delivered));
    const onlineAt = Date.now();
    await setPhone(PHONE, { online: true });
    for (const m of await both) expect(m.deliveredAt!).toBeGreaterThanOrEqual(onlineAt + 20);
    await Promise.all(held.map((id) => hookFor(id, 'DELIVERED')));
    expect((await http('GET', `/_emulator/phones/${PHONE}`)).json.held).toBe(0);
  });

  it('sends READ readDelayMs after delivery with readProbability 1, never with 0', async () => {
    await setPhone(OTHER, { readProbability: 0, readDelayMs: 10 });
    await setPhone(PHONE, { readProbability: 1, readDelayMs: 30 });
    const unread = await send(OTHER);
    await delivered(unread);
    const m = await sendThen('read', PHONE);
    const id = m.id;
    expect(m.readAt! - m.deliveredAt!).toBe(30);
    const [req] = await hookFor(id, 'READ');
    expect(req!.payload).toMatchObject({ senderPhoneNumber: PHONE, eventType: 'READ', messageId: id, agentId: 'agent-a@rbm.goog' });
    // The unread one was delivered first and its READ would have been due 10 ms later, before this one's.
    expect(message(unread).read).toBe(false);
    expect(emu.state.counters.read).toBe(1);
  });

  it('takes emulator-wide defaults from the start option and PUT /_emulator/defaults; a phone value wins until set to null', async () => {
    const other = await startEmulator({ phoneDefaults: { deliveryDelayMs: 25, readProbability: 1 } });
    try {
      const res = await request(`${other.url}/_emulator/phones/${PHONE}`);
      expect(await res.body.json()).toMatchObject({ deliveryDelayMs: 25, readDelayMs: 1000, readProbability: 1 });
    } finally {
      await other.close();
    }
    expect((await http('PUT', '/_emulator/defaults', { readDelayMs: 5, revokeFailedRate: 0.5 })).json).toEqual({
      deliveryDelayMs: 0,
      readDelayMs: 5,
      readProbability: 0,
      revokeFailedRate: 0.5,
    });
    expect((await http('PUT', `/_emulator/phones/${PHONE}`, { readDelayMs: 70 })).json).toEqual({
      e164: PHONE,
      rcs: true,
      online: true,
      readDelayMs: 70,
    });
    expect((await http('GET', `/_emulator/phones/${PHONE}`)).json.readDelayMs).toBe(70);
    await setPhone(PHONE, { readDelayMs: null });
    expect((await http('GET', `/_emulator/phones/${PHONE}`)).json.readDelayMs).toBe(5);
    expect((await http('PUT', '/_emulator/defaults', { readProbability: 2 })).status).toBe(400);
    expect((await http('PUT', `/_emulator/phones/${PHONE}`, { deliveryDelayMs: -1 })).status).toBe(400);
    emu.state.reset();
    expect((await http('GET', '/_emulator/defaults')).json).toEqual({
      deliveryDelayMs: 0,
      readDelayMs: 1000,
      readProbability: 0,
      revokeFailedRate: 0,
    });
  });
});

describe('TTL expiry', () => {
  it('revokes an undelivered message at its expireTime with TTL_EXPIRATION_REVOKED; it is never delivered afterwards', async () => {
    await setPhone(PHONE, { online: false });
    const m = await sendThen('expired', PHONE, { ttl: '0.03s' });
    const id = m.id;
    expect(m).toMatchObject({ ttlEvent: 'TTL_EXPIRATION_REVOKED', revoked: true, delivered: false });
    expect(m.expiredAt).toBe(Date.parse(m.expireTime!));
    const [req] = await hookFor(id, 'TTL_EXPIRATION_REVOKED');
    expect(req!.payload).toEqual({
      phoneNumber: PHONE,
      messageId: id,
      agentId: 'agent-a@rbm.goog',
      eventType: 'TTL_EXPIRATION_REVOKED',
      eventId: expect.stringMatching(/^Mx/),
      sendTime: m.expireTime,
    });
    expect(req!.envelope!.message.attributes.type).toBe('event');

    // Online again: a later message is delivered, the expired one is not.
    await setPhone(PHONE, { online: true });
    await delivered(await send(PHONE));
    expect(message(id).delivered).toBe(false);
    expect(emu.state.counters).toMatchObject({ ttlRevoked: 1, ttlRevokeFailed: 0, delivered: 1 });
    expect(hook.received.filter((r) => r.payload?.messageId === id).map((r) => r.payload!.eventType)).toEqual(['TTL_EXPIRATION_REVOKED']);
  });

  it('expiry beats a slower delivery on an online phone (expireTime from the body)', async () => {
    await setPhone(PHONE, { deliveryDelayMs: 60 });
    const m = await sendThen('expired', PHONE, { expireTime: new Date(Date.now() + 20).toISOString() });
    const id = m.id;
    expect(m.ttlEvent).toBe('TTL_EXPIRATION_REVOKED');
    // A later message with the same delay is delivered after the expired one's delivery was due.
    await delivered(await send(PHONE));
    expect(message(id).delivered).toBe(false);
  });

  it('with revokeFailedRate 1 sends TTL_EXPIRATION_REVOKE_FAILED and still delivers once the phone is online', async () => {
    expect((await http('PUT', '/_emulator/defaults', { revokeFailedRate: 1 })).status).toBe(200);
    await setPhone(PHONE, { online: false });
    const m = await sendThen('expired', PHONE, { ttl: '0.02s' });
    const id = m.id;
    expect(m).toMatchObject({ ttlEvent: 'TTL_EXPIRATION_REVOKE_FAILED', revoked: false, delivered: false });
    await hookFor(id, 'TTL_EXPIRATION_REVOKE_FAILED');
    const done = delivered(id);
    await setPhone(PHONE, { online: true });
    await done;
    await hookFor(id, 'DELIVERED');
    expect(emu.state.counters).toMatchObject({ ttlRevoked: 0, ttlRevokeFailed: 1, delivered: 1 });
  });

  it('ends every message delivered or revoked, never both, when delivery and expiry race', async () => {
    await setPhone(PHONE, { deliveryDelayMs: 20 });
    const total = 40;
    let settled = 0;
    let resolveAll = (): void => undefined;
    const all = new Promise<void>((resolve) => (resolveAll = resolve));
    const on = (m: MessageArrival): void => {
      // A revoke-failed expiry would be followed by a delivery; with the default rate 0 each message settles once.
      if (m.delivered || m.revoked) settled += 1;
      if (settled === total) resolveAll();
    };
    emu.state.events.on('delivered', on).on('expired', on);
    const ids = await Promise.all(Array.from({ length: total }, (_, i) => send(PHONE, { ttl: `0.0${1 + (i % 3)}s` })));
    await all;
    emu.state.events.off('delivered', on).off('expired', on);
    for (const id of ids) expect(message(id).delivered !== message(id).revoked).toBe(true);
    const { delivered: d, ttlRevoked } = emu.state.counters;
    expect(d + ttlRevoked).toBe(ids.length);
    const events = await hook.waitFor(ids.length, (r) => ids.includes(r.payload?.messageId as string));
    for (const r of events) {
      const m = message(r.payload!.messageId as string);
      expect(r.payload!.eventType).toBe(m.delivered ? 'DELIVERED' : 'TTL_EXPIRATION_REVOKED');
    }
  });
});

describe('revoke (DELETE)', () => {
  it('200 {} before delivery (never delivered, no TTL event later), 404 after delivery', async () => {
    await setPhone(PHONE, { deliveryDelayMs: 60_000 });
    // The revoke must come before the TTL: 2 s is room for one local round trip on a busy machine (checked below).
    const pending = await send(PHONE, { ttl: '2s' });
    const res = await revoke(PHONE, pending);
    expect(res).toEqual({ status: 200, json: {} });
    expect(message(pending)).toMatchObject({ revoked: true, delivered: false });
    expect(message(pending).revokedAt!).toBeLessThan(message(pending).expireAtMs!);
    // A second message expiring just after the first does; by its expiry the first one's TTL has passed too,
    // and the revoked message produced no TTL event of its own.
    await sendThen('expired', PHONE, { expireTime: new Date(message(pending).expireAtMs! + 1).toISOString() });
    expect(message(pending).ttlEvent).toBeUndefined();
    expect(emu.state.counters).toMatchObject({ revoked: 1, ttlRevoked: 1 });

    const id = await send(OTHER);
    await delivered(id);
    expect((await revoke(OTHER, id)).status).toBe(404);
  });
});

describe('reset', () => {
  it('clears pending deliveries, READs and expiries: nothing from before it arrives afterwards', async () => {
    // Due 1 s after they arrive: the reset must come first (two local round trips, room for a busy machine; checked below).
    await setPhone(PHONE, { deliveryDelayMs: 1000, readProbability: 1, readDelayMs: 0 });
    const before = [await send(PHONE), await send(PHONE, { ttl: '1s' })];
    expect(before.map((id) => message(id).delivered || message(id).revoked)).toEqual([false, false]);
    emu.state.reset();
    expect(emu.state.scheduler.size).toBe(0);
    // Due after everything from before would have been, so its webhook arriving means their time has passed.
    await setPhone(PHONE, { deliveryDelayMs: 1500 });
    const after = await send(PHONE);
    await hookFor(after, 'DELIVERED');
    expect(hook.received.filter((r) => before.includes(r.payload?.messageId as string))).toEqual([]);
    expect(emu.state.counters).toMatchObject({ delivered: 1, read: 0, ttlRevoked: 0 });
  });

  it('close() leaves no timer behind', async () => {
    const other = await startEmulator({ phoneDefaults: { deliveryDelayMs: 60_000 } });
    const t = other.state.oauth.issueToken();
    const res = await request(`${other.url}/v1/phones/${PHONE}/agentMessages?messageId=${randomUUID()}&agentId=agent-a`, {
      method: 'POST',
      headers: { authorization: `Bearer ${t}`, 'content-type': 'application/json' },
      body: JSON.stringify({ contentMessage: { text: 'x' }, ttl: '600s' }),
    });
    expect(res.statusCode).toBe(200);
    await res.body.dump();
    expect(other.state.scheduler.size).toBe(2);
    await other.close();
    expect(other.state.scheduler.size).toBe(0);
  });
});
