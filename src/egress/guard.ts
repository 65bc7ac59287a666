/**
 * The egress guard: whether a request to a URL a user gave (a status
 * callback, an SMS webhook) may go where the URL leads. Refused: schemes
 * other than http(s), user:password@ in the URL, cloud metadata host names,
 * and hosts that are or resolve to loopback, private, shared (CGNAT),
 * link-local, unique-local, multicast, unspecified, broadcast, reserved or
 * metadata addresses (addresses.ts), in every spelling the WHATWG URL
 * parser turns into one (2130706433, 0x7f000001, 0177.0.0.1, 127.1, [::1],
 * [::ffff:127.0.0.1] all are 127.0.0.1, and undici connects by that parser).
 *
 * Opened by the operator: the hosts and subnets of CALLBACK_ALLOW_HOSTS, and
 * loopback in emulator mode. Metadata endpoints are never opened: no callback
 * receiver lives there, and a broad allowlist (169.254.0.0/16) must not
 * expose them.
 *
 * Checked twice: when the URL is given (check(): a clear 400), and at every
 * connect (lookup, used by connector.ts), since a name may resolve elsewhere
 * by then (DNS rebinding).
 */
import { lookup as dnsLookup } from 'node:dns/promises';
import { BlockList, isIP, type LookupFunction } from 'node:net';
import { ErrorCodes, UrlForbiddenError } from '../errors.ts';
import { blockedAddress, describeBlocked, effectiveAddress } from './addresses.ts';

/** One entry of CALLBACK_ALLOW_HOSTS: a subnet (a bare address is a /32 or /128) or a host name. */
export type AllowEntry = { kind: 'subnet'; address: string; prefix: number; family: 'ipv4' | 'ipv6' } | { kind: 'host'; name: string };

export interface EgressPolicy {
  /** CALLBACK_ALLOW_HOSTS: what the operator opened. */
  allow: readonly AllowEntry[];
  /** Loopback is reachable: emulator mode, where every part runs on this machine. */
  allowLoopback: boolean;
}

/** Every address a host name resolves to; rejects when it resolves to none. dns.lookup's answer shape. */
export type ResolveHost = (host: string) => Promise<ReadonlyArray<{ address: string; family: number }>>;

export interface UrlRefusal {
  code: typeof ErrorCodes.URL_FORBIDDEN | typeof ErrorCodes.URL_UNRESOLVABLE;
  /** For a Problem: says what came and what was expected, never the URL's path or query. */
  reason: string;
}

/** A name resolved when a URL is given must answer within this; getaddrinfo cannot be cancelled, only outwaited. */
export const RESOLVE_TIMEOUT_MS = 2000;

/**
 * How long a name's verdict is kept for check(): every send with a callbackUrl
 * asks, and most ask about the same few hosts. The connect-time lookup never
 * uses it, so a name that moves since is still caught there.
 */
const VERDICT_TTL_MS = 10_000;
const VERDICTS_KEPT = 1000;

/** Host names of cloud metadata services, wherever they resolve. */
const METADATA_HOSTS = new Set(['metadata', 'metadata.google.internal', 'metadata.goog', 'instance-data', 'instance-data.ec2.internal']);

const OPEN_HINT = 'expected a public address (an operator may open chosen private hosts with CALLBACK_ALLOW_HOSTS)';

/** 'Hooks.Example.' and 'hooks.example' are one host. */
const normalHost = (host: string) => host.toLowerCase().replace(/\.$/, '');

const systemResolve: ResolveHost = (host) => dnsLookup(host, { all: true, verbatim: true });

export class EgressGuard {
  private readonly subnets = new BlockList();
  private readonly hosts: ReadonlySet<string>;
  private readonly resolveHost: ResolveHost;
  private readonly timeoutMs: number;
  private readonly verdicts = new Map<string, { refusal: UrlRefusal | undefined; until: number }>();

  constructor(
    private readonly policy: EgressPolicy,
    options: { resolve?: ResolveHost; resolveTimeoutMs?: number } = {},
  ) {
    const hosts = new Set<string>();
    for (const entry of policy.allow) {
      if (entry.kind === 'host') hosts.add(normalHost(entry.name));
      else this.subnets.addSubnet(entry.address, entry.prefix, entry.family);
    }
    this.hosts = hosts;
    this.resolveHost = options.resolve ?? systemResolve;
    this.timeoutMs = options.resolveTimeoutMs ?? RESOLVE_TIMEOUT_MS;
  }

  /**
   * Why connecting to `address` is refused (for a Problem or an error:
   * "a loopback address (127.0.0.1)"); undefined when it is allowed.
   * `host`: the name it was resolved from, which CALLBACK_ALLOW_HOSTS may open.
   */
  refusalOf(address: string, host?: string): string | undefined {
    const blocked = blockedAddress(address);
    if (!blocked) return undefined;
    const what = describeBlocked(blocked);
    if (blocked.kind === 'metadata') return `${what}, which is never reachable`;
    if (host !== undefined && this.hosts.has(normalHost(host))) return undefined;
    if (blocked.kind === 'loopback' && this.policy.allowLoopback) return undefined;
    if (this.subnets.check(blocked.address, blocked.family)) return undefined;
    // An allowlisted IPv6 subnet opens its own addresses even when they carry an IPv4 one (6to4).
    if (blocked.via !== undefined && this.subnets.check(blocked.via, 'ipv6')) return undefined;
    return what;
  }

