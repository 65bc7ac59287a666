/**
 * Unit tests of the job contracts in jobs/: what each schema refuses and with
 * which path and words, what it accepts unchanged, the time helpers, job IDs,
 * queues, options and priorities. No I/O. The registry's types are pinned in
 * jobs.test-d.ts (type-checked by vitest, never run).
 */
import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import {
  agentMessage,
  checkInputTiming,
  defaultSendEventOptions,
  defaultSendMessageOptions,
  EVENT_PRIORITY,
  expirationMs,
  jobNamesOf,
  jobs,
  outboundQueueName,
  parseTtlMs,
  priorityFor,
  queueName,
  sendEventInput,
  sendEventJobId,
  sendEventPayload,
  sendMessageInput,
  sendMessageJobId,
  sendMessagePayload,
  validate,
  validateBounded,
  validatePayload,
  type AgentMessage,
} from '../jobs/index.ts';

const ID = '2f1e0c7e-4a3b-4c5d-9e8f-0a1b2c3d4e5f';
const NOW = Date.UTC(2026, 3, 5, 12, 0, 0);
const reply = (text = 'Yes', postbackData = 'yes') => ({ reply: { text, postbackData } });
const textMessage = { contentMessage: { text: 'Hello, world!', suggestions: [reply(), reply('No', 'no')] }, ttl: '600s' };
const messageInput = (over: Record<string, unknown> = {}) => ({ to: '+12223334444', ...textMessage, ...over });
const content = (over: Record<string, unknown>) => messageInput({ contentMessage: over });
const payload = (over: Record<string, unknown> = {}) => ({
  messageId: ID,
  agentId: 'agent-a',
  to: '+12223334444',
  message: textMessage,
  enqueuedAt: NOW,
  ...over,
});
const eventPayload = (over: Record<string, unknown> = {}) => ({
  eventId: ID,
  agentId: 'agent-a',
  to: '+12223334444',
  eventType: 'READ',
  messageId: 'MxUserMessage-1',
  enqueuedAt: NOW,
  ...over,
});
const action = (over: Record<string, unknown>) => ({ action: { text: 'Call us', postbackData: 'call', ...over } });
const card = (over: Record<string, unknown> = {}) => ({ title: 'A card', ...over });
const carousel = (cardContents: unknown[], cardWidth = 'MEDIUM') => content({ richCard: { carouselCard: { cardWidth, cardContents } } });
const image = { contentInfo: { fileUrl: 'https://example.com/a.png' } };

/** Ten cards at every limit: ~105 KB of ASCII but ~314 KB of UTF-8 when every character is '€' (3 bytes). */
const bigCarousel = (ch: string) =>
  carousel(
    Array.from({ length: 10 }, () => ({
      title: ch.repeat(200),
      description: ch.repeat(2000),
      suggestions: Array.from({ length: 4 }, () => reply('x', ch.repeat(2048))),
    })),
  );

type Row = [name: string, schema: z.ZodType, value: unknown, path: string, fragment: string];

