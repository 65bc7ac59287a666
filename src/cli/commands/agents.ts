/**
 * `agents list|add|set|remove`: the agent directory (/v1/admin/agents) at a
 * terminal, with the admin key (--admin-key or RBM_DISPATCH_ADMIN_KEY). Every
 * process of the service picks a change up within about a second. 404 exits 3.
 */
import { Option } from 'commander';
import type { AgentView } from '../api-client.ts';
import { intOption, type Register } from '../context.ts';
import { ApiError, CliErrorCodes, ExitCodes } from '../errors.ts';

function line(a: AgentView): string {
  const parts = [a.agentId, `${a.ratePerSec}/s`, `lane ${a.lane ?? 0}`, `partitions ${a.partitions}`];
  if (a.clientToken) parts.push('client token set');
  if (a.smsFrom) parts.push(`sms from ${a.smsFrom}`);
  if (a.removed) parts.push(`removed (queued: ${a.removed.queued})`);
  return parts.join('  ');
}

/** The agent's settings as options; `clear` adds --no-client-token and --no-sms-from (set). */
function settings(opts: { rate?: number; partitions?: number; clientToken?: string | false; smsFrom?: string | false }) {
  return {
    ...(opts.rate !== undefined ? { ratePerSec: opts.rate } : {}),
    ...(opts.partitions !== undefined ? { partitions: opts.partitions } : {}),
    ...(opts.clientToken !== undefined ? { clientToken: opts.clientToken === false ? null : opts.clientToken } : {}),
    ...(opts.smsFrom !== undefined ? { smsFrom: opts.smsFrom === false ? null : opts.smsFrom } : {}),
  };
}

const rateOption = () => new Option('--rate <n>', 'requests per second RBM allows it').argParser(intOption('--rate', 1, 100_000));
const partitionsOption = () =>
  new Option('--partitions <n>', 'partitions its traffic is split into (1-64)').argParser(intOption('--partitions', 1, 64));

const notFound = (err: unknown): never => {
  if (err instanceof ApiError && err.status === 404) throw err.as(CliErrorCodes.NOT_FOUND, ExitCodes.NOT_FOUND);
  throw err;
};

export const registerAgents: Register = (program, run) => {
  const agents = program
    .command('agents')
    .description('the agents the service sends for: list, add, change, remove (admin key; no restart needed)')
    .addOption(new Option('--admin-key <key>', 'the admin key of the service (ADMIN_API_KEY)').env('RBM_DISPATCH_ADMIN_KEY'));

  agents
    .command('list')
    .description('every agent, removed ones too')
    .action((_opts, cmd) =>
      run(cmd, async ({ api, out }) => {
        const list = await api().listAgents();
        out.result(list, list.agents.length === 0 ? ['no agents'] : list.agents.map(line));
        return ExitCodes.OK;
      }),
    );

  agents
    .command('add <agentId>')
    .description('add an agent (or bring a removed one back); it takes messages within about a second')
    .addOption(rateOption().makeOptionMandatory())
    .addOption(partitionsOption())
    .option('--client-token <token>', 'its webhook client token (else RBM_WEBHOOK_CLIENT_TOKENS)')
    .option('--sms-from <sender>', 'the SMS sender of its fallbacks (else SMS_FROM)')
    .action((agentId: string, opts: { rate: number; partitions?: number; clientToken?: string; smsFrom?: string }, cmd) =>
      run(cmd, async ({ api, out }) => {
        const { agent } = await api().addAgent({ agentId, ...settings(opts) });
        out.result({ agent }, [`added ${line(agent)}`]);
        return ExitCodes.OK;
      }),
    );

  agents
    .command('set <agentId>')
    .description("change an agent's rate, partitions, client token or SMS sender")
    .addOption(rateOption())
    .addOption(partitionsOption())
    .option('--client-token <token>', 'its webhook client token')
    .option('--no-client-token', 'use RBM_WEBHOOK_CLIENT_TOKENS again')
    .option('--sms-from <sender>', 'the SMS sender of its fallbacks')
    .option('--no-sms-from', 'use SMS_FROM again')
    .action(
      (agentId: string, opts: { rate?: number; partitions?: number; clientToken?: string | boolean; smsFrom?: string | boolean }, cmd) =>
        run(cmd, async ({ api, out }) => {
          // commander sets a --no- option's default (true) when neither form is given: only false means "clear".
          const change = settings({
            ...opts,
            clientToken: opts.clientToken === true ? undefined : opts.clientToken,
            smsFrom: opts.smsFrom === true ? undefined : opts.smsFrom,
          });
          const { agent } = await api().changeAgent(agentId, change).catch(notFound);
          out.result({ agent }, [`changed ${line(agent)}`]);
          return ExitCodes.OK;
        }),
    );

  agents
    .command('remove <agentId>')
    .description('remove an agent: it takes no more messages; its queued ones are sent (drain) or fail (AGENT_REMOVED)')
    .addOption(new Option('--queued <what>', 'what happens to its queued messages').choices(['drain', 'fail']).default('drain'))
    .action((agentId: string, opts: { queued: 'drain' | 'fail' }, cmd) =>
      run(cmd, async ({ api, out }) => {
        const { agent } = await api().removeAgent(agentId, opts.queued).catch(notFound);
        out.result({ agent }, [`removed ${agentId} (queued messages: ${opts.queued})`]);
        return ExitCodes.OK;
      }),
    );
};