  /**
   * What can be said without DNS: the scheme, user:password@, a metadata
   * name, a literal address. Otherwise the host name still to resolve.
   */
  inspect(raw: string): { refusal: UrlRefusal } | { host: string; literal: boolean } {
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      return forbidden('expected an http:// or https:// URL, got text that does not parse as one');
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return forbidden(`expected an http:// or https:// URL, got ${url.protocol}`);
    if (url.username !== '' || url.password !== '') {
      return forbidden('expected a URL without user:password@ (a receiver that needs a secret can take it in the path or query)');
    }
    const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
    if (isIP(host) !== 0) {
      const refused = this.refusalOf(host);
      return refused ? forbidden(`${url.hostname} is ${refused}; ${OPEN_HINT}`) : { host, literal: true };
    }
    if (METADATA_HOSTS.has(normalHost(host))) return forbidden(`${host} names a cloud metadata service, which is never reachable`);
    return { host, literal: false };
  }

  /** The whole check of a URL when it is given: inspect(), then every address its host resolves to (within RESOLVE_TIMEOUT_MS). */
  async check(raw: string): Promise<UrlRefusal | undefined> {
    const inspected = this.inspect(raw);
    if ('refusal' in inspected) return inspected.refusal;
    if (inspected.literal) return undefined;
    const { host } = inspected;
    const key = normalHost(host);
    const known = this.verdicts.get(key);
    if (known && known.until > Date.now()) return known.refusal;
    let addresses: ReadonlyArray<{ address: string }>;
    try {
      addresses = await this.resolve(host);
    } catch (err) {
      const why = (err as { code?: string }).code ?? (err as Error).message;
      return {
        code: ErrorCodes.URL_UNRESOLVABLE,
        reason: `expected a host name that resolves, got ${host}, which did not (${why}); try again once it does`,
      };
    }
    let refusal: UrlRefusal | undefined;
    for (const { address } of addresses) {
      const refused = this.refusalOf(address, host);
      if (refused) {
        refusal = forbidden(`${host} resolves to ${refused}; ${OPEN_HINT}`).refusal;
        break;
      }
    }
    // A name that did not resolve is not remembered: it may resolve on the caller's retry.
    if (this.verdicts.size >= VERDICTS_KEPT) this.verdicts.clear();
    this.verdicts.set(key, { refusal, until: Date.now() + VERDICT_TTL_MS });
    return refusal;
  }

  /**
   * A refusal for a literal address undici is about to connect to (net.connect
   * skips lookup for those); undefined when allowed or not a literal.
   */
  connectRefusal(hostname: string): UrlForbiddenError | undefined {
    if (isIP(hostname) === 0) return undefined;
    const refused = this.refusalOf(hostname);
    return refused ? new UrlForbiddenError(hostname, `is ${refused}`) : undefined;
  }

  /**
   * dns.lookup for net/tls connect: resolves the name, and fails the
   * connection (UrlForbiddenError) when any of its addresses is refused, so
   * the socket can never pick the bad one.
   */
  readonly lookup: LookupFunction = (hostname, options, callback) => {
    const family = options.family === 4 || options.family === 'IPv4' ? 4 : options.family === 6 || options.family === 'IPv6' ? 6 : 0;
    this.resolve(hostname).then(
      (answers) => {
        for (const { address } of answers) {
          const refused = this.refusalOf(address, hostname);
          if (refused) return callback(new UrlForbiddenError(hostname, `resolves to ${refused}`), '');
        }
        const usable = answers.filter((a) => family === 0 || a.family === family).map((a) => ({ address: a.address, family: a.family }));
        if (usable.length === 0)
          return callback(Object.assign(new Error(`${hostname} has no IPv${family} address`), { code: 'ENOTFOUND' }), '');
        if (options.all) return callback(null, usable);
        return callback(null, usable[0]!.address, usable[0]!.family);
      },
      (err: NodeJS.ErrnoException) => callback(err, ''),
    );
  };

  /** The host's addresses within the timeout; none is an error, as getaddrinfo's ENOTFOUND. */
  private async resolve(host: string): Promise<ReadonlyArray<{ address: string; family: number }>> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(Object.assign(new Error(`no answer within ${this.timeoutMs} ms`), { code: 'ETIMEOUT' })),
        this.timeoutMs,
      );
    });
    try {
      const answers = await Promise.race([this.resolveHost(host), late]);
      if (answers.length === 0) throw Object.assign(new Error(`${host} has no address`), { code: 'ENOTFOUND' });
      // Effective addresses are what refusalOf judges; a malformed answer is a resolver bug, reported as such.
      for (const a of answers) effectiveAddress(a.address);
      return answers;
    } finally {
      clearTimeout(timer);
    }
  }
}

function forbidden(reason: string): { refusal: UrlRefusal } {
  return { refusal: { code: ErrorCodes.URL_FORBIDDEN, reason } };
}
