/**
 * The callback feed's handler: each entry (a change the transition script
 * appended, see callbackFeedKey) becomes a delivery job. The entry is
 * acknowledged only once its job is added, and the job ID comes from the
 * change, so an entry handled twice after a crash still queues one delivery.
 */
import { deliverCallbackPayload } from '../../jobs/deliver-callback.ts';
import { validate } from '../../jobs/common.ts';
import { PayloadError } from '../errors.ts';
import type { Handler, Outcome } from '../handlers/types.ts';
import type { CallbackQueue } from './queue.ts';

/** The consumer group of the callback feed. */
export const CALLBACK_FEED_GROUP = 'callbacks';

export function createFeedHandler(queue: Pick<CallbackQueue, 'enqueue'>): Handler {
  return async (entry): Promise<Outcome> => {
    const checked = validate(deliverCallbackPayload, entry);
    if (!checked.ok) throw new PayloadError('callback feed entry', checked.problems);
    await queue.enqueue([checked.value]);
    return { outcome: 'QUEUED' };
  };
}
