/**
 * The callback POST: undici's request over its global keep-alive pool (one
 * per receiver origin), bounded by the callback timeout. Redirects are not
 * followed: a signed body goes only where the producer said.
 */
import { request } from 'undici';
import type { CallbackPost } from '../handlers/deliver-callback.ts';

export function createCallbackPost(timeoutMs: number): CallbackPost {
  return async (url, body, headers) => {
    const res = await request(url, { method: 'POST', body, headers, headersTimeout: timeoutMs, bodyTimeout: timeoutMs, signal: AbortSignal.timeout(timeoutMs) });
    // The answer's body means nothing here; read it so the socket is reused.
    await res.body.dump();
    return res.statusCode;
  };
}
