/**
 * The SMS sink: what a Twilio-compatible provider received (so tests count the
 * fallback SMS per number), its idempotency keys, and a failNext script of its
 * own. Also the Twilio wire shapes: error bodies and the Message resource.
 */
import { checkCount, failNextEntry } from './fault-checks.ts';
import { randomBytes } from 'node:crypto';

export const SmsFaultKinds = ['500', '503', '429', '400', 'reset'] as const;
export type SmsFaultKind = (typeof SmsFaultKinds)[number];

export interface SmsFailNextEntry {
  kind: SmsFaultKind;
  count: number;
}

export interface SmsRecord {
  sid: string;
  accountSid: string;
  to: string;
  from: string | null;
  messagingServiceSid: string | null;
  body: string;
  receivedAt: number;
  /** The 201 body, answered again for a repeated idempotency key. */
  resource: Record<string, unknown>;
}

export interface TwilioError {
  code: number;
  message: string;
  more_info: string;
  status: number;
}

export function twilioError(status: number, code: number, message: string): TwilioError {
  return { code, message, more_info: `https://www.twilio.com/docs/errors/${code}`, status };
}

export class SmsSink {
  readonly messages: SmsRecord[] = [];
  readonly perNumber = new Map<string, SmsRecord[]>();
  /** `${accountSid} ${key}` → the record first created with it. */
  private readonly keys = new Map<string, SmsRecord>();
  private failNext: SmsFailNextEntry[] = [];

  setFaults(failNext: SmsFailNextEntry[]): void {
    this.failNext = failNext.map((e) => ({ ...e }));
  }

  faults(): { failNext: SmsFailNextEntry[] } {
    return { failNext: this.failNext.map((e) => ({ ...e })) };
  }

  /** Consumes one scripted fault, if any. */
  pickFault(): SmsFaultKind | undefined {
    const entry = this.failNext[0];
    if (entry === undefined) return undefined;
    entry.count -= 1;
    if (entry.count <= 0) this.failNext.shift();
    return entry.kind;
  }

  byKey(accountSid: string, key: string): SmsRecord | undefined {
    return this.keys.get(`${accountSid} ${key}`);
  }

  record(r: SmsRecord, idempotencyKey: string | undefined): void {
    this.messages.push(r);
    let list = this.perNumber.get(r.to);
    if (list === undefined) {
      list = [];
      this.perNumber.set(r.to, list);
    }
    list.push(r);
    if (idempotencyKey !== undefined) this.keys.set(`${r.accountSid} ${idempotencyKey}`, r);
  }

  clear(): void {
    this.messages.length = 0;
    this.perNumber.clear();
    this.keys.clear();
    this.failNext = [];
  }
}

export const smsView = (r: SmsRecord) => ({
  sid: r.sid,
  to: r.to,
  from: r.from ?? r.messagingServiceSid,
  body: r.body,
  receivedAt: r.receivedAt,
});

/** Validates PUT /_emulator/sms/faults; throws a TypeError naming the bad field. */
export function checkSmsFaults(input: unknown): SmsFailNextEntry[] {
  const raw = input as { failNext?: unknown } | null;
  if (typeof raw !== 'object' || raw === null || !Array.isArray(raw.failNext))
    throw new TypeError('sms faults must be {failNext: [{kind, count}]}');
  return raw.failNext.map((e: unknown, i) => {
    const entry = failNextEntry<SmsFailNextEntry>(e, i, SmsFaultKinds);
    return { kind: entry.kind, count: checkCount(entry.count, i) };
  });
}

export const messageSid = (): string => `SM${randomBytes(16).toString('hex')}`;

/** Twilio's date format: `Thu, 30 Jul 2015 20:12:31 +0000`. */
export const rfc2822 = (ms: number): string => new Date(ms).toUTCString().replace('GMT', '+0000');

// GSM 03.38: the basic set costs one septet, the extension set two; anything else makes the message UCS-2.
const GSM_BASIC = new Set(
  '@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !"#¤%&\'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà',
);
const GSM_EXT = new Set('^{}\\[~]|€\f');

/** Segments as a carrier bills them: 160/153 septets (GSM-7) or 70/67 UTF-16 units (UCS-2). */
export function numSegments(body: string): number {
  let septets = 0;
  for (const ch of body) {
    if (GSM_BASIC.has(ch)) septets += 1;
    else if (GSM_EXT.has(ch)) septets += 2;
    else return body.length <= 70 ? 1 : Math.ceil(body.length / 67);
  }
  return septets <= 160 ? 1 : Math.ceil(septets / 153);
}
