/**
 * `callbacks show|set|remove|replay`: the status callbacks of the API key in
 * use (GET, PUT, DELETE /v1/callback) and the replay of one message's
 * (POST /v1/messages/:id/callbacks:replay). 404 exits 3; replaying a message
 * sent without a callback URL (409) exits 1.
 */
import type { Register } from '../context.ts';
import { ApiError, CliErrorCodes, ExitCodes } from '../errors.ts';

export const registerCallbacks: Register = (program, run) => {
  const callbacks = program.command('callbacks').description("this API key's status callbacks: where they go, their secret, replays");

  callbacks
    .command('show')
    .description('the callback URL of this API key and the Standard Webhooks secret its callbacks are signed with')
    .action((_opts, cmd) =>
      run(cmd, async ({ api, out }) => {
        const c = await api().getCallback();
        out.result(
          c,
          c.enabled
            ? [`url ${c.url ?? '(none)'}`, `secret ${c.secret}`]
            : ['status callbacks are off in this service (no CALLBACK_SECRET)'],
        );
        return ExitCodes.OK;
      }),
    );

  callbacks
    .command('set <url>')
    .description('POST every state change of the messages this key sends from now on to <url> (http or https)')
    .action((url: string, _opts, cmd) =>
      run(cmd, async ({ api, out }) => {
        const c = await api().setCallback(url);
        out.result(c, [`url ${c.url}`, `secret ${c.secret}`]);
        return ExitCodes.OK;
      }),
    );

  callbacks
    .command('remove')
    .description('stop sending callbacks for messages sent from now on (queued ones keep theirs)')
    .addHelpText('after', '\nExit 3 when the key has no callback URL.')
    .action((_opts, cmd) =>
      run(cmd, async ({ api, out }) => {
        try {
          await api().removeCallback();
        } catch (err) {
          if (err instanceof ApiError && err.status === 404) throw err.as(CliErrorCodes.NOT_FOUND, ExitCodes.NOT_FOUND);
          throw err;
        }
        out.result({ removed: true }, ['removed']);
        return ExitCodes.OK;
      }),
    );

  callbacks
    .command('replay <messageId>')
    .description('send every status change of a message to its callback URL again (same webhook-ids and bodies)')
    .addHelpText('after', '\nExit 3 for an unknown message; exit 1 when it was sent without a callback URL.')
    .action((messageId: string, _opts, cmd) =>
      run(cmd, async ({ api, out }) => {
        try {
          const r = await api().replayCallbacks(messageId);
          out.result(r, [`replaying ${r.replayed} changes of ${r.messageId} to ${r.url}`]);
          return ExitCodes.OK;
        } catch (err) {
          if (err instanceof ApiError && err.status === 404) throw err.as(CliErrorCodes.NOT_FOUND, ExitCodes.NOT_FOUND);
          throw err;
        }
      }),
    );
};
