/**
 * Process lifecycle shared by the entry points: run main(), and on SIGINT or
 * SIGTERM run the shutdown steps once, in order, within a time limit; and the
 * common start of the processes that run one part alone.
 */
import { loadConfig, type Config } from '../src/config.ts';
import { DispatchError } from '../src/errors.ts';
import { createLogger, type Logger } from '../src/logger.ts';
import { redisOf } from '../src/queue/local-redis.ts';
import { createService, type Service } from '../src/service.ts';
import type { SmsSettings } from '../src/sms/index.ts';

export type Step = [name: string, stop: () => Promise<unknown>];

export function runProcess(name: string, main: () => Promise<{ log: Logger; steps: Step[]; timeoutMs: number }>): void {
  muteRepeatedWarnings();
  main()
    .then(({ log, steps, timeoutMs }) => {
      let stopping = false;
      const shutdown = async (signal: string) => {
        if (stopping) return;
        stopping = true;
        log.info({ signal }, `${name}: shutting down, finishing jobs in hand`);
        // Closing connections rejects what was still waiting on them (a blocked read, a retry's
        // command after a Redis restart): expected now, and no reason to exit 1 mid-shutdown.
        process.on('unhandledRejection', (err) =>
          log.warn({ err: String((err as Error)?.message ?? err) }, `${name}: a pending call failed while stopping`),
        );
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
      // One line a supervisor shows as it is, with our stable code first when it is one of ours.
      process.stderr.write(`${name}: cannot start: ${err instanceof DispatchError ? `${err.code}: ` : ''}${err.message}\n`);
      process.exit(1);
    });
}

/**
 * Libraries warn once per connection, and a process has a score of them:
 * BullMQ prints "IMPORTANT! Eviction policy is …" for each (11 lines in a
 * dispatch process), ioredis "[WARN] … does not require a password" for each.
 * The eviction line is dropped outright, because the service's Redis check
 * has already logged it once with the URL and the fix; any other warning is
 * printed the first time only.
 */
function muteRepeatedWarnings(): void {
  const warn = console.warn.bind(console);
  const seen = new Set<string>();
  console.warn = (...args: unknown[]) => {
    const first = args[0];
    if (typeof first === 'string') {
      if (first.startsWith('IMPORTANT! Eviction policy is')) return;
      if (seen.has(first)) return;
      if (seen.size < 1000) seen.add(first);
    }
    warn(...args);
  };
}

/**
 * The preamble of every process that runs one part alone (api, dispatch,
 * inbound, sms): config, logger, a real RBM endpoint with its key file (the
 * emulator is for `npm start`), Redis, and the service composed from them.
 */
export async function composeAlone(
  role: string,
  sms?: (config: Config) => SmsSettings,
): Promise<{ config: Readonly<Config>; log: Logger; service: Service }> {
  const config = loadConfig(process.env);
  const log = createLogger(config.logLevel);
  if (config.rbmEndpoint.kind === 'emulator' || !config.credentialsFile) {
    throw new Error(
      `${role} alone needs RBM_ENDPOINT and GOOGLE_APPLICATION_CREDENTIALS (npm start runs everything against the emulator; ` +
        `\`npm run emulator\` prints both for a standalone emulator)`,
    );
  }
  const redis = await redisOf(config);
  const service = await createService(config, {
    redisUrl: redis.url,
    rbm: { baseUrl: config.rbmEndpoint.url, keyFile: config.credentialsFile },
    ...(sms ? { sms: sms(config) } : {}),
    log,
  });
  return { config, log, service };
}
