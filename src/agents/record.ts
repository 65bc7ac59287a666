/**
 * An agent as the directory stores it (src/agents/directory.ts), and the
 * checks of what an operator may write: the admin API and the CLI send these
 * bodies, RBM_AGENTS seeds them. Pure: no Redis here.
 */
import { z } from 'zod';
import { agentId, e164, expected, strictObject, validate } from '../../jobs/common.ts';
import { PayloadError } from '../errors.ts';

/** The most partitions one agent's traffic is split into (#12: a bigger agent spreads over more shards). */
export const MAX_PARTITIONS = 64;
export const MAX_RATE_PER_SEC = 100_000;

/** What happens to a removed agent's queued messages: sent as they stand, or listed as failures (AGENT_REMOVED). */
export type QueuedOnRemove = 'drain' | 'fail';

export interface AgentRecord {
  agentId: string;
  /** Requests per second RBM allows this agent (messages and events together). */
  ratePerSec: number;
  /** How many partitions the agent's traffic is split into (1 until the cluster layout uses them). */
  partitions: number;
  /** The agent's webhook client token; falls back to RBM_WEBHOOK_CLIENT_TOKENS. Never answered. */
  clientToken?: string;
  /** The SMS sender of this agent's fallbacks; falls back to SMS_FROM. */
  smsFrom?: string;
  /**
   * The keyspace lane its messages live in (src/queue/keyspace.ts), chosen when it is first recorded and
   * never changed: its records and queues stay findable. Absent on records written before lanes: lane 0.
   */
  lane?: number;
  /** Set once removed: it takes no messages; its queued ones drain or fail. */
  removed?: { at: number; queued: QueuedOnRemove };
  createdAt: number;
  updatedAt: number;
}

/** What a caller sees of a record: the client token only as whether one is set. */
export type AgentView = Omit<AgentRecord, 'clientToken'> & { clientToken: boolean };

export function viewOf(record: AgentRecord): AgentView {
  const { clientToken, ...rest } = record;
  return { ...rest, clientToken: clientToken !== undefined };
}

const rate = z
  .number({ error: expected(`a whole number of requests per second from 1 to ${MAX_RATE_PER_SEC}`) })
  .int({ error: expected(`a whole number of requests per second from 1 to ${MAX_RATE_PER_SEC}`) })
  .min(1, { error: expected(`a whole number of requests per second from 1 to ${MAX_RATE_PER_SEC}`) })
  .max(MAX_RATE_PER_SEC, { error: expected(`a whole number of requests per second from 1 to ${MAX_RATE_PER_SEC}`) });
const partitions = z
  .number({ error: expected(`a whole number of partitions from 1 to ${MAX_PARTITIONS}`) })
  .int({ error: expected(`a whole number of partitions from 1 to ${MAX_PARTITIONS}`) })
  .min(1, { error: expected(`a whole number of partitions from 1 to ${MAX_PARTITIONS}`) })
  .max(MAX_PARTITIONS, { error: expected(`a whole number of partitions from 1 to ${MAX_PARTITIONS}`) });
// A client token is a secret: it is never echoed in a problem.
const TOKEN = 'a client token of 8 to 256 visible ASCII characters';
const clientToken = z
  .string({ error: expected(TOKEN, () => 'something else') })
  .regex(/^[\x21-\x7e]{8,256}$/, { error: expected(TOKEN, () => 'something else') });
// An SMS sender: a number, or an alphanumeric sender ID (up to 11 characters, GSM's limit).
const SENDER = 'an SMS sender: an E.164 number or 1 to 11 letters, digits and spaces';
const smsFrom = z.union([e164, z.string().regex(/^[A-Za-z0-9][A-Za-z0-9 ]{0,10}$/)], { error: expected(SENDER) });

const addBody = strictObject({
  agentId,
  ratePerSec: rate,
  partitions: partitions.optional(),
  clientToken: clientToken.optional(),
  smsFrom: smsFrom.optional(),
});
// null clears an optional setting; at least one field.
const setBody = strictObject({
  ratePerSec: rate.optional(),
  partitions: partitions.optional(),
  clientToken: clientToken.nullable().optional(),
  smsFrom: smsFrom.nullable().optional(),
}).refine((b) => Object.values(b).some((v) => v !== undefined), {
  error: 'expected at least one of ratePerSec, partitions, clientToken, smsFrom',
});

export type AgentToAdd = z.infer<typeof addBody>;
export type AgentChange = z.infer<typeof setBody>;

/** The body of an add, checked: every problem at once (PayloadError). */
export function parseAgentToAdd(body: unknown): AgentToAdd {
  const checked = validate(addBody, body);
  if (!checked.ok) throw new PayloadError('agent', checked.problems);
  return checked.value;
}

/** The body of a change, checked. */
export function parseAgentChange(body: unknown): AgentChange {
  const checked = validate(setBody, body);
  if (!checked.ok) throw new PayloadError('agent change', checked.problems);
  return checked.value;
}

/** What to do with a removed agent's queued messages: 'drain' unless the caller says 'fail'. */
export function parseQueuedOnRemove(value: unknown): QueuedOnRemove {
  if (value === undefined || value === 'drain') return 'drain';
  if (value === 'fail') return 'fail';
  throw new PayloadError('agent removal', [{ path: 'queued', problem: `expected drain or fail, got ${JSON.stringify(value)}` }]);
}

/** A new record (or a removed agent's, brought back, on its old lane), as of `now`; `lane` for a new one. */
export function newRecord(input: AgentToAdd, now: number, previous?: AgentRecord, lane?: number): AgentRecord {
  const onLane = previous ? previous.lane : lane;
  return {
    agentId: input.agentId,
    ratePerSec: input.ratePerSec,
    partitions: input.partitions ?? previous?.partitions ?? 1,
    ...(onLane !== undefined ? { lane: onLane } : {}),
    ...(input.clientToken !== undefined ? { clientToken: input.clientToken } : {}),
    ...(input.smsFrom !== undefined ? { smsFrom: input.smsFrom } : {}),
    createdAt: previous?.createdAt ?? now,
    updatedAt: now,
  };
}

/** A record with a change applied (null clears clientToken or smsFrom). */
export function changed(record: AgentRecord, change: AgentChange, now: number): AgentRecord {
  const next: AgentRecord = { ...record, updatedAt: now };
  if (change.ratePerSec !== undefined) next.ratePerSec = change.ratePerSec;
  if (change.partitions !== undefined) next.partitions = change.partitions;
  if (change.clientToken === null) delete next.clientToken;
  else if (change.clientToken !== undefined) next.clientToken = change.clientToken;
  if (change.smsFrom === null) delete next.smsFrom;
  else if (change.smsFrom !== undefined) next.smsFrom = change.smsFrom;
  return next;
}

/** A stored record, read back; undefined for one that does not parse (written by something else). */
export function parseStored(agentIdKey: string, json: string): AgentRecord | undefined {
  try {
    const r = JSON.parse(json) as AgentRecord;
    if (r.agentId !== agentIdKey || typeof r.ratePerSec !== 'number' || typeof r.partitions !== 'number') return undefined;
    if (r.lane !== undefined && !(Number.isInteger(r.lane) && r.lane >= 0)) return undefined;
    return r;
  } catch {
    return undefined;
  }
}
