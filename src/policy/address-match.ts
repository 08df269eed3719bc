// Allow/deny lists compiled once per config load into per-prefix-length hash maps: a
// lookup costs one map probe per distinct prefix length in the list (a handful in
// practice, at most 33 for IPv4), however many thousand entries the list holds. The
// tables are probed longest prefix first, so the first hit is the most specific entry
// and ends the lookup.
import ipaddr from "ipaddr.js";
import { ipv4Range } from "../config/address.ts";
import type { Rule } from "../config/runtime.ts";

/** A client address, reduced to what matching needs. */
export type ClientAddress =
  | { readonly family: 4; readonly text: string; readonly v4: number }
  | { readonly family: 6; readonly text: string; readonly v6: readonly number[] };

export type RuleList = "allow" | "deny";
export const RULE_LISTS: readonly RuleList[] = ["allow", "deny"];

/** One range of one entry; built once per config load, so a lookup allocates nothing. */
export interface Match {
  readonly list: RuleList;
  /** The entry as written: an acl name or a CIDR. */
  readonly rule: string;
  /** The entry's position in its list: hit counters are an array indexed by it. */
  readonly index: number;
  /** The range inside it that matched. */
  readonly cidr: string;
}

export interface AddressMatcher {
  match(client: ClientAddress): Match | undefined;
  readonly size: number;
}

const MAPPED_PREFIX = "::ffff:";

/**
 * Parses a socket's remoteAddress. IPv4 clients on a dual-stack socket arrive as
 * "::ffff:a.b.c.d" and are matched as the IPv4 address they are (ipaddr.process).
 */
export function parseClientAddress(remote: string): ClientAddress | undefined {
  const dotted = remote.startsWith(MAPPED_PREFIX) && remote.includes(".") ? remote.slice(MAPPED_PREFIX.length) : remote;
  if (!dotted.includes(":")) {
    const v4 = dottedToNumber(dotted);
    return v4 === undefined ? undefined : { family: 4, text: dotted, v4 };
  }
  if (!ipaddr.isValid(remote)) return undefined;
  const address = ipaddr.process(remote);
  if (address.kind() === "ipv4") {
    const text = address.toString();
    return { family: 4, text, v4: dottedToNumber(text) as number };
  }
  return { family: 6, text: address.toString(), v6: (address as ipaddr.IPv6).parts };
}

function dottedToNumber(text: string): number | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  let value = 0;
  for (const part of parts) {
    const octet = Number(part);
    if (part === "" || !Number.isInteger(octet) || octet < 0 || octet > 255) return undefined;
    value = value * 256 + octet;
  }
  return value;
}

/**
 * The most specific entry wins: the longest prefix that holds the client, an acl counting
 * as the range inside it that matched. Between entries of the same range, the first
 * written wins.
 */
export function compileRules(rules: readonly Rule[], list: RuleList): AddressMatcher {
  // Per family: prefix length → masked network → the first entry with that network.
  const v4 = new Map<number, Map<number, Match>>();
  const v6 = new Map<number, Map<string, Match>>();
  let size = 0;
  rules.forEach((rule, index) => {
    for (const cidr of rule.cidrs) {
      const entry: Match = Object.freeze({ list, rule: rule.source, index, cidr: cidr.text });
      size++;
      const asV4 = ipv4Range(cidr);
      if (asV4) {
        const table = v4.get(asV4.prefix) ?? new Map<number, Match>();
        v4.set(asV4.prefix, table);
        const key = maskV4(asV4.address, asV4.prefix);
        if (!table.has(key)) table.set(key, entry);
      } else {
        const table = v6.get(cidr.prefix) ?? new Map<string, Match>();
        v6.set(cidr.prefix, table);
        const key = maskV6((cidr.address as ipaddr.IPv6).parts, cidr.prefix);
        if (!table.has(key)) table.set(key, entry);
      }
    }
  });
  const longestFirst = <K>(tables: Map<number, Map<K, Match>>) => [...tables.entries()].sort(([a], [b]) => b - a);
  const v4Tables = longestFirst(v4);
  const v6Tables = longestFirst(v6);
  return {
    size,
    match(client) {
      if (client.family === 4) {
        for (const [prefix, table] of v4Tables) {
          const found = table.get(maskV4(client.v4, prefix));
          if (found) return found;
        }
      } else {
        for (const [prefix, table] of v6Tables) {
          const found = table.get(maskV6(client.v6, prefix));
          if (found) return found;
        }
      }
      return undefined;
    },
  };
}

function maskV4(address: number, prefix: number): number {
  // A shift by 32 is a no-op in JavaScript, so /0 is its own case. The result has at most
  // `prefix` bits: small integers for most prefixes, which V8's maps hash fastest.
  return prefix === 0 ? 0 : address >>> (32 - prefix);
}

/** The first `prefix` bits of eight 16-bit parts, as a map key. */
function maskV6(parts: readonly number[], prefix: number): string {
  let key = "";
  for (let i = 0; i < 8 && prefix > i * 16; i++) {
    const keep = Math.min(16, prefix - i * 16);
    key += `${((parts[i] ?? 0) >> (16 - keep)).toString(16)}:`;
  }
  return key;
}
