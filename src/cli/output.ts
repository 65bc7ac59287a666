/**
 * Where the CLI writes: results on stdout (text, or one JSON document a line
 * with --json), notes and errors on stderr. Every line passes maskPhonesIn
 * on its way out, so no full phone number is ever printed.
 */
import { maskPhonesIn } from '../mask.ts';
import { ApiError, CliError, CliErrorCodes } from './errors.ts';

export interface Streams {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
}

export class Output {
  constructor(
    readonly json: boolean,
    private readonly streams: Streams = process,
  ) {}

  /** A command's result: `data` as JSON with --json, the text lines otherwise. */
  result(data: unknown, lines: readonly string[]): void {
    if (this.json) this.streams.stdout.write(`${maskPhonesIn(JSON.stringify(data))}\n`);
    else for (const line of lines) this.streams.stdout.write(`${maskPhonesIn(line)}\n`);
  }

  /** A note for the person at the terminal (never in --json output). */
  note(line: string): void {
    this.streams.stderr.write(`${maskPhonesIn(line)}\n`);
  }

  /** Whether a progress bar would be seen: a terminal, and no --json. */
  get interactive(): boolean {
    return !this.json && this.streams.stderr.isTTY === true;
  }

  /** Where raw output goes (an export to `-`): not masked, not JSON-wrapped. */
  get stdout(): NodeJS.WritableStream {
    return this.streams.stdout;
  }

  get stderr(): NodeJS.WritableStream {
    return this.streams.stderr;
  }

  error(err: unknown): void {
    const e = err instanceof CliError ? err : undefined;
    if (this.json) {
      const body = {
        error: {
          code: e?.code ?? CliErrorCodes.INTERNAL,
          ...(e instanceof ApiError ? { status: e.status, apiCode: e.apiCode } : {}),
          message: e?.message ?? String((err as Error)?.message ?? err),
          details: e?.details ?? [],
          problemCount: e?.problemCount ?? 0,
        },
      };
      this.streams.stdout.write(`${maskPhonesIn(JSON.stringify(body))}\n`);
      return;
    }
    this.note(`error: ${e?.message ?? (err as Error)?.stack ?? String(err)}`);
    const details = e?.details ?? [];
    const shown = details.slice(0, MAX_SHOWN);
    for (const d of shown) this.note(`  ${d.path ? `${d.path}: ` : ''}${d.problem}`);
    const more = (e?.problemCount ?? details.length) - shown.length;
    if (more > 0)
      this.note(
        `  … and ${more.toLocaleString('en-US')} more${details.length > shown.length ? ` (the first ${details.length} with --json)` : ''}`,
      );
  }
}

/** A 10,000-line file with a bad column would otherwise bury the terminal. */
const MAX_SHOWN = 50;
