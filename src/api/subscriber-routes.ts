/**
 * DELETE /v1/subscribers/:e164: a data-protection erase of one number's
 * history, in the archive and in Redis (src/history/erase.ts). Behind the
 * admin key (ADMIN_API_KEY as Bearer, compared in constant time) like
 * /admin/queues, never an API key: an erase spans every tenant's messages to
 * the number. Open without a key only in emulator mode, as the admin UI is.
 * Audited: one log line (the number masked, the counts, who) and a counter
 * in the metrics hash (`history|erase`, counted by the service).
 */
import type { FastifyPluginAsync } from 'fastify';
import type { EraseSubscriberResult } from '../history/erase.ts';
import type { Logger } from '../logger.ts';
import { maskPhone } from '../mask.ts';
import { adminKeyCheck, type AdminKeyOptions } from './admin-key.ts';
import { parsePhone } from './history-routes.ts';
import { doc } from './openapi.ts';

export interface SubscriberRoutesOptions extends AdminKeyOptions {
  erase(e164: string): Promise<EraseSubscriberResult>;
  log?: Pick<Logger, 'info'> | undefined;
}

export const subscriberRoutes: FastifyPluginAsync<SubscriberRoutesOptions> = async (app, opts) => {
  const check = adminKeyCheck(opts);
  app.delete(
    '/v1/subscribers/:e164',
    doc('history', "Erase a number's history from the archive and Redis (admin key)"),
    async (request, reply) => {
      const by = check(request, reply, 'erasing a number');
      if (by === undefined) return reply;
      const { e164 } = request.params as { e164: string };
      const to = parsePhone(e164, 'e164');
      const result = await opts.erase(to);
      opts.log?.info(
        {
          audit: 'subscriber-erase',
          to: maskPhone(to),
          archiveMessages: result.archive.messages,
          archiveEvents: result.archive.events,
          redisRecords: result.redis.records,
          by: by === 'admin-key' ? 'admin-key' : 'open (emulator mode)',
          ip: request.ip,
          reqId: request.id,
        },
        'subscriber erased',
      );
      return { to: maskPhone(to), ...result };
    },
  );
};
