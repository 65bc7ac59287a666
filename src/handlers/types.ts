/**
 * The contract between the shared worker runner and the job handlers.
 * Handlers get an untrusted payload and a context; they return an Outcome or
 * throw, and the runner alone turns a throw into BullMQ calls.
 */

/** The result of one job, kept as the job's return value and in metrics. */
export interface Outcome {
  outcome: string;
  [detail: string]: unknown;
}

export interface HandlerContext {
  jobId: string;
  /** 1 for the first try. Rate-limited tries are not counted. */
  attempt: number;
  maxAttempts: number;
  /** When the job was queued (ms): where a retry horizon counts from. */
  queuedAt?: number;
}

export type Handler = (payload: unknown, ctx: HandlerContext) => Promise<Outcome>;

export interface Logger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  debug(obj: object, msg?: string): void;
}

export function isFinalAttempt(ctx: HandlerContext): boolean {
  return ctx.attempt >= ctx.maxAttempts;
}
