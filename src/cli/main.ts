/**
 * `rbm-dispatch <command>`: builds the commander program from the command
 * modules, runs one command and returns its exit code (see EXIT_CODES_HELP).
 * Nothing here calls process.exit: workers/cli.ts sets process.exitCode.
 *
 * Libraries: commander: the maintained standard for subcommands, option parsing and generated --help.
 *            cli-progress: a small, long-kept progress bar that draws on any stream (ours: stderr).
 *            csv-parse: a streaming RFC 4180 parser (quotes, BOM, CRLF) that reports the line of each bad row.
 */
import { Command, CommanderError, Option } from 'commander';
import { ApiClient } from './api-client.ts';
import { registerAgents } from './commands/agents.ts';
import { registerBatch } from './commands/batch.ts';
import { registerCallbacks } from './commands/callbacks.ts';
import { registerEmulator } from './commands/emulator.ts';
import { registerKeyfile } from './commands/keyfile.ts';
import { registerFailures } from './commands/failures.ts';
import { registerReport } from './commands/report.ts';
import { registerRevoke } from './commands/revoke.ts';
import { registerSend } from './commands/send.ts';
import { registerStatus } from './commands/status.ts';
import type { CommandBody, CommandContext, Globals, Register } from './context.ts';
import { CliError, ExitCodes } from './errors.ts';
import { Output, type Streams } from './output.ts';

const DEFAULT_URL = 'http://127.0.0.1:3000';

export const EXIT_CODES_HELP = `
Exit codes:
    0  success
    1  the service refused or failed (4xx, 5xx) or could not be reached
    2  bad usage or a bad input file (nothing was sent)
    3  not found (status, revoke or callbacks replay of an unknown message)
    4  revoke not possible (409: being sent, delivered, or final)
  130  stopped by Ctrl-C (status --watch; batch, between chunks)

Environment:
  RBM_DISPATCH_URL      default for --url (${DEFAULT_URL})
  RBM_DISPATCH_API_KEY  default for --api-key (prefer it: a flag shows in the process list)
  RBM_DISPATCH_ADMIN_KEY  default for agents --admin-key`;

const COMMANDS: readonly Register[] = [
  registerSend,
  registerBatch,
  registerStatus,
  registerRevoke,
  registerFailures,
  registerReport,
  registerCallbacks,
  registerEmulator,
  registerKeyfile,
  registerAgents,
];

export function buildProgram(run: (cmd: Command, body: CommandBody) => Promise<void>, streams: Streams = process): Command {
  const program = new Command('rbm-dispatch')
    .description('Send RCS Business Messaging messages through an rbm-dispatch service, follow them, run its emulator.')
    .addOption(new Option('--url <url>', 'the rbm-dispatch service').env('RBM_DISPATCH_URL').default(DEFAULT_URL))
    .addOption(new Option('--api-key <key>', 'Bearer API key of the service').env('RBM_DISPATCH_API_KEY'))
    .option('--json', 'machine-readable output on stdout (one JSON document a line)', false)
    // Settings made before the subcommands exist are copied to each of them.
    .exitOverride()
    .configureOutput({ writeOut: (s) => streams.stdout.write(s), writeErr: (s) => streams.stderr.write(s) })
    .showHelpAfterError('(add --help for usage)')
    .addHelpText('afterAll', EXIT_CODES_HELP);
  for (const register of COMMANDS) register(program, run);
  return program;
}

/** Runs the command `argv` names (process.argv shape: node, script, ...args); resolves with the exit code. */
export async function main(argv: readonly string[], streams: Streams = process): Promise<number> {
  let exitCode: number = ExitCodes.OK;
  const program = buildProgram(async (cmd, body) => {
    exitCode = await execute(cmd, body, streams);
  }, streams);
  try {
    await program.parseAsync([...argv]);
  } catch (err) {
    // --help and --version "fail" with exit code 0; every other commander error is bad usage.
    if (err instanceof CommanderError) return err.exitCode === 0 ? ExitCodes.OK : ExitCodes.USAGE;
    throw err;
  }
  return exitCode;
}

async function execute(cmd: Command, body: CommandBody, streams: Streams): Promise<number> {
  const opts = cmd.optsWithGlobals<{ url: string; apiKey?: string; adminKey?: string; json: boolean }>();
  // The admin commands (agents) present the admin key instead of an API key.
  const globals: Globals = { url: opts.url, apiKey: opts.adminKey ?? opts.apiKey, json: opts.json === true };
  const out = new Output(globals.json, streams);
  let client: ApiClient | undefined;
  let stop: { controller: AbortController; handler: () => void } | undefined;
  const ctx: CommandContext = {
    globals,
    out,
    api: () => (client ??= new ApiClient({ url: globals.url, apiKey: globals.apiKey })),
    stopSignal: () => {
      if (!stop) {
        const controller = new AbortController();
        const handler = () => {
          // The second signal means "now": the first one is already being honoured.
          if (controller.signal.aborted) process.exit(ExitCodes.INTERRUPTED);
          controller.abort();
        };
        process.on('SIGINT', handler);
        process.on('SIGTERM', handler);
        stop = { controller, handler };
      }
      return stop.controller.signal;
    },
  };
  try {
    return await body(ctx);
  } catch (err) {
    out.error(err);
    return err instanceof CliError ? err.exitCode : ExitCodes.SERVICE;
  } finally {
    if (stop) {
      process.off('SIGINT', stop.handler);
      process.off('SIGTERM', stop.handler);
    }
    await client?.close().catch(() => undefined);
  }
}
