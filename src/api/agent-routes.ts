/**
 * /v1/admin/agents: the agent directory at run time (src/agents/), behind the
 * admin key like every admin route (admin-key.ts), never an API key: an
 * agent's client token and rate are the operator's, not a tenant's.
 *
 *   GET    /v1/admin/agents                    every agent (removed ones too)
 *   GET    /v1/admin/agents/:agentId           one
 *   POST   /v1/admin/agents                    add one (or bring a removed one back): 201; 409 AGENT_EXISTS
 *   PATCH  /v1/admin/agents/:agentId           change rate, partitions, client token, SMS sender
 *   DELETE /v1/admin/agents/:agentId?queued=   remove: it takes no messages (400 UNKNOWN_AGENT); its
 *                                              queued ones drain (default) or fail (AGENT_REMOVED)
 *
 * Every process sees a change within ~1 s (LiveAgents polls); this one at
 * once. A client token is never answered, only whether one is set. Audited:
 * one log line per change, naming the agent, what changed and who.
 */
import type { FastifyPluginAsync } from 'fastify';
import type { AgentDirectory } from '../agents/directory.ts';
import { parseAgentChange, parseAgentToAdd, parseQueuedOnRemove, viewOf, type AgentRecord } from '../agents/record.ts';
import type { Logger } from '../logger.ts';
import { adminKeyCheck, type AdminKeyOptions } from './admin-key.ts';
import { sendCode } from './errors.ts';
import { registerJsonBodyParser } from './json-body.ts';
import { doc } from './openapi.ts';

export interface AgentRoutesOptions extends AdminKeyOptions {
  directory: AgentDirectory;
  /** This process's view, refreshed after each write so its next request sees the change. */
  refresh(): Promise<void>;
  log?: Pick<Logger, 'info'> | undefined;
}

const PATH = '/v1/admin/agents';

export const agentRoutes: FastifyPluginAsync<AgentRoutesOptions> = async (app, opts) => {
  app.removeContentTypeParser('text/plain');
  registerJsonBodyParser(app);
  const check = adminKeyCheck(opts);
  const audit = (action: string, agentId: string, by: string, fields: Record<string, unknown> = {}) =>
    opts.log?.info({ audit: `agent-${action}`, agentId, by, ...fields }, `agent ${action}`);
  const written = async (record: AgentRecord) => {
    await opts.refresh();
    return { agent: viewOf(record) };
  };

  // Who passed the check, for the audit lines: the admin key, or open (emulator mode without one).
  const passedBy = new WeakMap<object, string>();
  const byOf = (request: object) => (passedBy.get(request) === 'admin-key' ? 'admin-key' : 'open (emulator mode)');
  app.addHook('onRequest', async (request, reply) => {
    const by = check(request, reply, 'the agent directory');
    if (by === undefined) return reply;
    passedBy.set(request, by);
  });

  app.get(PATH, doc('admin', 'List the agents (admin key)'), async () => {
    const { version, records } = await opts.directory.read();
    return { version, agents: records.map(viewOf) };
  });

  app.get(`${PATH}/:agentId`, doc('admin', 'One agent (admin key)'), async (request, reply) => {
    const { agentId } = request.params as { agentId: string };
    const record = await opts.directory.get(agentId);
    if (!record) return sendCode(reply, 'NOT_FOUND', `no agent '${agentId}'`);
    return { agent: viewOf(record) };
  });

  app.post(PATH, doc('admin', 'Add an agent, or bring a removed one back (admin key)'), async (request, reply) => {
    const input = parseAgentToAdd(request.body);
    const record = await opts.directory.add(input);
    audit('add', record.agentId, byOf(request), { ratePerSec: record.ratePerSec, partitions: record.partitions, lane: record.lane ?? 0 });
    return reply.code(201).send(await written(record));
  });

  app.patch(
    `${PATH}/:agentId`,
    doc('admin', "Change an agent's rate, partitions, client token or SMS sender (admin key)"),
    async (request, reply) => {
      const { agentId } = request.params as { agentId: string };
      const change = parseAgentChange(request.body);
      const record = await opts.directory.change(agentId, change);
      if (!record) return sendCode(reply, 'NOT_FOUND', `no agent '${agentId}' (or it was removed: add it again)`);
      // The token itself is never logged: only that it changed.
      audit('change', agentId, byOf(request), {
        changed: Object.keys(change).filter((k) => change[k as keyof typeof change] !== undefined),
      });
      return written(record);
    },
  );

  app.delete(`${PATH}/:agentId`, doc('admin', 'Remove an agent: its queued messages drain or fail (admin key)'), async (request, reply) => {
    const { agentId } = request.params as { agentId: string };
    const queued = parseQueuedOnRemove((request.query as { queued?: unknown }).queued);
    const record = await opts.directory.remove(agentId, queued);
    if (!record) return sendCode(reply, 'NOT_FOUND', `no agent '${agentId}'`);
    audit('remove', agentId, byOf(request), { queued });
    return written(record);
  });
};
