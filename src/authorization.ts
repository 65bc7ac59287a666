/**
 * Reading an Authorization header: the scheme is matched case-insensitively,
 * as RFC 7235 says ("bearer KEY", "BEARER KEY", "Bearer KEY" are one), with
 * one or more spaces before the credentials. Shared by the API keys, the
 * admin UI and the emulator's own checks.
 */

// RFC 7230 tchar: what an auth-scheme token is made of.
const HEADER = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+) +(\S(?:.*\S)?) *$/;

/** The credentials under `scheme`; undefined for another scheme, or no header. */
export function credentialsOf(header: string | undefined, scheme: 'Bearer' | 'Basic'): string | undefined {
  const match = HEADER.exec(header ?? '');
  return match && match[1]!.toLowerCase() === scheme.toLowerCase() ? match[2] : undefined;
}
