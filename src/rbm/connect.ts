/**
 * Builds the process's one RBM client from config: the key file's service
 * account through google-auth-library, against Google's endpoint or the
 * emulator (whose key file points token_uri at itself).
 */
import type { Config } from '../config.ts';
import { concurrencyFor } from '../config.ts';
import { createTokenSource, loadServiceAccountKey } from './auth.ts';
import { RbmClient } from './client.ts';

export async function connectRbm(config: Readonly<Config>, target: { baseUrl: string; keyFile: string }): Promise<RbmClient> {
  const key = await loadServiceAccountKey(target.keyFile);
  // One socket per request in flight across all agents, so no request waits for a socket.
  const connections = config.agents.reduce((sum, a) => sum + concurrencyFor(config, a), 0);
  return new RbmClient({
    baseUrl: target.baseUrl,
    tokens: createTokenSource(key),
    connections,
    timeoutMs: config.dispatch.requestTimeoutMs,
    fastRetries: config.dispatch.fastRetries,
  });
}
