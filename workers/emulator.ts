/**
 * Process entry: runs the RBM platform emulator alone (for the demo and for a
 * service pointed at it), with a service-account key file whose token_uri is
 * the emulator's own token endpoint.
 */
import { resolve } from 'node:path';
import { loadConfig } from '../src/config.ts';
import { startEmulator } from '../src/emulator/index.ts';
import type { ConfigError } from '../src/errors.ts';

// The one parser of RBM_EMULATOR_PORT (src/config.ts), given only that variable: the rest of the
// environment configures a service, not this process.
let port: number;
try {
  port = loadConfig({ RBM_EMULATOR_PORT: process.env.RBM_EMULATOR_PORT }).emulatorPort;
} catch (err) {
  console.error((err as ConfigError).message);
  process.exit(1);
}
const host = process.env.RBM_EMULATOR_HOST ?? '127.0.0.1';

const emulator = await startEmulator({ host, port });
const keyFile = resolve('.data/emulator-key.json');
await emulator.writeKeyFile(keyFile);
console.log(`RBM emulator listening on ${emulator.url}`);
console.log(`service-account key: ${keyFile} (GOOGLE_APPLICATION_CREDENTIALS=${keyFile})`);

let closing = false;
const shutdown = (signal: string): void => {
  if (closing) return;
  closing = true;
  console.log(`${signal}: closing the emulator`);
  emulator.close().then(
    () => process.exit(0),
    (err: unknown) => {
      console.error('emulator close failed', err);
      process.exit(1);
    },
  );
};
process.on('SIGINT', () => shutdown('SIGINT'));
process.on('SIGTERM', () => shutdown('SIGTERM'));
