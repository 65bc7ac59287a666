/**
 * Shared pieces of the job contracts: field schemas several jobs reuse, the
 * Problem shape every validation failure is reported in, and validate().
 * Imports only zod: producers and workers both load it.
 */
import { z } from 'zod';
import type { QueueKind } from './queues.ts';

/** One problem with an input, addressed by its path ("contentMessage.suggestions.3.reply.text"). */
export type Problem = { path: string; problem: string };

export type Validation<T> = { ok: true; value: T } | { ok: false; problems: Problem[] };

/** BullMQ options a job contract defaults to; the config overrides some in one place (src/queue/job-options.ts). */
export type JobDefaults = {
  readonly attempts: number;
  /** BullMQ's own types, or a named schedule the queue's worker implements (see src/queue/workers.ts). */
  readonly backoff: {
    readonly type: 'exponential' | 'fixed' | 'inbound-schedule' | 'callback-schedule';
    readonly delay: number;
    readonly jitter?: number;
  };
};

/**
 * What each jobs/<name>.ts exports as its contract; jobs/index.ts collects
 * them. `K` is what the job ID is made of: the payload, or for a lookup just
 * those fields (an outbound job's key names its agent, whose queue it is in).
 */
export type JobContract<N extends string, P, K = P> = {
  readonly name: N;
  readonly queue: QueueKind;
  readonly schema: z.ZodType<P>;
  /** IDs live in their agent's namespace: a job of a shared queue names the agent too. Undefined: BullMQ numbers it. */
  readonly jobId: (key: K) => string | undefined;
  readonly defaultOptions: JobDefaults;
};

// ---- describing what came ---------------------------------------------------

/** A short, log-safe rendering of a bad value for "got ..." (long strings are cut). */
export function show(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (typeof value === 'string') {
    return value.length > 40 ? `${JSON.stringify(value.slice(0, 40))}... (${value.length} characters)` : JSON.stringify(value);
  }
  if (Array.isArray(value)) return `an array of ${value.length}`;
  if (typeof value === 'object') return 'an object';
  return `${typeof value} ${String(value)}`;
}

/** Phone numbers end up in logs through problems: mask the middle as DESIGN.md asks (+1222***4444). */
function showPhone(value: unknown): string {
  if (typeof value !== 'string' || value.length <= 8) return show(value);
  return JSON.stringify(`${value.slice(0, 5)}***${value.slice(-4)}`);
}

type RawIssue = z.core.$ZodRawIssue;

/** A schema-level error map: "expected <what>, got <value>", or "required: ..." when the field is missing. */
export function expected(what: string, render: (v: unknown) => string = show): (iss: { readonly input?: unknown }) => string {
  return (iss) => (iss.input === undefined ? `required: expected ${what}` : `expected ${what}, got ${render(iss.input)}`);
}

const UNITS: Record<string, string> = { string: 'characters', array: 'items', set: 'items', file: 'bytes' };

/** "1 character", "31 characters". */
function count(n: number | bigint, unit: string): string {
  return `${n} ${Number(n) === 1 ? unit.replace(/s$/, '') : unit}`;
}

function sizeOf(input: unknown): string {
  if (typeof input === 'string' || Array.isArray(input)) return String(input.length);
  if (typeof input === 'number') return String(input);
  return show(input);
}

/** "expected at most 3 items, got 5", or for a number "expected a value at least 1, got 0". */
function describeBound(origin: string, bound: string, limit: number | bigint, input: unknown): string {
  const unit = UNITS[origin];
  return unit
    ? `expected ${bound} ${count(limit, unit)}, got ${sizeOf(input)}`
    : `expected a value ${bound} ${limit}, got ${sizeOf(input)}`;
}

