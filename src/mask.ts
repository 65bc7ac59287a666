/**
 * Phone numbers never reach a log, an error message or a status record in
 * full: '+12223334444' → '+1222***4444'. Nor does the password of a URL.
 */
export function maskPhone(e164: string): string {
  if (e164.length <= 8) return `${e164.slice(0, 2)}***`;
  return `${e164.slice(0, 5)}***${e164.slice(-4)}`;
}

/** Masks every E.164-looking number inside a string (URL paths, messages). */
export function maskPhonesIn(text: string): string {
  return text.replace(/\+[1-9]\d{6,14}/g, maskPhone);
}

/**
 * Masks numbers in a request URL as well: '+14155550123' in a path, and
 * '%2B14155550123' as a client encodes the '+' in a query or a path segment.
 */
export function maskPhonesInUrl(url: string): string {
  return url.replace(/(\+|%2B)([1-9]\d{6,14})/gi, (_, plus: string, digits: string) => `${plus}${maskPhone(`+${digits}`).slice(1)}`);
}

/** 'redis://user:secret@host:6379/0' → 'redis://user:***@host:6379/0'; a URL that does not parse is not shown at all. */
export function maskUrlPassword(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(an unparsable URL)';
  }
}
