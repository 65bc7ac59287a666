/**
 * RBM Suggestion (spec §2.6): a suggested reply or a suggested action, as chips
 * under a message or buttons on a rich card. Also the http(s) URL field other
 * parts of an AgentMessage share.
 */
import { z } from 'zod';
import { expected, oneOf, rbmEnum, strictObject } from './common.ts';
import { rbmLimits } from './rbm-limits.ts';
import { timestamp, parseTimestampMs } from './rbm-time.ts';

const URL_WHAT = `an http(s) URL of at most ${rbmLimits.urlChars} characters`;
/** The device opens it, so only web URLs; a host is required ("https://" alone is refused). */
export const httpUrl = z
  .string({ error: expected(URL_WHAT) })
  .max(rbmLimits.urlChars)
  .regex(/^https?:\/\/[^\s/?#]+\S*$/i, { error: expected(URL_WHAT) });

const chipText = z.string().min(1).max(rbmLimits.suggestionTextChars);
const postbackData = z.string().min(1).max(rbmLimits.postbackDataChars);

export const suggestedReply = strictObject({ text: chipText, postbackData });

const DIAL = "a phone number of digits, '+', '*' or '#' (E.164 optional, \"1011\" is valid)";
const dialAction = strictObject({
  phoneNumber: z.string({ error: expected(DIAL) }).regex(/^[0-9+*#]+$/, { error: expected(DIAL) }),
});

const latLong = strictObject({
  latitude: z.number().min(-90).max(90),
  longitude: z.number().min(-180).max(180),
});

const viewLocationAction = strictObject({
  latLong: latLong.optional(),
  label: z.string().min(1).optional(),
  query: z.string().min(1).optional(),
}).check((payload) => {
  if (payload.value.latLong !== undefined || payload.value.query !== undefined) return;
  payload.issues.push({ code: 'custom', input: payload.value, path: [], message: 'expected latLong or query, got neither' });
});

const createCalendarEventAction = strictObject({
  startTime: timestamp,
  endTime: timestamp,
  title: z.string().min(1).max(rbmLimits.calendarTitleChars),
  description: z.string().max(rbmLimits.calendarDescriptionChars).optional(),
}).check((payload) => {
  const { startTime, endTime } = payload.value;
  if (parseTimestampMs(endTime) > parseTimestampMs(startTime)) return;
  payload.issues.push({
    code: 'custom',
    input: endTime,
    path: ['endTime'],
    message: `expected a time after startTime ${startTime}, got ${endTime}`,
  });
});

const openUrlAction = strictObject({
  url: httpUrl,
  application: rbmEnum(['BROWSER', 'WEBVIEW']).optional(),
  webviewViewMode: rbmEnum(['FULL', 'HALF', 'TALL']).optional(),
  /** Accessibility description of the webview. */
  description: z.string().optional(),
});

const actionKinds = ['dialAction', 'viewLocationAction', 'createCalendarEventAction', 'openUrlAction', 'shareLocationAction'] as const;

export const suggestedAction = strictObject({
  text: chipText,
  postbackData,
  /** Opened when the device cannot perform the action. */
  fallbackUrl: httpUrl.optional(),
  dialAction: dialAction.optional(),
  viewLocationAction: viewLocationAction.optional(),
  createCalendarEventAction: createCalendarEventAction.optional(),
  openUrlAction: openUrlAction.optional(),
  shareLocationAction: strictObject({}).optional(),
}).check(oneOf(actionKinds));

export const suggestion = strictObject({
  reply: suggestedReply.optional(),
  action: suggestedAction.optional(),
}).check(oneOf(['reply', 'action']));

export type Suggestion = z.output<typeof suggestion>;
