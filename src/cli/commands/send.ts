/**
 * `send`: one text message, checked here against the service's own schema
 * (bad flags exit 2 with nothing sent), then POST /v1/messages.
 */
import type { Register } from '../context.ts';
import { ExitCodes, InputError } from '../errors.ts';
import { checkMessage, simpleMessage } from '../input.ts';

export const registerSend: Register = (program, run) => {
  program
    .command('send')
    .description('queue one text message')
    .requiredOption('--to <e164>', 'recipient in E.164, e.g. +12223334444')
    .requiredOption('--text <text>', 'the message text')
    .option('--agent <id>', 'RBM agent ID (optional when the service has one agent)')
    .option('--traffic-type <type>', 'AUTHENTICATION, TRANSACTION, PROMOTION, SERVICEREQUEST or ACKNOWLEDGEMENT')
    .option('--ttl <duration>', 'expire if not delivered within: 60s, 10m, 2h, 1d (at most 15 days)')
    .option('--sms-fallback <text>', 'SMS to send when RCS cannot deliver (not RCS, expired, revoked)')
    .option('--idempotency-key <key>', 'the same key (per agent) never queues twice: a retry is safe')
    .addHelpText('after', '\nPrints the messageId and its state; with --json the API answer { messageId, state, duplicate }.')
    .action(
      (
        opts: {
          to: string;
          text: string;
          agent?: string;
          trafficType?: string;
          ttl?: string;
          smsFallback?: string;
          idempotencyKey?: string;
        },
        cmd,
      ) =>
        run(cmd, async ({ api, out }) => {
          const message = simpleMessage({ ...opts, agentId: opts.agent });
          const checked = checkMessage(message);
          if (!checked.ok)
            throw new InputError(
              'the message is invalid; nothing was sent',
              checked.problems.map((p) => ({
                path: (Object.hasOwn(FLAG_OF_PATH, p.path) ? FLAG_OF_PATH[p.path] : undefined) ?? p.path,
                problem: p.problem,
              })),
            );
          const queued = await api().sendMessage(checked.value);
          out.result(queued, [
            `${queued.messageId} ${queued.state}${queued.duplicate ? ' (duplicate: already queued under this key, nothing new sent)' : ''}`,
          ]);
          return ExitCodes.OK;
        }),
    );
};

/** Schema paths back to the flag that set them. */
const FLAG_OF_PATH: Readonly<Record<string, string>> = {
  to: '--to',
  contentMessage: '--text',
  'contentMessage.text': '--text',
  agentId: '--agent',
  messageTrafficType: '--traffic-type',
  ttl: '--ttl',
  fallback: '--sms-fallback',
  'fallback.sms.text': '--sms-fallback',
  idempotencyKey: '--idempotency-key',
};
