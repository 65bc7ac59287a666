/**
 * What an IP address is, for the egress guard: the special-purpose ranges
 * (IANA's registries, RFC 6890) that a request to a user's URL must not
 * reach, each named the way a refusal says it. An IPv6 form that carries an
 * IPv4 address (mapped, compatible, SIIT, NAT64 64:ff9b::/96, 6to4) is judged
 * by the IPv4 address inside, because that is where the packet ends up:
 * [::ffff:7f00:1] is 127.0.0.1, and a NAT64 gateway forwards 64:ff9b::a00:1
 * to 10.0.0.1.
 */
import { BlockList, isIP } from 'node:net';

export type Family = 'ipv4' | 'ipv6';

/** How each kind reads in a refusal: "resolves to a loopback address (127.0.0.1)". */
export const AddressKinds = {
  metadata: 'a cloud metadata address',
  unspecified: 'an unspecified address',
  loopback: 'a loopback address',
  private: 'a private address',
  shared: 'a shared (carrier-grade NAT) address',
  linkLocal: 'a link-local address',
  uniqueLocal: 'a unique-local address',
  multicast: 'a multicast address',
  broadcast: 'a broadcast address',
  reserved: 'a reserved address',
} as const;
export type AddressKind = keyof typeof AddressKinds;

/**
 * First match wins, so the metadata endpoints (inside link-local and
 * unique-local ranges) are named for what they are.
 */
const RANGES: ReadonlyArray<readonly [AddressKind, readonly string[]]> = [
  // AWS, GCP, Azure, OpenStack IMDS; AWS ECS task metadata; Alibaba; Azure WireServer; Oracle's legacy one; AWS and GCP over IPv6.
  [
    'metadata',
    [
      '169.254.169.254/32',
      '169.254.170.2/32',
      '100.100.100.200/32',
      '168.63.129.16/32',
      '192.0.0.192/32',
      'fd00:ec2::254/128',
      'fd20:ce::254/128',
    ],
  ],
  // 0.0.0.0/8 "this network": Linux connects 0.0.0.0 to the local host.
  ['unspecified', ['0.0.0.0/8', '::/128']],
  ['loopback', ['127.0.0.0/8', '::1/128']],
  // RFC 1918; local-use NAT64 (RFC 8215) and deprecated site-local IPv6 lead into private networks too.
  ['private', ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '64:ff9b:1::/48', 'fec0::/10']],
  ['shared', ['100.64.0.0/10']],
  ['linkLocal', ['169.254.0.0/16', 'fe80::/10']],
  ['uniqueLocal', ['fc00::/7']],
  ['multicast', ['224.0.0.0/4', 'ff00::/8']],
  ['broadcast', ['255.255.255.255/32']],
  // IETF protocol assignments, documentation, 6to4 relay anycast, benchmarking, class E;
  // IPv6 discard, Teredo (its client address is obfuscated: no receiver of ours lives there), documentation.
  [
    'reserved',
    [
      '192.0.0.0/24',
      '192.0.2.0/24',
      '192.88.99.0/24',
      '198.18.0.0/15',
      '198.51.100.0/24',
      '203.0.113.0/24',
      '240.0.0.0/4',
      '100::/64',
      '2001::/32',
      '2001:db8::/32',
    ],
  ],
];

/** Parses "a.b.c.d/n" or "x::/n" into what BlockList.addSubnet takes. */
export function subnetOf(cidr: string): { address: string; prefix: number; family: Family } | undefined {
  const slash = cidr.lastIndexOf('/');
  const address = slash < 0 ? cidr : cidr.slice(0, slash);
  const version = isIP(address);
  if (version === 0) return undefined;
  const max = version === 4 ? 32 : 128;
  const prefixText = slash < 0 ? String(max) : cidr.slice(slash + 1);
  const prefix = Number(prefixText);
  if (!/^\d{1,3}$/.test(prefixText) || prefix > max) return undefined;
  return { address, prefix, family: version === 4 ? 'ipv4' : 'ipv6' };
}

const LISTS: ReadonlyArray<readonly [AddressKind, BlockList]> = RANGES.map(([kind, cidrs]) => {
  const list = new BlockList();
  for (const cidr of cidrs) {
    const s = subnetOf(cidr)!;
    list.addSubnet(s.address, s.prefix, s.family);
  }
  return [kind, list] as const;
});

/** The eight 16-bit groups of an IPv6 address, via the WHATWG serializer (compressed, lowercase, no dotted quad). */
function groupsOf(v6: string): number[] {
  const canonical = new URL(`http://[${v6}]/`).hostname.slice(1, -1);
  const [head = '', tail] = canonical.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const fill: string[] = tail === undefined ? [] : new Array<string>(8 - h.length - t.length).fill('0');
  return [...h, ...fill, ...t].map((g) => parseInt(g, 16));
}

const dotted = (hi: number, lo: number) => `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;

/** The IPv4 address an IPv6 form carries to its destination, if it is such a form. */
function embeddedIpv4(g: number[]): string | undefined {
  const zeros = (from: number, to: number) => g.slice(from, to).every((x) => x === 0);
  const last = dotted(g[6]!, g[7]!);
  if (zeros(0, 5) && g[5] === 0xffff) return last; // ::ffff:a.b.c.d, IPv4-mapped
  if (zeros(0, 4) && g[4] === 0xffff && g[5] === 0) return last; // ::ffff:0:a.b.c.d, SIIT
  if (g[0] === 0x64 && g[1] === 0xff9b && zeros(2, 6)) return last; // 64:ff9b::a.b.c.d, NAT64 well-known prefix
  if (g[0] === 0x2002) return dotted(g[1]!, g[2]!); // 2002:AABB:CCDD::/48, 6to4
  if (zeros(0, 6) && !(g[6] === 0 && g[7]! <= 1)) return last; // ::a.b.c.d, IPv4-compatible (not :: nor ::1)
  return undefined;
}

/** The address a connection really reaches: the IPv4 one inside an IPv6 form, else the address itself. */
export interface Effective {
  address: string;
  family: Family;
  /** The IPv6 form it came in, when it carried an IPv4 address. */
  via?: string;
}

export function effectiveAddress(ip: string): Effective {
  // A scope ID (fe80::1%eth0) names an interface, not an address.
  const bare = ip.replace(/%.*$/, '');
  const version = isIP(bare);
  if (version === 4) return { address: bare, family: 'ipv4' };
  if (version !== 6) throw new TypeError(`not an IP address: ${ip}`);
  const inner = embeddedIpv4(groupsOf(bare));
  return inner ? { address: inner, family: 'ipv4', via: bare } : { address: bare, family: 'ipv6' };
}

export interface Blocked extends Effective {
  kind: AddressKind;
}

/** The special-purpose kind of an address; undefined for an ordinary public one. */
export function blockedAddress(ip: string): Blocked | undefined {
  const effective = effectiveAddress(ip);
  for (const [kind, list] of LISTS) {
    if (list.check(effective.address, effective.family)) return { ...effective, kind };
  }
  return undefined;
}

/** "a loopback address (127.0.0.1)", "a private address (10.0.0.1, inside 64:ff9b::a00:1)". */
export function describeBlocked(b: Blocked): string {
  return `${AddressKinds[b.kind]} (${b.address}${b.via ? `, inside ${b.via}` : ''})`;
}
