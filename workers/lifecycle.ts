/**
 * Process lifecycle shared by the entry points: run main(), and on SIGINT or
 * SIGTERM run the shutdown steps once, in order, within a time limit.
 */
import type { Logger } from '../src/logger.ts';

export type Step = [name: string, stop: () => Promise<unknown>];

export function runProcess(name: string, main: () => Promise<{ log: Logger; steps: Step[]; timeoutMs: number }>): void {
  main()
    .then(({ log, steps, timeoutMs }) => {
      let stopping = false;
      const shutdown = async (signal: string) => {
        if (stopping) return;
        stopping = true;
        log.info({ signal }, `${name}: shutting down, finishing jobs in hand`);
        const timer = setTimeout(() => {
          log.error({ timeoutMs }, `${name}: shutdown took too long, exiting`);
          process.exit(1);
        }, timeoutMs);
        timer.unref();
        for (const [step, stop] of steps) {
          await stop().catch((err: Error) => log.error({ step, err: err.message }, 'shutdown step failed'));
        }
        log.info(`${name}: stopped`);
        process.exit(0);
      };
      process.on('SIGINT', () => void shutdown('SIGINT'));
      process.on('SIGTERM', () => void shutdown('SIGTERM'));
    })
    .catch((err: Error) => {
      process.stderr.write(`${name}: cannot start: ${err.message}\n`);
      process.exit(1);
    });
}
