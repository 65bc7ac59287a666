/**
 * What a command's body gets from main(): the global options, its Output,
 * an API client made on first use (and closed after), and a stop signal for
 * the commands that end cleanly on Ctrl-C. Commands return their exit code.
 */
import { InvalidArgumentError, type Command } from 'commander';
import type { ApiClient } from './api-client.ts';
import type { ExitCode } from './errors.ts';
import type { Output } from './output.ts';

export interface Globals {
  url: string;
  apiKey?: string | undefined;
  json: boolean;
}

export interface CommandContext {
  globals: Globals;
  out: Output;
  api(): ApiClient;
  /** Aborted on the first SIGINT or SIGTERM; a second one ends the process at once (exit 130). */
  stopSignal(): AbortSignal;
}

export type CommandBody = (ctx: CommandContext) => Promise<ExitCode>;

/** Runs a command's body with its context; main() keeps the exit code. */
export type Run = (cmd: Command, body: CommandBody) => Promise<void>;

/** A command module: adds its command to the program. */
export type Register = (program: Command, run: Run) => void;

/** commander option parser for whole numbers within bounds. */
export function intOption(name: string, min: number, max: number): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!/^\d+$/.test(value) || n < min || n > max) {
      // commander prints "option '…' argument '…' is invalid." with this reason; main() exits 2.
      throw new InvalidArgumentError(`${name}: expected a whole number from ${min} to ${max}.`);
    }
    return n;
  };
}