const invalid: Row[] = [
  ['bad E.164 (no +)', sendMessageInput, messageInput({ to: '12223334444' }), 'to', 'expected an E.164 number like +12223334444'],
  ['bad E.164 (too short)', sendMessagePayload, payload({ to: '+1222' }), 'to', 'E.164'],
  ['missing to', sendMessageInput, { ...textMessage }, 'to', 'required'],
  [
    'no content',
    sendMessageInput,
    content({ suggestions: [reply()] }),
    'contentMessage',
    'exactly one of text, contentInfo, uploadedRbmFile, richCard, got none',
  ],
  [
    'two contents',
    sendMessageInput,
    content({ text: 'hi', uploadedRbmFile: { fileName: 'files/abc' } }),
    'contentMessage',
    'got 2: text, uploadedRbmFile',
  ],
  [
    'text too long (3073)',
    sendMessageInput,
    content({ text: 'a'.repeat(3073) }),
    'contentMessage.text',
    'at most 3072 characters, got 3073',
  ],
  ['empty text', sendMessageInput, content({ text: '' }), 'contentMessage.text', 'at least 1 character, got 0'],
  [
    '12 suggestions',
    sendMessageInput,
    content({ text: 'hi', suggestions: Array.from({ length: 12 }, () => reply()) }),
    'contentMessage.suggestions',
    'at most 11 items, got 12',
  ],
  [
    'suggestion text 26 chars',
    sendMessageInput,
    content({ text: 'hi', suggestions: [reply(), reply(), reply(), reply('x'.repeat(26))] }),
    'contentMessage.suggestions.3.reply.text',
    'at most 25 characters, got 26',
  ],
  [
    'postbackData 2049',
    sendMessageInput,
    content({ text: 'hi', suggestions: [reply('ok', 'p'.repeat(2049))] }),
    'contentMessage.suggestions.0.reply.postbackData',
    'at most 2048 characters, got 2049',
  ],
  [
    'suggestion with reply and action',
    sendMessageInput,
    content({ text: 'hi', suggestions: [{ ...reply(), ...action({ dialAction: { phoneNumber: '+1222' } }) }] }),
    'contentMessage.suggestions.0',
    'got 2: reply, action',
  ],
  [
    'action with no action type',
    sendMessageInput,
    content({ text: 'hi', suggestions: [action({})] }),
    'contentMessage.suggestions.0.action',
    'exactly one of dialAction, viewLocationAction',
  ],
  [
    'dial action with letters',
    sendMessageInput,
    content({ text: 'hi', suggestions: [action({ dialAction: { phoneNumber: 'call-me' } })] }),
    'contentMessage.suggestions.0.action.dialAction.phoneNumber',
    "digits, '+', '*' or '#'",
  ],
  [
    'view location with neither latLong nor query',
    sendMessageInput,
    content({ text: 'hi', suggestions: [action({ viewLocationAction: { label: 'Shop' } })] }),
    'contentMessage.suggestions.0.action.viewLocationAction',
    'latLong or query',
  ],
  [
    'latitude out of range',
    sendMessageInput,
    content({ text: 'hi', suggestions: [action({ viewLocationAction: { latLong: { latitude: 91, longitude: 0 } } })] }),
    'contentMessage.suggestions.0.action.viewLocationAction.latLong.latitude',
    'at most 90, got 91',
  ],
  [
    'calendar event ending before it starts',
    sendMessageInput,
    content({
      text: 'hi',
      suggestions: [
        action({ createCalendarEventAction: { startTime: '2026-05-01T10:00:00Z', endTime: '2026-05-01T11:00:00+02:00', title: 'Visit' } }),
      ],
    }),
    'contentMessage.suggestions.0.action.createCalendarEventAction.endTime',
    'after startTime',
  ],
  [
    'open URL that is not http(s)',
    sendMessageInput,
    content({ text: 'hi', suggestions: [action({ openUrlAction: { url: 'javascript:alert(1)' } })] }),
    'contentMessage.suggestions.0.action.openUrlAction.url',
    'http(s) URL',
  ],
  [
    'carousel with 1 card',
    sendMessageInput,
    carousel([card()]),
    'contentMessage.richCard.carouselCard.cardContents',
    'at least 2 items, got 1',
  ],
  [
    'carousel with 11 cards',
    sendMessageInput,
    carousel(Array.from({ length: 11 }, () => card())),
    'contentMessage.richCard.carouselCard.cardContents',
    'at most 10 items, got 11',
  ],
  [
    'TALL media in a SMALL carousel',
    sendMessageInput,
    carousel([card({ media: { ...image, height: 'TALL' } }), card()], 'SMALL'),
    'contentMessage.richCard.carouselCard.cardContents.0.media.height',
    'SHORT or MEDIUM in a SMALL carousel',
  ],
  [
    'carousel media without height',
    sendMessageInput,
    carousel([card(), card({ media: image })]),
    'contentMessage.richCard.carouselCard.cardContents.1.media.height',
    'required',
  ],
  [
    '5 suggestions on a card',
    sendMessageInput,
    carousel([card({ suggestions: Array.from({ length: 5 }, () => reply()) }), card()]),
    'contentMessage.richCard.carouselCard.cardContents.0.suggestions',
    'at most 4 items, got 5',
  ],
  [
    'card with nothing',
    sendMessageInput,
    content({ richCard: { standaloneCard: { cardOrientation: 'HORIZONTAL', cardContent: {} } } }),
    'contentMessage.richCard.standaloneCard.cardContent',
    'at least one of media, title, description',
  ],
  [
    'vertical card media without height',
    sendMessageInput,
    content({ richCard: { standaloneCard: { cardOrientation: 'VERTICAL', cardContent: card({ media: image }) } } }),
    'contentMessage.richCard.standaloneCard.cardContent.media.height',
    'required',
  ],
  [
    'thumbnail alignment on a vertical card',
    sendMessageInput,
    content({ richCard: { standaloneCard: { cardOrientation: 'VERTICAL', thumbnailImageAlignment: 'LEFT', cardContent: card() } } }),
    'contentMessage.richCard.standaloneCard.thumbnailImageAlignment',
    'only with cardOrientation HORIZONTAL',
  ],
  [
    'UNSPECIFIED card orientation',
    sendMessageInput,
    content({ richCard: { standaloneCard: { cardOrientation: 'CARD_ORIENTATION_UNSPECIFIED', cardContent: card() } } }),
    'contentMessage.richCard.standaloneCard.cardOrientation',
    'never sent',
  ],
  [
    'media with both files',
    sendMessageInput,
    content({
      richCard: {
        standaloneCard: {
          cardOrientation: 'HORIZONTAL',
          cardContent: card({ media: { ...image, uploadedRbmFile: { fileName: 'files/a' } } }),
        },
      },
    }),
    'contentMessage.richCard.standaloneCard.cardContent.media',
    'got 2: uploadedRbmFile, contentInfo',
  ],
  [
    'uploaded file name without files/',
    sendMessageInput,
    content({ uploadedRbmFile: { fileName: 'abc.png' } }),
    'contentMessage.uploadedRbmFile.fileName',
    'files/',
  ],
  [
    'contentInfo URL over 2048',
    sendMessageInput,
    content({ contentInfo: { fileUrl: `https://example.com/${'a'.repeat(2030)}` } }),
    'contentMessage.contentInfo.fileUrl',
    'at most 2048 characters, got "https://example.com/aaaaaaaaaaaaaaaaaaaa"... (2050 characters)',
  ],
  ['deprecated fileName', sendMessageInput, content({ fileName: 'files/abc' }), 'contentMessage.fileName', 'use uploadedRbmFile'],
  [
    'ttl and expireTime both',
    sendMessageInput,
    messageInput({ expireTime: '2026-04-06T00:00:00Z' }),
    '',
    'at most one of ttl, expireTime, got 2',
  ],
  ['ttl over 15 days', sendMessageInput, messageInput({ ttl: '1296001s' }), 'ttl', 'at most 15 days'],
  ['ttl of zero', sendMessageInput, messageInput({ ttl: '0s' }), 'ttl', 'more than 0'],
  ['bad ttl format', sendMessageInput, messageInput({ ttl: '10m' }), 'ttl', 'got "10m"'],
  [
    'bad expireTime',
    sendMessageInput,
    messageInput({ ttl: undefined, expireTime: '2026-02-30T00:00:00Z' }),
    'expireTime',
    'RFC 3339 UTC timestamp',
  ],
  [
    'expireTime with an offset',
    sendMessageInput,
    messageInput({ ttl: undefined, expireTime: '2026-04-06T00:00:00+02:00' }),
    'expireTime',
    'ending in Z',
  ],
  [
    'UNSPECIFIED traffic type',
    sendMessageInput,
    messageInput({ messageTrafficType: 'MESSAGE_TRAFFIC_TYPE_UNSPECIFIED' }),
    'messageTrafficType',
    'UNSPECIFIED values are never sent',
  ],
  [
    'unknown traffic type',
    sendMessageInput,
    messageInput({ messageTrafficType: 'MARKETING' }),
    'messageTrafficType',
    'expected one of AUTHENTICATION, TRANSACTION, PROMOTION, SERVICEREQUEST, ACKNOWLEDGEMENT, got "MARKETING"',
  ],
  ['message over 250 KB', sendMessageInput, bigCarousel('€'), '', 'at most 250000 bytes (250 KB), got 3'],
  [
    'message over 250 KB in a payload',
    sendMessagePayload,
    payload({ message: { contentMessage: bigCarousel('€').contentMessage } }),
    'message',
    '250 KB',
  ],
  ['output-only field name', sendMessageInput, messageInput({ name: 'phones/+12223334444/agentMessages/x' }), 'name', 'output-only'],
  [
    'output-only field sendTime in a payload',
    sendMessagePayload,
    payload({ message: { ...textMessage, sendTime: '2026-04-05T00:00:00Z' } }),
    'message.sendTime',
    'output-only',
  ],
  [
    'unknown key typo',
    sendMessageInput,
    { to: '+12223334444', contentMesage: { text: 'hi' } },
    'contentMesage',
    'unknown field: expected one of contentMessage',
  ],
  ['bad idempotencyKey (empty)', sendMessageInput, messageInput({ idempotencyKey: '' }), 'idempotencyKey', 'printable ASCII'],
  ['non-UUID messageId', sendMessageInput, messageInput({ messageId: 'order-12345' }), 'messageId', 'lowercase UUID'],
  ['uppercase UUID messageId', sendMessagePayload, payload({ messageId: ID.toUpperCase() }), 'messageId', 'lowercase UUID'],
  ["agentId with ':'", sendMessageInput, messageInput({ agentId: 'agent:a' }), 'agentId', 'RBM agent ID'],
  [
    'fallback SMS over 1600',
    sendMessageInput,
    messageInput({ fallback: { sms: { text: 's'.repeat(1601) } } }),
    'fallback.sms.text',
    'at most 1600 characters',
  ],
  ['fractional enqueuedAt', sendMessagePayload, payload({ enqueuedAt: 1.5 }), 'enqueuedAt', 'expected an integer'],
  ['READ without messageId', sendEventPayload, eventPayload({ messageId: undefined }), 'messageId', 'required'],
  [
    'IS_TYPING with messageId',
    sendEventInput,
    { to: '+12223334444', eventType: 'IS_TYPING', messageId: 'MxUserMessage-1' },
    'messageId',
    'expected no messageId for eventType IS_TYPING',
  ],
  [
    'bad eventType',
    sendEventInput,
    { to: '+12223334444', eventType: 'TYPING' },
    'eventType',
    'expected one of READ, IS_TYPING, got "TYPING"',
  ],
  ['event with a non-UUID eventId', sendEventPayload, eventPayload({ eventId: '12345' }), 'eventId', 'lowercase UUID'],
  [
    'event input with an output-only name',
    sendEventInput,
    { to: '+12223334444', eventType: 'IS_TYPING', name: 'x' },
    'name',
    'output-only',
  ],
  ["event agentId with ':'", sendEventPayload, eventPayload({ agentId: 'a:b' }), 'agentId', 'RBM agent ID'],
];

