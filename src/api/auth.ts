/**
 * Producer API keys: Bearer keys compared in constant time (as SHA-256
 * digests, so lengths never leak), each allowed a set of agents. With no keys
 * configured the API is open in emulator mode and closed otherwise.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AGENT_ID_PATTERN } from '../../jobs/common.ts';
import type { ApiKeyConfig } from '../config.ts';
import { credentialsOf } from '../authorization.ts';
import { DEFAULT_SCOPE, scopeOfApiKey } from '../callbacks/secrets.ts';
import type { Producer } from '../queue/producer.ts';
import { MAX_LISTED_PROBLEMS, UnknownAgentError } from '../errors.ts';
import { sendCode } from './errors.ts';

const digest = (s: string) => createHash('sha256').update(s).digest();

/** allowedAgents: null when any; scope: the caller's API key's (callbacks, idempotency keys), 'default' without keys. */
type WithAgents = FastifyRequest & { allowedAgents: Set<string> | null; scope: string };

/** The caller's status callback scope: its API key's, or 'default' in an API without keys. */
export function callbackScopeOf(request: FastifyRequest): string {
  return (request as WithAgents).scope;
}

/** The agents the caller's key may use; null when any (an API without keys). */
export function allowedAgentsOf(request: FastifyRequest): ReadonlySet<string> | null {
  return (request as WithAgents).allowedAgents;
}

/**
 * The namespace of the caller's idempotency keys: its API key's scope; none in
 * an API without keys (the library's). And the agent of items that name none,
 * when the key may use only one.
 */
export function keyScopeOf(request: FastifyRequest): { keyScope?: string; defaultAgentId?: string } {
  const { scope, allowedAgents } = request as WithAgents;
  const only = allowedAgents?.size === 1 ? { defaultAgentId: [...allowedAgents][0]! } : {};
  return scope === DEFAULT_SCOPE ? only : { keyScope: scope, ...only };
}

/**
 * An UNKNOWN_AGENT answered to a key limited to some agents names only those: the service's other agents
 * (other tenants') are not the caller's to learn, not even by a typo.
 */
export function scopedError(request: FastifyRequest, err: unknown): unknown {
  const allowed = (request as WithAgents).allowedAgents;
  return allowed && err instanceof UnknownAgentError ? new UnknownAgentError(err.agentId, [...allowed].sort()) : err;
}

/** Whether the caller's key may see and act on messages of this agent. */
export function mayUseAgent(request: FastifyRequest, agentId: string): boolean {
  const allowed = (request as WithAgents).allowedAgents;
  return !allowed || allowed.has(agentId);
}

export function registerApiKeys(app: FastifyInstance, apiKeys: readonly ApiKeyConfig[], openWithoutKeys: boolean): void {
  // '*': every agent, those added at run time too (an aggregator's own key).
  const keys = apiKeys.map((k) => ({
    digest: digest(k.key),
    agents: k.agents.includes('*') ? null : new Set(k.agents),
    scope: scopeOfApiKey(k.key),
  }));
  app.decorateRequest('allowedAgents', null);
  app.decorateRequest('scope', DEFAULT_SCOPE);
  app.addHook('onRequest', async (request, reply) => {
    if (keys.length === 0) {
      if (openWithoutKeys) return;
      return sendCode(reply, 'UNAUTHENTICATED', 'API_KEYS is not configured: the API refuses every caller against a real RBM endpoint');
    }
    const key = credentialsOf(request.headers.authorization, 'Bearer');
    const presented = key === undefined ? undefined : digest(key);
    const match = presented && keys.find((k) => timingSafeEqual(k.digest, presented));
    if (!match) return sendCode(reply, 'UNAUTHENTICATED', 'expected Authorization: Bearer <API key>');
    (request as WithAgents).allowedAgents = match.agents;
    (request as WithAgents).scope = match.scope;
  });
}

/**
 * Refuses (403) when the caller's key may not use an item's agent, the
 * default agent included; true when it answered. Items whose agent is not
 * valid at all are left to the producer, which names them. Each distinct
 * agentId is resolved once: a batch names a handful of agents 10,000 times,
 * and resolving a bad one throws (an Error, a stack trace) each time.
 */
export function refuseForeignAgents(
  request: FastifyRequest,
  reply: FastifyReply,
  producer: Pick<Producer, 'resolveAgent'>,
  items: readonly unknown[],
  path: string,
): boolean {
  const allowed = (request as WithAgents).allowedAgents;
  if (!allowed) return false;
  const { defaultAgentId } = keyScopeOf(request);
  const foreign = new Map<unknown, string | null>();
  const foreignOf = (agentId: unknown): string | null => {
    let agent = foreign.get(agentId);
    if (agent !== undefined) return agent;
    // An agent the key does not list is refused alike whether it exists or not: a key cannot probe
    // which agents the service has (400 UNKNOWN_AGENT against 403 would tell). An agentId that is not
    // an agent ID at all ('bad agent!') is the payload's problem, named by its validation (400).
    if (typeof agentId === 'string' && AGENT_ID_PATTERN.test(agentId) && !allowed.has(agentId)) {
      foreign.set(agentId, agentId);
      return agentId;
    }
    try {
      const resolved = producer.resolveAgent(agentId as string | undefined, defaultAgentId);
      agent = allowed.has(resolved) ? null : resolved;
    } catch {
      agent = null;
    }
    foreign.set(agentId, agent);
    return agent;
  };
  const details: Array<{ path: string; problem: string }> = [];
  let count = 0;
  items.forEach((item, i) => {
    const agent = foreignOf((item as { agentId?: unknown } | null)?.agentId);
    if (agent === null) return;
    count += 1;
    if (details.length < MAX_LISTED_PROBLEMS)
      details.push({ path: path ? `${path}.${i}.agentId` : 'agentId', problem: `this API key may not send for agent '${agent}'` });
  });
  if (count === 0) return false;
  sendCode(reply, 'FORBIDDEN', details[0]!.problem, details, count);
  return true;
}
