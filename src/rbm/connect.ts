/**
 * Builds the process's one RBM client from config: the key file's service
 * account through google-auth-library, against Google's endpoint or the
 * emulator (whose key file points token_uri at itself).
 */
import type { Config } from '../config.ts';
import { concurrencyFor } from '../config.ts';
import type { Logger } from '../handlers/types.ts';
import { createTokenSource, loadServiceAccountKey, type TokenEvent } from './auth.ts';
import { RbmClient } from './client.ts';

export interface RbmHooks {
  log?: Logger;
  /** Token requests and 401s, for the service's counters. */
  onTokenEvent?: (event: TokenEvent) => void;
}

export async function connectRbm(
  config: Readonly<Config>,
  target: { baseUrl: string; keyFile: string },
  hooks: RbmHooks = {},
): Promise<RbmClient> {
  const key = await loadServiceAccountKey(target.keyFile);
  // One socket per request in flight across all agents, so no request waits for a socket.
  const connections = config.agents.reduce((sum, a) => sum + concurrencyFor(config, a), 0);
  return new RbmClient({
    baseUrl: target.baseUrl,
    tokens: createTokenSource(key, {
      timeoutMs: config.dispatch.requestTimeoutMs,
      ...(hooks.log ? { log: hooks.log } : {}),
      ...(hooks.onTokenEvent ? { onEvent: hooks.onTokenEvent } : {}),
    }),
    connections,
    timeoutMs: config.dispatch.requestTimeoutMs,
    fastRetries: config.dispatch.fastRetries,
  });
}
