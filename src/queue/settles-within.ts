/**
 * Bounded waits for shutdown. BullMQ's Worker.close() (and a stream consumer
 * waiting for its handlers) can wait forever on a connection that a Redis
 * restart left reconnecting (taskforcesh/bullmq#4656); a stopping process must
 * not. What a worker still held when it was let go has lost its lock by then
 * and runs again elsewhere: every job is safe to run twice.
 */
export async function settlesWithin(work: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([work.then(() => true as const), timedOut]);
  } finally {
    clearTimeout(timer);
  }
}