describe('invalid payloads and inputs', () => {
  it.each(invalid)('%s', (_name, schema, value, path, fragment) => {
    const result = validate(schema, value);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    const problem = result.problems.find((p) => p.path === path);
    expect(problem, JSON.stringify(result.problems)).toBeDefined();
    expect(problem?.problem).toContain(fragment);
  });

  it('reports every problem at once', () => {
    const result = validate(sendMessageInput, { to: '2223334444', contentMessage: { text: '' }, ttl: 'soon' });
    expect(result.ok ? [] : result.problems.map((p) => p.path).sort()).toEqual(['contentMessage.text', 'to', 'ttl']);
  });

  it('masks the phone number it echoes', () => {
    const result = validate(sendMessageInput, messageInput({ to: '15556667777' }));
    expect(JSON.stringify(result)).not.toContain('15556667777');
    expect(JSON.stringify(result)).toContain('15556***7777');
  });
});

describe('validateBounded', () => {
  // It reads zod's raw issues (to count without wording): held here to validate()'s answers, so a zod upgrade that changes them shows.
  const many = {
    ...messageInput({ to: 'nope', ttl: 5 }),
    contentMessage: { text: 7, suggestions: Array.from({ length: 6 }, () => ({ reply: { text: 1, postbackData: 2, extra: 3 } })) },
    ...Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`unknown${i}`, i])),
  };

  it.each([...invalid.map((row) => [row[0], row[1], row[2]] as const), ['forty unknown keys and more', sendMessageInput, many] as const])(
    '%s: the same problems as validate()',
    (_name, schema, value) => {
      const full = validate(schema as z.ZodType, value);
      const bounded = validateBounded(schema as z.ZodType, value, Number.POSITIVE_INFINITY);
      expect(full.ok).toBe(false);
      if (full.ok || bounded.ok) throw new Error('expected both to fail');
      expect(bounded.problems).toEqual(full.problems);
      expect(bounded.count).toBe(full.problems.length);
    },
  );

  it('words only the first `room` problems, and counts them all', () => {
    const full = validate(sendMessageInput, many);
    if (full.ok) throw new Error('expected a failure');
    expect(full.problems.length).toBe(61);
    for (const room of [0, 1, 5, 30, 60]) {
      const bounded = validateBounded(sendMessageInput, many, room);
      expect(bounded).toEqual({ ok: false, problems: full.problems.slice(0, room), count: 61 });
    }
  });

  it('gives a valid input back as validate() does', () => {
    const value = messageInput({ agentId: 'agent-a', idempotencyKey: 'k1' });
    expect(validateBounded(sendMessageInput, value, 10)).toEqual(validate(sendMessageInput, value));
    expect(validateBounded(sendMessagePayload, payload(), 0)).toEqual(validate(sendMessagePayload, payload()));
  });
});

