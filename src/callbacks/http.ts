/**
 * The callback POST: undici's request over an Agent of our own (a keep-alive
 * pool per receiver origin), bounded by the callback timeout. Every connect
 * goes through the egress guard, so a name that resolves to a private,
 * loopback or metadata address by the time we call it (DNS rebinding) is
 * refused (UrlForbiddenError) before a byte is sent. Redirects are not
 * followed (undici's request never does without a redirect interceptor): a
 * signed body goes only where the producer said.
 */
import { Agent, request } from 'undici';
import { guardedConnector } from '../egress/connector.ts';
import type { EgressGuard } from '../egress/guard.ts';
import type { CallbackPost } from '../handlers/deliver-callback.ts';

export interface CallbackClient {
  post: CallbackPost;
  close(): Promise<void>;
}

export function createCallbackClient(timeoutMs: number, egress: EgressGuard): CallbackClient {
  const dispatcher = new Agent({ connect: guardedConnector(egress, { timeoutMs }) });
  let closing: Promise<void> | undefined;
  return {
    async post(url, body, headers) {
      const res = await request(url, {
        dispatcher,
        method: 'POST',
        body,
        headers,
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
        signal: AbortSignal.timeout(timeoutMs),
      });
      // The answer's body means nothing here; read it so the socket is reused.
      await res.body.dump();
      return res.statusCode;
    },
    // Shutdown paths may close twice; undici rejects a second close.
    close: () => (closing ??= dispatcher.close()),
  };
}
