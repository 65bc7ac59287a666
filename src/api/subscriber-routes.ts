/**
 * DELETE /v1/subscribers/:e164: a data-protection erase of one number's
 * history, in the archive and in Redis (src/history/erase.ts). Behind the
 * admin key (ADMIN_API_KEY as Bearer, compared in constant time) like
 * /admin/queues, never an API key: an erase spans every tenant's messages to
 * the number. Open without a key only in emulator mode, as the admin UI is.
 * Audited: one log line (the number masked, the counts, who) and a counter
 * in the metrics hash (`history|erase`, counted by the service).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyPluginAsync } from 'fastify';
import { credentialsOf } from '../authorization.ts';
import type { EraseSubscriberResult } from '../history/erase.ts';
import type { Logger } from '../logger.ts';
import { maskPhone } from '../mask.ts';
import { sendCode } from './errors.ts';
import { parsePhone } from './history-routes.ts';
import { doc } from './openapi.ts';

export interface SubscriberRoutesOptions {
  erase(e164: string): Promise<EraseSubscriberResult>;
  /** ADMIN_API_KEY; undefined: no key, and the route answers only when open. */
  adminKey: string | undefined;
  /** No admin key needed (emulator mode). */
  open: boolean;
  /** The API keys: one presented here is refused as FORBIDDEN (it is a key, just not this one's), any other as UNAUTHENTICATED. */
  apiKeys: readonly string[];
  log?: Pick<Logger, 'info'> | undefined;
}

const digest = (s: string) => createHash('sha256').update(s).digest();

export const subscriberRoutes: FastifyPluginAsync<SubscriberRoutesOptions> = async (app, opts) => {
  const admin = opts.adminKey ? digest(opts.adminKey) : undefined;
  const apiKeys = opts.apiKeys.map(digest);
  app.delete(
    '/v1/subscribers/:e164',
    doc('history', "Erase a number's history from the archive and Redis (admin key)"),
    async (request, reply) => {
      const key = credentialsOf(request.headers.authorization, 'Bearer');
      const presented = key === undefined ? undefined : digest(key);
      const isAdmin = admin !== undefined && presented !== undefined && timingSafeEqual(presented, admin);
      if (!isAdmin && !(admin === undefined && opts.open)) {
        if (presented && apiKeys.some((k) => timingSafeEqual(k, presented))) {
          return sendCode(reply, 'FORBIDDEN', 'erasing a number needs the admin key (ADMIN_API_KEY), not an API key');
        }
        return sendCode(reply, 'UNAUTHENTICATED', 'expected the admin key (ADMIN_API_KEY) as Bearer');
      }
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
          by: isAdmin ? 'admin-key' : 'open (emulator mode)',
          ip: request.ip,
          reqId: request.id,
        },
        'subscriber erased',
      );
      return { to: maskPhone(to), ...result };
    },
  );
};
