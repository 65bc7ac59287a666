/**
 * Process entry: runs the RBM platform emulator alone (for the demo and for a
 * service pointed at it), with a service-account key file whose token_uri is
 * the emulator's own token endpoint.
 */
import { resolve } from 'node:path';
import { startEmulator } from '../src/emulator/index.ts';

const port = Number(process.env.RBM_EMULATOR_PORT ?? 3001);
const host = process.env.RBM_EMULATOR_HOST ?? '127.0.0.1';
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`RBM_EMULATOR_PORT: expected a port number 0-65535, got ${JSON.stringify(process.env.RBM_EMULATOR_PORT)}`);
  process.exit(1);
}

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
