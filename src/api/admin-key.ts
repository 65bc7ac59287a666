/**
 * The admin key's check, for the routes an API key must never reach (the
 * agent directory, a subscriber's erase): ADMIN_API_KEY as Bearer, compared
 * in constant time as SHA-256 digests. Without an admin key the routes are
 * open only in emulator mode. An API key presented here is refused as
 * FORBIDDEN (it is a key, just not this one), anything else UNAUTHENTICATED.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { credentialsOf } from '../authorization.ts';
import { sendCode } from './errors.ts';

export interface AdminKeyOptions {
  /** ADMIN_API_KEY; undefined: no key, and the routes answer only when open. */
  adminKey: string | undefined;
  /** No admin key needed (emulator mode). */
  open: boolean;
  /** The API keys, told apart from a wrong key in the refusal. */
  apiKeys: readonly string[];
}

const digest = (s: string) => createHash('sha256').update(s).digest();

/** Who passed: 'admin-key', or 'open' (emulator mode without a key); undefined when refused (the answer is sent). */
export type AdminCheck = (request: FastifyRequest, reply: FastifyReply, what: string) => 'admin-key' | 'open' | undefined;

export function adminKeyCheck(opts: AdminKeyOptions): AdminCheck {
  const admin = opts.adminKey ? digest(opts.adminKey) : undefined;
  const apiKeys = opts.apiKeys.map(digest);
  return (request, reply, what) => {
    const key = credentialsOf(request.headers.authorization, 'Bearer');
    const presented = key === undefined ? undefined : digest(key);
    if (admin !== undefined && presented !== undefined && timingSafeEqual(presented, admin)) return 'admin-key';
    if (admin === undefined && opts.open) return 'open';
    if (presented && apiKeys.some((k) => timingSafeEqual(k, presented))) {
      sendCode(reply, 'FORBIDDEN', `${what} needs the admin key (ADMIN_API_KEY), not an API key`);
    } else {
      sendCode(reply, 'UNAUTHENTICATED', 'expected the admin key (ADMIN_API_KEY) as Bearer');
    }
    return undefined;
  };
}
