import ipaddr from "ipaddr.js";

type Range = [ipaddr.IPv4 | ipaddr.IPv6, number];

/**
 * A list of networks (`10.0.0.0/8, 2001:db8::/32, 192.0.2.7`). IPv4-mapped IPv6 addresses
 * (`::ffff:10.1.2.3`, what a dual-stack Node socket reports) match as the IPv4 they carry.
 */
export class AddressList {
  private constructor(
    readonly text: string,
    private readonly ranges: readonly Range[],
  ) {}

  /** Throws an Error naming the entry that is not an address or CIDR. */
  static parse(text: string): AddressList {
    const entries = text.split(/[\s,]+/).filter(Boolean);
    if (entries.length === 0) throw new Error("lists no address");
    const ranges = entries.map((entry): Range => {
      if (ipaddr.isValidCIDR(entry)) {
        const [address, bits] = ipaddr.parseCIDR(entry);
        return address.kind() === "ipv6" && (address as ipaddr.IPv6).isIPv4MappedAddress() && bits >= 96
          ? [(address as ipaddr.IPv6).toIPv4Address(), bits - 96]
          : [address, bits];
      }
      if (ipaddr.isValid(entry)) {
        const address = ipaddr.process(entry);
        return [address, address.kind() === "ipv4" ? 32 : 128];
      }
      throw new Error(`has ${JSON.stringify(entry)}, which is not an IP address or CIDR (like 10.0.0.0/8)`);
    });
    return new AddressList(entries.join(","), ranges);
  }

  /** False for anything that is not a valid address: an unknown client is never let in. */
  contains(address: string | undefined): boolean {
    const parsed = parseAddress(address);
    if (!parsed) return false;
    return this.ranges.some(([network, bits]) => network.kind() === parsed.kind() && parsed.match(network, bits));
  }
}

/** What a client's budgets are kept under: its address; an IPv6 one by its /64, one host's usual share. */
export function clientKey(address: string | undefined): string {
  const parsed = parseAddress(address);
  if (!parsed) return "unknown";
  if (parsed.kind() === "ipv4") return parsed.toString();
  return `${(parsed as ipaddr.IPv6).parts.slice(0, 4).map((part) => part.toString(16)).join(":")}::/64`;
}

function parseAddress(text: string | undefined): ipaddr.IPv4 | ipaddr.IPv6 | undefined {
  if (!text) return undefined;
  const bare = text.trim().replace(/^\[(.*)\]$/, "$1"); // a bracketed IPv6 literal, as some proxies write it
  return ipaddr.isValid(bare) ? ipaddr.process(bare) : undefined;
}

/**
 * The client's address. `X-Forwarded-For` is read only when the peer is a trusted proxy, and
 * from the right: each proxy appends the address it saw, so the rightmost entry that is not a
 * trusted proxy is the first one nobody we trust could have forged.
 */
export function clientAddress(peer: string | undefined, forwardedFor: string | undefined, trusted: AddressList | undefined): string | undefined {
  return trusted?.contains(peer) ? forwardedClient(peer, forwardedFor, trusted) : peer;
}

/** clientAddress for a peer already known to be a trusted proxy. */
export function forwardedClient(peer: string | undefined, forwardedFor: string | undefined, trusted: AddressList): string | undefined {
  if (!forwardedFor) return peer;
  const hops = forwardedFor.split(",").map((hop) => hop.trim());
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = hops[i]!;
    // A hop that is not an address (a forged "unknown", log syntax) makes the client unknown:
    // never allowed by ALLOW_CIDRS, logged as "-", never written into a log line as sent.
    if (!trusted.contains(hop)) return parseAddress(hop)?.toString();
  }
  return parseAddress(hops[0])?.toString() ?? peer; // every hop is a trusted proxy: the first one is where the request came from
}
