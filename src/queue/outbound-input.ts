/**
 * What a producer is given, checked and turned into job payloads: validation
 * of every item (all or nothing), the agent each item goes to, and the IDs
 * (a caller's own, a UUIDv5 of an idempotency key, or a fresh UUIDv4). Pure:
 * no Redis, no network; the producer writes and enqueues what this returns.
 */
import { v4 as uuidv4, v5 as uuidv5 } from 'uuid';
import { validateBounded, type Problem } from '../../jobs/common.ts';
import { expirationMs } from '../../jobs/agent-message.ts';
import { checkInputTiming, sendMessageInput, type SendMessageInput, type SendMessagePayload } from '../../jobs/send-message.ts';
import { sendEventInput, type SendEventInput, type SendEventPayload } from '../../jobs/send-event.ts';
import { MAX_LISTED_PROBLEMS, PayloadError, UnknownAgentError } from '../errors.ts';
import type { MessageStatus } from '../status/store.ts';
import { maskPhone } from '../mask.ts';
import { startPacer } from '../turn-budget.ts';

/** Namespace of rbm-dispatch's UUIDv5 IDs; changing it would break every stored idempotency key. */
const ID_NAMESPACE = '6f1c3e0a-7b52-4d1e-9a38-2f5d8c4b7e91';

/** The UUIDv5 of an idempotency key, in its kind's, agent's and scope's namespace. */
export function idOf(kind: 'message' | 'event' | 'batch', agentId: string, key: string, scope: string | undefined): string {
  const agent = kind === 'batch' ? '' : `${agentId}:`;
  return uuidv5(scope === undefined ? `${kind}:${agent}${key}` : `${kind}:${agent}${scope}:${key}`, ID_NAMESPACE);
}

/** The agent an item without agentId goes to: the caller's only one, or the service's only one. */
export function agentFor(agents: readonly string[], agentId: string | undefined, defaultAgentId?: string): string {
  if (agentId === undefined && defaultAgentId !== undefined) return agentFor(agents, defaultAgentId);
  if (agentId === undefined) {
    if (agents.length === 1) return agents[0]!;
    throw new PayloadError('message', [
      { path: 'agentId', problem: `expected one of ${agents.join(', ')} (several agents are configured), got nothing` },
    ]);
  }
  if (!agents.includes(agentId)) throw new UnknownAgentError(agentId, [...agents]);
  return agentId;
}

type Check = (raw: unknown, room: number) => { ok: true } | { ok: false; problems: Problem[]; count: number };

/**
 * Validates every item; one bad item refuses the call, naming the first
 * MAX_LISTED_PROBLEMS problems (indexed) and counting all of them. A batch
 * of 10,000 bad items is ~0.5 s of zod: the loop takes its share of each
 * turn of the event loop (see turn-budget.ts), so health checks, webhooks
 * and the workers in this process keep their turns meanwhile. Agents are
 * checked last, so an unknown one refuses the call before anything is written.
 */
export async function checkAll(
  inputs: readonly unknown[],
  check: Check,
  what: string,
  agents: readonly string[],
  defaultAgentId?: string,
): Promise<void> {
  if (!Array.isArray(inputs)) throw new PayloadError(`${what} list`, [{ path: '', problem: `expected an array, got ${typeof inputs}` }]);
  const problems: Problem[] = [];
  let count = 0;
  let firstBad: number | undefined;
  const pacer = startPacer();
  try {
    for (let i = 0; i < inputs.length; i++) {
      if (pacer.due()) await pacer.nextTurn();
      const checked = check(inputs[i], MAX_LISTED_PROBLEMS - problems.length);
      if (checked.ok) continue;
      firstBad ??= i;
      count += checked.count;
      const prefix = inputs.length > 1 ? `${i}.` : '';
      for (const p of checked.problems.slice(0, MAX_LISTED_PROBLEMS - problems.length)) {
        problems.push({ path: `${prefix}${p.path}`.replace(/\.$/, ''), problem: p.problem });
      }
    }
  } finally {
    pacer.end();
  }
  if (count > 0) throw new PayloadError(what, problems, { index: inputs.length > 1 ? firstBad : undefined, count });
  for (const item of inputs) agentFor(agents, (item as { agentId?: string }).agentId, defaultAgentId);
}