describe('checkInputTiming', () => {
  const timing = (expireTime: string) => checkInputTiming({ expireTime }, NOW);

  it('refuses an expireTime in the past', () => {
    expect(timing('2026-04-05T11:59:00Z')).toEqual([
      { path: 'expireTime', problem: expect.stringContaining('expected a time in the future') },
    ]);
  });

  it('refuses an expireTime beyond 15 days', () => {
    expect(timing('2026-04-20T12:00:01Z')).toEqual([{ path: 'expireTime', problem: expect.stringContaining('at most 15 days from now') }]);
  });

  it('accepts a future expireTime up to 15 days, and no expireTime at all', () => {
    expect(timing('2026-04-20T12:00:00Z')).toEqual([]);
    expect(timing('2026-04-05T12:00:10.5Z')).toEqual([]);
    expect(checkInputTiming({ ttl: '600s' } as { expireTime?: string }, NOW)).toEqual([]);
  });

  it('is not part of the payload schema: an old job still validates', () => {
    const old = payload({ message: { contentMessage: { text: 'hi' }, expireTime: '2020-01-01T00:00:00Z' } });
    expect(validate(sendMessagePayload, old).ok).toBe(true);
  });
});

describe('valid payloads and inputs', () => {
  const valid: [string, z.ZodType, unknown][] = [
    [
      'text + suggestions + ttl (input)',
      sendMessageInput,
      messageInput({
        messageTrafficType: 'AUTHENTICATION',
        fallback: { sms: { text: 'Code 123456', from: 'ACME' } },
        idempotencyKey: 'otp 42',
        agentId: 'agent-a',
      }),
    ],
    [
      'text + suggestions + ttl (payload)',
      sendMessagePayload,
      payload({ expireAt: NOW + 600_000, batchId: 'b-1', fallback: { sms: { text: 'hi' } } }),
    ],
    [
      'standalone rich card',
      sendMessageInput,
      content({
        richCard: {
          standaloneCard: {
            cardOrientation: 'HORIZONTAL',
            thumbnailImageAlignment: 'RIGHT',
            cardContent: card({
              description: 'Details',
              media: { uploadedRbmFile: { fileName: 'files/abc', thumbnailName: 'files/abc-thumb' } },
              suggestions: [action({ openUrlAction: { url: 'https://example.com', application: 'WEBVIEW', webviewViewMode: 'TALL' } })],
            }),
          },
        },
        suggestions: [action({ shareLocationAction: {} })],
      }),
    ],
    [
      'carousel of 3',
      sendMessageInput,
      carousel(
        [
          card({ media: { ...image, height: 'MEDIUM' } }),
          card({ media: { ...image, height: 'SHORT' } }),
          card({ description: 'no media' }),
        ],
        'SMALL',
      ),
    ],
    [
      'contentInfo',
      sendMessageInput,
      content({
        contentInfo: { fileUrl: 'https://example.com/video.mp4', thumbnailUrl: 'https://example.com/t.jpg', forceRefresh: false },
      }),
    ],
    [
      'every action kind',
      agentMessage,
      {
        contentMessage: {
          text: 'hi',
          suggestions: [
            action({ dialAction: { phoneNumber: '+1222*#' }, fallbackUrl: 'https://example.com/call' }),
            action({ viewLocationAction: { latLong: { latitude: -90, longitude: 180 }, label: 'Shop' } }),
            action({ viewLocationAction: { query: 'pizza near me' } }),
            action({
              createCalendarEventAction: {
                startTime: '2026-05-01T10:00:00+02:00',
                endTime: '2026-05-01T09:00:01Z',
                title: 'Visit',
                description: '',
              },
            }),
          ],
        },
        expireTime: '2026-04-05T15:01:23.045123456Z',
        messageTrafficType: 'PROMOTION',
      },
    ],
    ['message just under 250 KB in ASCII', sendMessageInput, bigCarousel('a')],
    ['READ', sendEventPayload, eventPayload()],
    ['IS_TYPING', sendEventPayload, eventPayload({ eventType: 'IS_TYPING', messageId: undefined })],
    ['READ input', sendEventInput, { to: '+12223334444', eventType: 'READ', messageId: 'MxUserMessage-1', idempotencyKey: 'read-1' }],
    ['IS_TYPING input', sendEventInput, { to: '+12223334444', agentId: 'agent_b-2', eventType: 'IS_TYPING', eventId: ID }],
  ];

  it.each(valid)('%s parses and round-trips', (_name, schema, value) => {
    const result = validate(schema, value);
    expect(result).toEqual({ ok: true, value: JSON.parse(JSON.stringify(value)) });
  });

  it('accepts any UUID version (v1, v5, v7) in the payload', () => {
    for (const id of [
      '6ba7b810-9dad-11d1-80b4-00c04fd430c8',
      '886313e1-3b8a-5372-9b90-0c9aee199e5d',
      '01890a5d-ac96-774b-bcce-b302099a8057',
    ]) {
      expect(validate(sendMessagePayload, payload({ messageId: id })).ok).toBe(true);
    }
  });

  it('ignores an unknown top-level payload field (a newer producer), keeping the message strict', () => {
    const result = validate(sendMessagePayload, payload({ addedLater: 1 }));
    expect(result).toEqual({ ok: true, value: payload() });
  });

  it('validatePayload picks the schema by job name', () => {
    expect(validatePayload('send-event', eventPayload()).ok).toBe(true);
    expect(validatePayload('send-message', eventPayload()).ok).toBe(false);
  });
});

