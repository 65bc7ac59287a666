/**
 * A removed agent's queued work, when the operator said `queued=fail`: a
 * worker that takes each job of the agent's queue and fails it instead of
 * sending it. A message becomes FAILED with AGENT_REMOVED (its record made
 * from the job when it had none yet) and its job goes to the failed set like
 * any failure, so it is listed under /v1/failures and re-driven with POST
 * /v1/failures:retry once the agent is back (within JOB_KEEP_FAILED_MS). An
 * event job just fails. Nothing is sent.
 *
 * Through BullMQ, not around it: a job only moves to failed while a worker
 * holds its lock, so a job another process is sending right now is left to
 * finish, and a process that dies mid-way leaves each job either failed or
 * still queued (taken again by the next failing worker), never lost.
 * The queue's rate limit goes first: failing is not a call to RBM, and at the
 * agent's rate a backlog would take hours to fail. An agent added back sets
 * its limit again before its worker starts (adaptive-rate.ts).
 */
import { UnrecoverableError, Worker, type Job } from 'bullmq';
import { SEND_MESSAGE, type SendMessagePayload } from '../../jobs/send-message.ts';
import { ErrorCodes } from '../errors.ts';
import type { Logger } from '../handlers/types.ts';
import { throttled } from '../log-throttle.ts';
import { newStatusOf, type StatusPort } from '../status/store.ts';
import type { JobQueues } from './job-queues.ts';
import type { QueueWorker } from './runner.ts';
import { settlesWithin } from './settles-within.ts';

/** Jobs failed at once: each is two Redis calls and no network beyond it. */
const CONCURRENCY = 32;
const CLOSE_WITHIN_MS = 5000;

export interface FailingWorkerDeps {
  queues: JobQueues;
  status: Pick<StatusPort, 'transition'>;
  keepFailedMs: number;
  lockDurationMs: number;
  log: Logger;
}

export function startFailingWorker(deps: FailingWorkerDeps, agentId: string): QueueWorker {
  const queue = deps.queues.queue('outbound', agentId);
  const error = { code: ErrorCodes.AGENT_REMOVED, message: `agent '${agentId}' was removed with queued=fail before this message was sent` };
  const processor = async (job: Job): Promise<never> => {
    if (job.name === SEND_MESSAGE) {
      const p = job.data as SendMessagePayload;
      await deps.status.transition({ agentId, messageId: p.messageId }, 'FAILED', { create: newStatusOf(p), error });
    }
    throw new UnrecoverableError(error.message);
  };
  const worker = new Worker(queue.name, processor, {
    connection: deps.queues.connection,
    prefix: queue.opts.prefix ?? deps.queues.prefix,
    concurrency: CONCURRENCY,
    autorun: false,
    lockDuration: deps.lockDurationMs,
    removeOnFail: { age: Math.ceil(deps.keepFailedMs / 1000) },
  });
  worker.on('error', (err) => throttled(deps.log).error('failing worker error', err, queue.name));
  let closing: Promise<void> | undefined;
  void queue
    .removeGlobalRateLimit()
    .catch((err: Error) => throttled(deps.log).warn('could not lift the rate limit of a removed agent', err, queue.name))
    .then(() => {
      if (!closing) return worker.run();
    })
    .catch((err: Error) => deps.log.error({ queue: queue.name, err: err.message }, 'failing worker stopped'));
  return {
    worker,
    close() {
      closing ??= (async () => {
        if (!(await settlesWithin(worker.close(), CLOSE_WITHIN_MS))) void worker.close(true).catch(() => undefined);
      })();
      return closing;
    },
  };
}
