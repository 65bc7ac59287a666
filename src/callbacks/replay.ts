/**
 * Replay: every status change of a message delivered to its callback URL
 * again, rebuilt from its timeline, each with its original webhook-id and
 * body, so a receiver that lost them (or was down past the 24 h of retries)
 * can catch up, and one that has them can drop the repeats by webhook-id.
 */
import type { DeliverCallbackPayload, StatusChange } from '../../jobs/deliver-callback.ts';
import { DispatchError, ErrorCodes } from '../errors.ts';
import { NO_CHANGE, type MessageRef, type MessageStatus, type StatusStore } from '../status/store.ts';
import type { CallbackQueue } from './queue.ts';

export class ReplayError extends DispatchError {
  constructor(
    readonly messageId: string,
    /** The code the API answers with (src/errors.ts). */
    readonly reason: typeof ErrorCodes.NOT_FOUND | typeof ErrorCodes.NO_CALLBACK,
    message: string,
  ) {
    super(ErrorCodes.CALLBACK_REPLAY, message);
    this.name = 'ReplayError';
  }
}

/** The changes a message's callbacks reported: every move of its timeline, none for events that moved nothing. */
export function changesOf(status: MessageStatus): StatusChange[] {
  const changes: StatusChange[] = [];
  let previous = status.timeline[0]?.state ?? 'QUEUED';
  for (const entry of status.timeline.slice(1)) {
    if (entry.detail?.startsWith(NO_CHANGE)) continue;
    changes.push({
      messageId: status.messageId,
      agentId: status.agentId,
      state: entry.state,
      previousState: previous,
      at: entry.at,
      ...(entry.event !== undefined ? { event: entry.event } : {}),
      ...(entry.detail !== undefined ? { detail: entry.detail } : {}),
      ...(entry.error !== undefined ? { error: entry.error } : {}),
      ...(status.batchId !== undefined ? { batchId: status.batchId } : {}),
    });
    previous = entry.state;
  }
  return changes;
}

export interface ReplayDeps {
  status: Pick<StatusStore, 'get' | 'field'>;
  queue: Pick<CallbackQueue, 'enqueue'>;
  now?: () => number;
}

export function createReplay(deps: ReplayDeps) {
  const now = deps.now ?? Date.now;
  return async function replay(ref: MessageRef): Promise<{ messageId: string; replayed: number; url: string }> {
    const { messageId } = ref;
    const status = await deps.status.get(ref);
    if (!status)
      throw new ReplayError(messageId, ErrorCodes.NOT_FOUND, `no message ${messageId} (or it is still queued: nothing to replay yet)`);
    const scope = await deps.status.field(ref, 'cbs');
    if (!status.callbackUrl || !scope)
      throw new ReplayError(messageId, ErrorCodes.NO_CALLBACK, `message ${messageId} has no callback URL: it was sent without one`);
    const replayAt = now();
    const deliveries: DeliverCallbackPayload[] = changesOf(status).map((data) => ({
      url: status.callbackUrl!,
      scope,
      data,
      replay: replayAt,
    }));
    await deps.queue.enqueue(deliveries);
    return { messageId, replayed: deliveries.length, url: status.callbackUrl };
  };
}
