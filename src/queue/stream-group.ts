/**
 * What both stream consumers (inbound-stream.ts, one entry at a time;
 * batch-stream.ts, a batch at a time) do alike: make their consumer group,
 * and back off after a failing read without spinning, woken early on close.
 */
import type { Redis } from 'ioredis';
import { reconnectDelay } from './connection.ts';

/** Makes the group from the start of the stream (entries added before any consumer are not skipped); one that exists is fine. */
export async function ensureGroup(redis: Redis, stream: string, group: string): Promise<void> {
  try {
    await redis.xgroup('CREATE', stream, group, '0', 'MKSTREAM');
  } catch (err) {
    if (!String((err as Error).message).includes('BUSYGROUP')) throw err;
  }
}

/** A Redis that came back empty (no persistence, or flushed) has no group: the caller makes it again. */
export function lostGroup(err: unknown): boolean {
  return String((err as Error).message).includes('NOGROUP');
}

/** A capped, jittered wait after the n-th failure in a row, which wake() ends early (a closing consumer). */
export class Backoff {
  private wakeUp: (() => void) | undefined;

  wait(failures: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, reconnectDelay(failures));
      this.wakeUp = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  wake(): void {
    this.wakeUp?.();
  }
}
