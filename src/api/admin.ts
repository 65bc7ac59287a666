/**
 * bull-board at /admin/queues: every queue of the service in a browser. Behind
 * the admin key (Bearer, or HTTP Basic with any user so a browser can prompt),
 * compared in constant time; open without a key only in emulator mode.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import type { Queue } from 'bullmq';
import type { FastifyPluginAsync } from 'fastify';
import { credentialsOf } from '../authorization.ts';
import { sendCode } from './errors.ts';

export const ADMIN_PATH = '/admin/queues';

const digest = (s: string) => createHash('sha256').update(s).digest();

function presentedKey(authorization: string | undefined): string | undefined {
  const bearer = credentialsOf(authorization, 'Bearer');
  if (bearer !== undefined) return bearer;
  const basic = credentialsOf(authorization, 'Basic');
  if (basic === undefined) return undefined;
  const decoded = Buffer.from(basic, 'base64').toString('utf8');
  return decoded.slice(decoded.indexOf(':') + 1);
}

export interface AdminRoutesOptions {
  queues: readonly Queue[];
  /** ADMIN_API_KEY; undefined: no key, and the UI is served only when open. */
  adminKey: string | undefined;
  /** Serve the UI without a key (emulator mode). */
  open: boolean;
}

export const adminRoutes: FastifyPluginAsync<AdminRoutesOptions> = async (app, opts) => {
  if (!opts.adminKey && !opts.open) return;
  const expected = opts.adminKey ? digest(opts.adminKey) : undefined;
  const serverAdapter = new FastifyAdapter();
  serverAdapter.setBasePath(ADMIN_PATH);
  createBullBoard({ queues: opts.queues.map((q) => new BullMQAdapter(q)), serverAdapter });
  app.register(async (scope) => {
    if (expected) {
      scope.addHook('onRequest', async (request, reply) => {
        const key = presentedKey(request.headers.authorization);
        if (key !== undefined && timingSafeEqual(digest(key), expected)) return;
        reply.header('www-authenticate', 'Basic realm="rbm-dispatch admin"');
        return sendCode(reply, 'UNAUTHENTICATED', 'expected the admin key (ADMIN_API_KEY) as Bearer, or as the password of HTTP Basic');
      });
    }
    await scope.register(serverAdapter.registerPlugin(), { prefix: ADMIN_PATH });
  });
};
