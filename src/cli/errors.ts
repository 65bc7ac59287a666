/**
 * The CLI's exit codes and its errors. Each error has a stable `code` (never
 * reused once retired; in the one catalogue, src/errors.ts) and the exit code
 * a script can rely on; the API's own error code, when there is one, rides
 * along as `apiCode`.
 */
import { DispatchError, ErrorCodes } from '../errors.ts';

/** What a script may test `$?` for; documented in every command's --help. */
export const ExitCodes = {
  OK: 0,
  /** The service refused or failed (4xx, 5xx) or could not be reached. */
  SERVICE: 1,
  /** Bad usage or a bad input file: nothing was sent. */
  USAGE: 2,
  /** status/revoke of a message the service does not know. */
  NOT_FOUND: 3,
  /** revoke refused (409): the message is being sent, was delivered, or is final. */
  REVOKE_NOT_POSSIBLE: 4,
  /** Ctrl-C: the shell's own convention (128 + SIGINT). */
  INTERRUPTED: 130,
} as const;
export type ExitCode = (typeof ExitCodes)[keyof typeof ExitCodes];

export const CliErrorCodes = {
  USAGE: ErrorCodes.CLI_USAGE,
  INPUT_INVALID: ErrorCodes.CLI_INPUT_INVALID,
  API_ERROR: ErrorCodes.CLI_API_ERROR,
  API_UNREACHABLE: ErrorCodes.CLI_API_UNREACHABLE,
  NOT_FOUND: ErrorCodes.CLI_NOT_FOUND,
  REVOKE_NOT_POSSIBLE: ErrorCodes.CLI_REVOKE_NOT_POSSIBLE,
  /** The input file changed between the check and the send. */
  INPUT_CHANGED: ErrorCodes.CLI_INPUT_CHANGED,
  INTERRUPTED: ErrorCodes.CLI_INTERRUPTED,
  /** Anything that is not a CliError (the --json error's code). */
  INTERNAL: ErrorCodes.CLI_INTERNAL,
} as const;
export type CliErrorCode = (typeof CliErrorCodes)[keyof typeof CliErrorCodes];

/** One problem, addressed by a path (an API field path, or `line 12: to` for a file). */
export interface Detail {
  path: string;
  problem: string;
}

/** As the API: an error lists the first problems only, and counts them all. */
export const MAX_DETAILS = 100;

export class CliError extends DispatchError {
  declare readonly code: CliErrorCode;
  readonly exitCode: ExitCode;
  /** The first MAX_DETAILS problems. */
  readonly details: readonly Detail[];
  /** How many problems there were in all (≥ details.length). */
  readonly problemCount: number;
  constructor(
    code: CliErrorCode,
    exitCode: ExitCode,
    message: string,
    options: { details?: readonly Detail[]; problemCount?: number; cause?: unknown } = {},
  ) {
    super(code, message, { cause: options.cause });
    this.name = 'CliError';
    this.exitCode = exitCode;
    const details = options.details ?? [];
    this.details = details.length > MAX_DETAILS ? details.slice(0, MAX_DETAILS) : details;
    this.problemCount = Math.max(options.problemCount ?? details.length, details.length);
  }

  /** The same error with its details re-addressed (the API's item paths → lines of a file). */
  withDetails(details: readonly Detail[]): this {
    const copy = Object.create(Object.getPrototypeOf(this) as object, Object.getOwnPropertyDescriptors(this)) as this;
    Object.defineProperty(copy, 'details', { value: details });
    return copy;
  }
}

export class UsageError extends CliError {
  constructor(message: string, details?: readonly Detail[]) {
    super(CliErrorCodes.USAGE, ExitCodes.USAGE, message, { details });
    this.name = 'UsageError';
  }
}

export class InputError extends CliError {
  constructor(message: string, details: readonly Detail[], problemCount?: number) {
    super(CliErrorCodes.INPUT_INVALID, ExitCodes.USAGE, message, { details, ...(problemCount === undefined ? {} : { problemCount }) });
    this.name = 'InputError';
  }
}

/** An HTTP answer that was not a success; `apiCode` is the API's `error.code`. */
export class ApiError extends CliError {
  readonly status: number;
  readonly apiCode: string;
  readonly apiMessage: string;
  constructor(
    fields: { status: number; apiCode: string; apiMessage: string; details: readonly Detail[]; problemCount?: number },
    code: CliErrorCode = CliErrorCodes.API_ERROR,
    exitCode: ExitCode = ExitCodes.SERVICE,
  ) {
    super(code, exitCode, `the service answered ${fields.status} ${fields.apiCode}: ${fields.apiMessage}`, {
      details: fields.details,
      ...(fields.problemCount === undefined ? {} : { problemCount: fields.problemCount }),
    });
    this.name = 'ApiError';
    this.status = fields.status;
    this.apiCode = fields.apiCode;
    this.apiMessage = fields.apiMessage;
  }

  /** The same answer, re-read by a command that knows what its 404 or 409 means. */
  as(code: CliErrorCode, exitCode: ExitCode): ApiError {
    return new ApiError(this, code, exitCode);
  }
}

/** No HTTP answer at all (refused, reset, timed out): the request may or may not have arrived. */
export class ApiUnreachableError extends CliError {
  constructor(target: string, cause: unknown) {
    const why = (cause as { code?: string; message?: string } | null)?.code ?? (cause as Error | null)?.message ?? String(cause);
    super(CliErrorCodes.API_UNREACHABLE, ExitCodes.SERVICE, `cannot reach the service at ${target}: ${why}`, { cause });
    this.name = 'ApiUnreachableError';
  }
}