/** Turns zod's issues into "expected X, got Y" sentences; used for every parse through validate(). */
export function describeIssue(iss: RawIssue): string | undefined {
  switch (iss.code) {
    case 'invalid_type': {
      const what = iss.expected === 'int' ? 'an integer' : /^[aeiou]/.test(iss.expected) ? `an ${iss.expected}` : `a ${iss.expected}`;
      return iss.input === undefined ? `required: expected ${what}` : `expected ${what}, got ${show(iss.input)}`;
    }
    case 'too_big':
      return describeBound(iss.origin, iss.inclusive ? 'at most' : 'less than', iss.maximum, iss.input);
    case 'too_small':
      return describeBound(iss.origin, iss.inclusive ? 'at least' : 'more than', iss.minimum, iss.input);
    case 'invalid_value':
      return `expected one of ${iss.values.map((v) => String(v)).join(', ')}, got ${show(iss.input)}`;
    case 'invalid_format':
      return `expected ${iss.format === 'regex' ? `to match ${iss.pattern ?? 'the pattern'}` : `a ${iss.format}`}, got ${show(iss.input)}`;
    default:
      return undefined;
  }
}

/** Parse options for every validation: our wording, issues without inputs (they may hold phone numbers). */
export const parseContext = { error: describeIssue } as const;

/** One Problem per issue; an unknown-keys issue becomes one Problem per key, at that key's path. */
export function toProblems(error: Pick<z.core.$ZodError, 'issues'>): Problem[] {
  const problems: Problem[] = [];
  for (const issue of error.issues) {
    const path = issue.path.map((p) => String(p)).join('.');
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) problems.push({ path: path ? `${path}.${key}` : key, problem: issue.message });
    } else {
      problems.push({ path, problem: issue.message });
    }
  }
  return problems;
}

/** Validates an unknown value: the typed value, or every problem at once. */
export function validate<T>(schema: z.ZodType<T>, value: unknown): Validation<T> {
  const result = schema.safeParse(value, parseContext);
  return result.success ? { ok: true, value: result.data } : { ok: false, problems: toProblems(result.error) };
}

/** A failure of validateBounded: the first problems in full, and how many there were in all. */
export type BoundedValidation<T> = { ok: true; value: T } | { ok: false; problems: Problem[]; count: number };

/**
 * validate() for callers that report at most `room` problems: a batch of
 * 10,000 bad items holds ~400,000, and wording each (zod's finalizeIssue: the
 * error maps, a copy per issue, then an Error) is two thirds of a failing
 * parse. So the raw issues are counted and only the first `room` are worded;
 * the count is exact, the problems read exactly as validate()'s.
 * Uses zod's parse step (`_zod.run`, typed in zod/v4/core for libraries
 * building on it); test/jobs.test.ts holds it to validate()'s answers.
 */
export function validateBounded<T>(schema: z.ZodType<T>, value: unknown, room: number): BoundedValidation<T> {
  const ctx = { ...parseContext, async: false };
  const result = schema._zod.run({ value, issues: [] }, ctx);
  // Our schemas have no async refinements; one would need safeParseAsync.
  if (result instanceof Promise) throw new Error('validateBounded: the schema is async');
  if (result.issues.length === 0) return { ok: true, value: result.value as T };
  const problems: Problem[] = [];
  let count = 0;
  for (const raw of result.issues) {
    const n = raw.code === 'unrecognized_keys' ? raw.keys.length : 1;
    if (problems.length < room) {
      const worded = toProblems({ issues: [z.core.util.finalizeIssue(raw, ctx, z.core.config())] });
      problems.push(...worded.slice(0, room - problems.length));
    }
    count += n;
  }
  return { ok: false, problems, count };
}

// ---- object helpers -----------------------------------------------------------

/**
 * A strict object (unknown keys are problems, so typos surface) whose `rejected`
 * keys fail with a message of their own: output-only and deprecated RBM fields.
 * The rejected keys show in the type as `?: undefined`, which is what they are.
 */
export function strictObject<S extends z.core.$ZodLooseShape, R extends string = never>(
  shape: S,
  rejected: Readonly<Record<R, string>> = {} as Record<R, string>,
) {
  const known = Object.keys(shape).join(', ');
  const rejectedShape = {} as { [K in R]: z.ZodOptional<z.ZodNever> };
  for (const key of Object.keys(rejected) as R[]) {
    rejectedShape[key] = z.never({ error: rejected[key] }).optional();
  }
  return z.strictObject(
    { ...shape, ...rejectedShape },
    { error: (iss) => (iss.code === 'unrecognized_keys' ? `unknown field: expected one of ${known}` : undefined) },
  );
}

