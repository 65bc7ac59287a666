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

/** bull-board tells queues apart by name: a name on several lanes (each lane's inbound queue) shows with its lane's prefix. */
function adapters(queues: readonly Queue[]): BullMQAdapter[] {
  const seen = new Map<string, number>();
  for (const q of queues) seen.set(q.name, (seen.get(q.name) ?? 0) + 1);
  return queues.map((q) => new BullMQAdapter(q, (seen.get(q.name) ?? 0) > 1 ? { prefix: `${q.opts.prefix}/` } : {}));
}

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
  /** The service's queues now: agents added or removed at run time show from the next page load. */
  queues: () => readonly Queue[];
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
  let shown = opts.queues();
  const board = createBullBoard({ queues: adapters(shown), serverAdapter });
  // The queues are compared by name at each request (a few hundred string compares), and replaced when the agents changed.
  const follow = () => {
    const now = opts.queues();
    if (now.length === shown.length && now.every((q, i) => q.name === shown[i]!.name && q.opts.prefix === shown[i]!.opts.prefix)) return;
    shown = now;
    board.replaceQueues(adapters(now));
  };
  app.register(async (scope) => {
    scope.addHook('onRequest', async () => follow());
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
