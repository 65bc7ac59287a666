/**
 * undici connectors that ask the egress guard at every connect: a literal
 * address before the socket opens, a name through the guard's lookup (which
 * resolves, then refuses). Give one to an Agent or Pool as `connect`; the
 * refusal (UrlForbiddenError) rejects the request that needed the connection.
 */
import { buildConnector } from 'undici';
import type { EgressGuard } from './guard.ts';

export function guardedConnector(guard: EgressGuard, options: { timeoutMs: number }): buildConnector.connector {
  const connect = buildConnector({ timeout: options.timeoutMs, lookup: guard.lookup });
  return (opts, callback) => {
    const refused = guard.connectRefusal(opts.hostname);
    if (refused) return callback(refused, null);
    return connect(opts, callback);
  };
}