function present(value: Record<string, unknown>, keys: readonly string[]): string[] {
  return keys.filter((k) => value[k] !== undefined);
}

/** A check for RBM's `oneof` unions: exactly one of `keys` is set (or at most one, if `optional`). */
export function oneOf<T extends object>(keys: readonly (keyof T & string)[], optional = false): z.core.CheckFn<T> {
  const list = keys.join(', ');
  return (payload) => {
    const set = present(payload.value as Record<string, unknown>, keys);
    if (set.length === 1 || (optional && set.length === 0)) return;
    payload.issues.push({
      code: 'custom',
      input: payload.value,
      path: [],
      message:
        set.length === 0
          ? `expected exactly one of ${list}, got none`
          : `expected ${optional ? 'at most' : 'exactly'} one of ${list}, got ${set.length}: ${set.join(', ')}`,
    });
  };
}

// ---- shared fields ------------------------------------------------------------------

const E164 = 'an E.164 number like +12223334444';
/** E.164 with the leading '+': RBM puts it literally in the path (phones/+12223334444). */
export const e164 = z.string({ error: expected(E164, showPhone) }).regex(/^\+[1-9]\d{6,14}$/, { error: expected(E164, showPhone) });

const AGENT_ID = "an RBM agent ID without @rbm.goog: 1 to 100 letters, digits, '_' or '-', starting with a letter or digit";
/** Becomes part of a BullMQ queue name (rbm-outbound.<agentId>), so never ':' nor spaces. */
/** An RBM agent ID's form, for the checks outside zod (config, the API's agent scoping). */
export const AGENT_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$/;
export const agentId = z.string({ error: expected(AGENT_ID) }).regex(AGENT_ID_PATTERN, { error: expected(AGENT_ID) });

const UUID = 'a lowercase UUID like 2f1e0c7e-4a3b-4c5d-9e8f-0a1b2c3d4e5f';
/**
 * RBM wants an RFC 4122 UUID for messageId/eventId; any version (v4 random,
 * v5 from an idempotency key, v7) in lowercase canonical form, so one ID has
 * one spelling in job IDs and status keys.
 */
export const uuid = z
  .string({ error: expected(UUID) })
  .regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[1-8][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/, { error: expected(UUID) });

const KEY = '1 to 255 printable ASCII characters, no leading or trailing space';
/** Also accepted as the Idempotency-Key header, hence header-safe characters only. */
export const idempotencyKey = z
  .string({ error: expected(KEY) })
  .regex(/^[\x21-\x7e](?:[\x20-\x7e]{0,253}[\x21-\x7e])?$/, { error: expected(KEY) });

/** Milliseconds since the epoch, as Date.now() gives them. */
export const epochMs = z.number().int().nonnegative();

/**
 * An RBM enum without its *_UNSPECIFIED member: an UNSPECIFIED value is never
 * sent (a multi-use agent gets an error for an unspecified traffic type), so
 * its problem says to leave the field out instead.
 */
export function rbmEnum<const V extends readonly [string, ...string[]]>(values: V) {
  const list = values.join(', ');
  const otherwise = expected(`one of ${list}`);
  return z.enum(values, {
    error: (iss) =>
      typeof iss.input === 'string' && iss.input.endsWith('_UNSPECIFIED')
        ? `expected one of ${list}, got ${iss.input}: UNSPECIFIED values are never sent, leave the field out instead`
        : otherwise(iss),
  });
}

const CALLBACK_URL = 'an http:// or https:// URL of at most 2048 characters';
/** Where status callbacks for a message go (see jobs/deliver-callback.ts). */
export const callbackUrl = z
  .string({ error: expected(CALLBACK_URL) })
  .max(2048, { error: expected(CALLBACK_URL) })
  .refine(
    (s) => {
      try {
        const url = new URL(s);
        return (url.protocol === 'https:' || url.protocol === 'http:') && url.hostname !== '';
      } catch {
        return false;
      }
    },
    { error: expected(CALLBACK_URL) },
  );