/** One message input's check: its shape, its times against `now`, and a callbackUrl only when callbacks are on. */
export function messageCheck(now: number, callbacks: boolean): Check {
  return (raw, room) => {
    const checked = validateBounded(sendMessageInput, raw, room);
    if (!checked.ok) return checked;
    const problems = checkInputTiming(checked.value, now);
    if (checked.value.callbackUrl !== undefined && !callbacks) {
      problems.push({ path: 'callbackUrl', problem: 'status callbacks are off in this service: CALLBACK_SECRET is not configured' });
    }
    return problems.length > 0 ? { ok: false as const, problems, count: problems.length } : checked;
  };
}

export const eventCheck: Check = (raw, room) => validateBounded(sendEventInput, raw, room);

/** Where a message's payload is built: its agent, scope, batch and callback, and the time it was taken. */
export interface MessageContext {
  agents: readonly string[];
  now: number;
  keyScope?: string | undefined;
  defaultAgentId?: string | undefined;
  batchId?: string | undefined;
  /** Status callbacks: `url` for messages without one of their own, signed with `scope`'s secret. */
  callback: { scope: string; url?: string | undefined };
}

/**
 * The job payload of a checked input. The schemas never transform a value,
 * so a valid input is its own parsed form.
 */
export function messagePayload(input: SendMessageInput, c: MessageContext): SendMessagePayload {
  const agentId = agentFor(c.agents, input.agentId, c.defaultAgentId);
  const { to, fallback, idempotencyKey, messageId, agentId: _a, callbackUrl, ...message } = input;
  const expireAt = expirationMs(message, c.now);
  const url = callbackUrl ?? c.callback.url;
  return {
    messageId: messageId ?? (idempotencyKey ? idOf('message', agentId, idempotencyKey, c.keyScope) : uuidv4()),
    agentId,
    to,
    message: message as SendMessagePayload['message'],
    ...(fallback ? { fallback } : {}),
    enqueuedAt: c.now,
    ...(expireAt !== undefined ? { expireAt } : {}),
    ...(c.batchId ? { batchId: c.batchId } : {}),
    ...(url ? { callback: { url, scope: c.callback.scope } } : {}),
  };
}

/** The job payload of a checked event input. */
export function eventPayload(input: SendEventInput, c: Pick<MessageContext, 'agents' | 'now' | 'keyScope' | 'defaultAgentId'>) {
  const agentId = agentFor(c.agents, input.agentId, c.defaultAgentId);
  const keyed = input.eventId ?? (input.idempotencyKey ? idOf('event', agentId, input.idempotencyKey, c.keyScope) : undefined);
  return {
    eventId: keyed ?? uuidv4(),
    agentId,
    to: input.to,
    eventType: input.eventType,
    ...(input.messageId !== undefined ? { messageId: input.messageId } : {}),
    enqueuedAt: c.now,
  } satisfies SendEventPayload;
}

/**
 * A batch's items with an idempotency key: each item without a key of its
 * own gets `<key>:<index>`, so a retried batch queues nothing twice.
 */
export function keyedBatchItems(inputs: readonly SendMessageInput[], key: string | undefined): readonly SendMessageInput[] {
  if (!key) return inputs;
  return inputs.map((m, i) =>
    m && typeof m === 'object' && m.idempotencyKey === undefined && m.messageId === undefined ? { ...m, idempotencyKey: `${key}:${i}` } : m,
  );
}

/** A message still waiting with no record (a fresh UUID's job alone is its QUEUED state), read from its job. */
export function queuedStatus(p: SendMessagePayload): MessageStatus {
  return {
    messageId: p.messageId,
    state: 'QUEUED',
    agentId: p.agentId,
    to: maskPhone(p.to),
    channel: 'rcs',
    ...(p.message.messageTrafficType ? { trafficType: p.message.messageTrafficType } : {}),
    ...(p.batchId ? { batchId: p.batchId } : {}),
    ...(p.expireAt !== undefined ? { expireAt: p.expireAt } : {}),
    createdAt: p.enqueuedAt,
    updatedAt: p.enqueuedAt,
    attempts: 0,
    timeline: [{ state: 'QUEUED', at: p.enqueuedAt }],
  };
}
