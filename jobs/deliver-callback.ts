/**
 * The deliver-callback job: one status change of one message, POSTed to the
 * producer's callback URL and signed per Standard Webhooks. Its webhook ID
 * comes from the change itself (message, state, time), so every retry and
 * every replay of one change carries the same ID and a receiver can dedupe.
 */
import { z } from 'zod';
import { callbackUrl, epochMs, uuid, type JobContract, type JobDefaults } from './common.ts';

export const DELIVER_CALLBACK = 'deliver-callback';
/** The `type` of every callback body. */
export const STATUS_CHANGED = 'message.status_changed';

/** What a callback says: the `data` of its body. Built by the status store's Lua (src/status/lua/transition.lua), so kept flat. */
const changeSchema = z.object({
  messageId: uuid,
  agentId: z.string(),
  state: z.string().min(1),
  previousState: z.string().min(1),
  at: epochMs,
  event: z.string().optional(),
  detail: z.string().optional(),
  error: z.object({ code: z.string(), message: z.string() }).optional(),
  batchId: z.string().optional(),
});
export type StatusChange = z.output<typeof changeSchema>;

const payloadSchema = z.object({
  url: callbackUrl,
  /** Whose secret signs it: an API key's scope, or 'default' (see src/callbacks/secrets.ts). */
  scope: z.string().min(1).max(64),
  data: changeSchema,
  /** Set on a replay: the replay's own job ID, so it never collides with the original delivery. */
  replay: z.number().int().optional(),
});

export const deliverCallbackPayload = z.compile(payloadSchema);
export type DeliverCallbackPayload = z.output<typeof deliverCallbackPayload>;

/** The Standard Webhooks `webhook-id` of one change: the same on every retry and replay. */
export function callbackWebhookId(change: Pick<StatusChange, 'messageId' | 'state' | 'at'>): string {
  return `${change.messageId}-${change.state}-${change.at}`;
}

/** One job per change; a replay gets its own. BullMQ job IDs may not contain ':'. */
export function deliverCallbackJobId(webhookId: string, replay?: number): string {
  return replay === undefined ? `cb-${webhookId}` : `cbr-${webhookId}-${replay}`;
}

/**
 * The callback worker's own schedule (src/callbacks/schedule.ts); the service
 * sets the attempts from CALLBACK_RETRY_* (src/queue/job-options.ts).
 */
export const defaultDeliverCallbackOptions = {
  attempts: 33,
  backoff: { type: 'callback-schedule', delay: 5000 },
} as const satisfies JobDefaults;

/** A delivery's job is named by its change (and replay): see callbackWebhookId. */
export type DeliverCallbackKey = { data: Pick<StatusChange, 'messageId' | 'state' | 'at'>; replay?: number | undefined };

export const deliverCallbackJob = {
  name: DELIVER_CALLBACK,
  queue: 'callbacks',
  schema: deliverCallbackPayload,
  jobId: (key: DeliverCallbackKey) => deliverCallbackJobId(callbackWebhookId(key.data), key.replay),
  defaultOptions: defaultDeliverCallbackOptions,
} as const satisfies JobContract<typeof DELIVER_CALLBACK, DeliverCallbackPayload, DeliverCallbackKey>;
