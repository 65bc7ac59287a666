/**
 * `emulator`: the RBM emulator alone, as `npm run emulator` runs it, until
 * SIGINT/SIGTERM. Its key file is kept across restarts: a key already at
 * --key-file for this port is trusted again instead of replaced, so a service
 * pointed at it (GOOGLE_APPLICATION_CREDENTIALS) keeps working.
 */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { Option } from 'commander';
import { startEmulator } from '../../emulator/index.ts';
import type { ServiceAccountKey } from '../../emulator/oauth.ts';
import { intOption, type Register } from '../context.ts';
import { ExitCodes } from '../errors.ts';

export const DEFAULT_KEY_FILE = '.data/emulator-key.json';

export const registerEmulator: Register = (program, run) => {
  program
    .command('emulator')
    .description('run the RBM platform emulator (RBM REST paths, OAuth token endpoint, SMS sink) until Ctrl-C')
    .addOption(
      new Option('--port <port>', 'port to listen on')
        .env('RBM_EMULATOR_PORT')
        .argParser(intOption('--port', 0, 65_535))
        .default(3001),
    )
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--key-file <path>', 'service-account key for the service; reused when it was made for this port', DEFAULT_KEY_FILE)
    .addHelpText('after', '\nPoint a service at it with RBM_ENDPOINT=<url> GOOGLE_APPLICATION_CREDENTIALS=<key file>.')
    .action((opts: { port: number; host: string; keyFile: string }, cmd) =>
      run(cmd, async ({ out, stopSignal }) => {
        const stop = stopSignal();
        const emulator = await startEmulator({ host: opts.host, port: opts.port });
        try {
          const keyFile = resolve(opts.keyFile);
          const existing = await readKey(keyFile);
          // google-auth-library signs for the key's token_uri, which the emulator accepts on any host name of its port.
          const reusable = existing !== undefined && new URL(existing.token_uri).port === new URL(emulator.url).port;
          if (reusable) emulator.state.oauth.trustKey(existing);
          else await emulator.writeKeyFile(keyFile);
          out.result({ url: emulator.url, keyFile, keyReused: reusable }, [
            `RBM emulator listening on ${emulator.url}`,
            `service-account key: ${keyFile}${reusable ? ' (reused)' : ''}`,
            `  RBM_ENDPOINT=${emulator.url} GOOGLE_APPLICATION_CREDENTIALS=${keyFile}`,
          ]);
          if (existing !== undefined && !reusable)
            out.note(`note: the key at ${keyFile} was made for ${existing.token_uri}; replaced with one for this port`);
          await new Promise<void>((done) => (stop.aborted ? done() : stop.addEventListener('abort', () => done(), { once: true })));
          out.note('closing the emulator');
        } finally {
          await emulator.close();
        }
        return ExitCodes.OK;
      }),
    );
};

/** The key at `path` when it is a readable service-account key; anything else is replaced. */
async function readKey(path: string): Promise<ServiceAccountKey | undefined> {
  try {
    const key = JSON.parse(await readFile(path, 'utf8')) as Partial<ServiceAccountKey>;
    if (key.type !== 'service_account' || !key.private_key || !key.private_key_id || !key.client_email || !key.token_uri) return undefined;
    new URL(key.token_uri);
    return key as ServiceAccountKey;
  } catch {
    return undefined;
  }
}
