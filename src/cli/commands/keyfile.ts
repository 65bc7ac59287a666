/**
 * `keyfile`: writes an emulator service-account key without running an
 * emulator. A key is only good with an emulator that trusts it, and an
 * emulator started just to mint one would forget it on exit; so the key is
 * made here for the emulator's URL, and `emulator --key-file` trusts it.
 */
import { mkdir, stat, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { OAuthIssuer } from '../../emulator/oauth.ts';
import type { Register } from '../context.ts';
import { ExitCodes, UsageError } from '../errors.ts';

export const registerKeyfile: Register = (program, run) => {
  program
    .command('keyfile <path>')
    .description('write an emulator service-account key, for `emulator --key-file` to trust')
    .option('--emulator-url <url>', "the URL the emulator will listen on; the key's token_uri is <url>/token", 'http://127.0.0.1:3001')
    .option('--force', 'replace an existing file', false)
    .addHelpText(
      'after',
      `
The key is valid only while an emulator that trusts it runs: start one with
  rbm-dispatch emulator --port <the URL's port> --key-file <path>
which reuses the key instead of writing a new one. Plain \`rbm-dispatch emulator\`
(or \`npm run emulator\`) writes a fresh key to .data/emulator-key.json instead.`,
    )
    .action((path: string, opts: { emulatorUrl: string; force: boolean }, cmd) =>
      run(cmd, async ({ out }) => {
        let url: URL;
        try {
          url = new URL(opts.emulatorUrl);
          if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error('protocol');
        } catch {
          throw new UsageError(`--emulator-url: expected an http(s) URL like http://127.0.0.1:3001, got '${opts.emulatorUrl}'`);
        }
        const file = resolve(path);
        if (
          !opts.force &&
          (await stat(file).then(
            () => true,
            () => false,
          ))
        )
          throw new UsageError(`${file} exists; give --force to replace it`);
        const key = await new OAuthIssuer().createKey(url.origin);
        await mkdir(dirname(file), { recursive: true });
        await writeFile(file, `${JSON.stringify(key, null, 2)}\n`, { mode: 0o600 });
        const port = url.port || (url.protocol === 'https:' ? '443' : '80');
        out.result({ keyFile: file, tokenUri: key.token_uri, clientEmail: key.client_email }, [
          `service-account key: ${file} (token_uri ${key.token_uri})`,
        ]);
        out.note(`warning: valid only while an emulator that trusts it runs: rbm-dispatch emulator --port ${port} --key-file ${file}`);
        return ExitCodes.OK;
      }),
    );
};