describe('expiration helpers', () => {
  it('parseTtlMs reads protobuf Durations', () => {
    expect(parseTtlMs('600s')).toBe(600_000);
    expect(parseTtlMs('3.5s')).toBe(3_500);
    expect(parseTtlMs('0.000000001s')).toBeCloseTo(0.000001, 12);
    expect(parseTtlMs('1296000s')).toBe(15 * 24 * 3600 * 1000);
    expect(() => parseTtlMs('10m')).toThrow(RangeError);
  });

  it('expirationMs gives the absolute deadline from ttl or expireTime', () => {
    expect(expirationMs({ ttl: '600s' }, NOW)).toBe(NOW + 600_000);
    expect(expirationMs({ ttl: '0.000000001s' }, NOW)).toBe(NOW + 1);
    expect(expirationMs({ expireTime: '2026-04-05T15:01:23Z' }, NOW)).toBe(Date.UTC(2026, 3, 5, 15, 1, 23));
    expect(expirationMs({ expireTime: '2026-04-05T15:01:23.045123456Z' }, 0)).toBe(Date.UTC(2026, 3, 5, 15, 1, 23, 46));
    expect(expirationMs({ contentMessage: { text: 'hi' } } as AgentMessage, NOW)).toBeUndefined();
  });
});

describe('job IDs, queues, options, priorities', () => {
  const ids = [ID, '12345678-1234-1234-8234-123456789012', '00000000-0000-4000-8000-000000000000'];

  it('job IDs never contain ":" and are never all digits', () => {
    for (const id of ids) {
      const key = { agentId: 'agent-a', messageId: id, eventId: id, data: { messageId: id, state: 'SENT', at: 1 } };
      const jobIds = Object.values(jobs).map((contract) => (contract.jobId as (k: typeof key) => string | undefined)(key));
      const named = jobIds.filter((j) => j !== undefined);
      expect(named).toHaveLength(Object.keys(jobs).length - 1);
      for (const jobId of named) {
        expect(jobId).not.toContain(':');
        expect(jobId).not.toMatch(/^\d+$/);
      }
    }
    expect(sendMessageJobId(ID)).toBe(`msg-${ID}`);
    expect(sendEventJobId(ID)).toBe(`evt-${ID}`);
    // Message IDs live per agent: jobs of shared queues name the agent too.
    const ref = { agentId: 'agent-a', messageId: ID };
    expect(jobs['send-sms'].jobId(ref)).toBe(`sms-agent-a-${ID}`);
    expect(jobs['check-expiry'].jobId(ref)).toBe(`exp-agent-a-${ID}`);
    expect(jobs['send-sms'].jobId({ ...ref, agentId: 'agent-b' })).not.toBe(jobs['send-sms'].jobId(ref));
    // Inbound events are numbered by BullMQ: their webhook was deduplicated at intake.
    expect(jobs['inbound-event'].jobId({ kind: 'userEvent', agentId: 'agent-a', payload: {}, receivedAt: 1 })).toBeUndefined();
  });

  it('registry entries carry their contract', () => {
    expect(jobs['send-message'].jobId({ agentId: 'agent-a', messageId: ID })).toBe(`msg-${ID}`);
    expect(defaultSendMessageOptions).toEqual({ attempts: 8, backoff: { type: 'exponential', delay: 1000, jitter: 0.5 } });
    // Events share their agent's queue with its messages, and its retry policy.
    expect(jobs['send-event'].defaultOptions).toEqual(defaultSendMessageOptions);
    expect(defaultSendEventOptions).toBe(defaultSendMessageOptions);
    expect(outboundQueueName('agent-a')).toBe('rbm-outbound.agent-a');
    expect(jobs['send-message'].queue).toBe('outbound');
    expect(jobs['send-event'].queue).toBe('outbound');
    expect(queueName('outbound', 'agent-a')).toBe('rbm-outbound.agent-a');
    expect(() => queueName('outbound')).toThrow(/agentId is required/);
    expect(jobNamesOf('outbound')).toEqual(['send-message', 'send-event']);
    expect(jobNamesOf('inbound')).toEqual(['inbound-event', 'check-expiry']);
    expect(jobNamesOf('sms')).toEqual(['send-sms']);
    expect(jobNamesOf('callbacks')).toEqual(['deliver-callback']);
  });

  it('priorityFor puts OTPs first and promotions last', () => {
    expect(priorityFor('AUTHENTICATION')).toBe(0);
    expect(EVENT_PRIORITY).toBe(0);
    const order = [
      priorityFor('AUTHENTICATION'),
      priorityFor('ACKNOWLEDGEMENT'),
      priorityFor('TRANSACTION'),
      priorityFor(undefined),
      priorityFor('PROMOTION'),
    ];
    expect([...order].sort((a, b) => a - b)).toEqual(order);
    expect(new Set(order).size).toBe(order.length);
    expect(priorityFor('SERVICEREQUEST')).toBe(priorityFor('TRANSACTION'));
  });
});
