// Strict parsing of the address forms a config may hold. Everything an operator writes
// is read one way only: "127.1", "010.0.0.1" or "0x7f.0.0.1" mean different things to
// different tools, so they are refused rather than guessed at.
import ipaddr from "ipaddr.js";
import { count } from "./describe.ts";

export type Family = 4 | 6;

export interface HostPort {
  /** IP literal (no brackets) or host name; "" for all interfaces. */
  readonly host: string;
  readonly port: number;
  /** 4 or 6 for an IP literal; undefined for a host name or all interfaces. */
  readonly family: Family | undefined;
}

export interface Cidr {
  readonly family: Family;
  readonly address: ipaddr.IPv4 | ipaddr.IPv6;
  readonly prefix: number;
  /** Canonical text, e.g. "10.0.0.0/8" or "2001:db8::/32". */
  readonly text: string;
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

const ok = <T>(value: T): Parsed<T> => ({ ok: true, value });
const fail = <T>(error: string): Parsed<T> => ({ ok: false, error });

// RFC 1123 labels, plus "_": container and compose service names use it and resolvers accept it.
const HOST_NAME =
  /^(?=.{1,253}$)[a-zA-Z0-9_](?:[a-zA-Z0-9_-]{0,61}[a-zA-Z0-9_])?(?:\.[a-zA-Z0-9_](?:[a-zA-Z0-9_-]{0,61}[a-zA-Z0-9_])?)*$/;

export function parseIPv4(text: string): Parsed<ipaddr.IPv4> {
  const problem = ipv4Problem(text);
  return problem ? fail(`"${text}" is not an IPv4 address (${problem})`) : ok(ipaddr.IPv4.parse(text));
}

/** Why text is not a canonical dotted-quad, or undefined when it is one. */
function ipv4Problem(text: string): string | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) {
    return `it has ${count(parts.length, "part")}; write all four, a.b.c.d`;
  }
  for (const part of parts) {
    if (part === "") return "a part is empty";
    if (!/^[0-9]+$/.test(part)) return `"${part}" is not a decimal number`;
    if (part.length > 1 && part.startsWith("0")) return `"${part}" has a leading zero, which some tools read as octal`;
    if (Number(part) > 255) return `"${part}" is more than 255`;
  }
  return undefined;
}

/**
 * A host whose last label is a number ("127.1", "0x7f.0.0.1", "10") is an IPv4 address to
 * every resolver (the WHATWG URL rule), so it must be a canonical one, never a host name.
 */
function looksLikeIPv4(host: string): boolean {
  const last = host.split(".").at(-1) ?? "";
  return /^(?:[0-9]+|0[xX][0-9a-fA-F]*)$/.test(last);
}

export function parseIPv6(text: string): Parsed<ipaddr.IPv6> {
  if (text.includes("%")) return fail(`"${text}": IPv6 zone ids are not supported`);
  if (!ipaddr.IPv6.isValid(text)) return fail(`"${text}" is not an IPv6 address`);
  const address = ipaddr.IPv6.parse(text);
  // "::a.b.c.d" (IPv4-compatible, deprecated by RFC 4291) is ::ffff:a.b.c.d to ipaddr.js
  // but another address to the kernel: ambiguous, so refused like an octal IPv4.
  const compatible = /^::((?:[0-9]+\.){3}[0-9]+)$/.exec(text)?.[1];
  if (compatible !== undefined) {
    const hex = address.parts.slice(6).map((part) => part.toString(16));
    return fail(
      `"${text}" is a deprecated IPv4-compatible address that tools read differently: write ::ffff:${compatible} for the IPv4 address, or ::${hex.join(":")}`,
    );
  }
  // An embedded IPv4 tail ("::ffff:1.2.3.4") must obey the same strict rules.
  const tail = /([0-9.]+)$/.exec(text)?.[1];
  if (tail?.includes(".")) {
    const v4 = parseIPv4(tail);
    if (!v4.ok) return fail(`"${text}": ${v4.error}`);
  }
  return ok(address);
}

/** An IP literal of either family: IPv4 when it has dots and no colon. */
export function parseIP(text: string): Parsed<ipaddr.IPv4 | ipaddr.IPv6> {
  if (text.includes(":")) return parseIPv6(text);
  if (looksLikeIPv4(text)) return parseIPv4(text);
  return fail(`"${text}" is not an IP address`);
}

function parsePort(text: string, whole: string): Parsed<number> {
  if (!/^[0-9]{1,5}$/.test(text)) return fail(`"${whole}": port must be a number from 1 to 65535`);
  const port = Number(text);
  if (port < 1 || port > 65535) return fail(`"${whole}": port must be from 1 to 65535`);
  return ok(port);
}

function splitHostPort(text: string): Parsed<{ host: string; port: string; bracketed: boolean }> {
  if (text.startsWith("[")) {
    const close = text.indexOf("]");
    if (close < 0 || text[close + 1] !== ":") {
      return fail(`"${text}" must be "[ipv6]:port"`);
    }
    return ok({ host: text.slice(1, close), port: text.slice(close + 2), bracketed: true });
  }
  const colon = text.lastIndexOf(":");
  if (colon < 0) return fail(`"${text}" must be "host:port"`);
  const host = text.slice(0, colon);
  if (host.includes(":")) return fail(`"${text}": write IPv6 addresses in brackets, "[${host}]:port"`);
  return ok({ host, port: text.slice(colon + 1), bracketed: false });
}

/**
 * A listen address: "ip:port", "[ipv6]:port" or ":port" (all interfaces).
 * Only IP literals: a listener binds before any name could be trusted to resolve.
 */
export function parseListenAddress(text: string): Parsed<HostPort> {
  const split = splitHostPort(text);
  if (!split.ok) return split;
  const port = parsePort(split.value.port, text);
  if (!port.ok) return port;
  const { host, bracketed } = split.value;
  if (host === "" && !bracketed) return ok({ host: "", port: port.value, family: undefined });
  if (!bracketed && !looksLikeIPv4(host)) {
    return fail(`"${text}": a listen address must be an IP address or ":port", not a host name`);
  }
  const ip = bracketed ? parseIPv6(host) : parseIPv4(host);
  return ip.ok ? ok(ipHostPort(ip.value, port.value)) : ip;
}

/**
 * One form per address, so that equal addresses compare equal: "::ffff:127.0.0.1" is
 * 127.0.0.1 to the kernel (binding both fails), so it is written and compared as IPv4.
 */
function ipHostPort(ip: ipaddr.IPv4 | ipaddr.IPv6, port: number): HostPort {
  if (ip instanceof ipaddr.IPv6 && ip.isIPv4MappedAddress()) {
    return { host: ip.toIPv4Address().toString(), port, family: 4 };
  }
  return { host: ip.toString(), port, family: ip.kind() === "ipv4" ? 4 : 6 };
}

/** A target address: "ip:port", "[ipv6]:port" or "host.name:port" (resolved at connect time). */
export function parseTargetAddress(text: string): Parsed<HostPort> {
  const split = splitHostPort(text);
  if (!split.ok) return split;
  const port = parsePort(split.value.port, text);
  if (!port.ok) return port;
  const { host, bracketed } = split.value;
  if (bracketed || looksLikeIPv4(host)) {
    const ip = bracketed ? parseIPv6(host) : parseIPv4(host);
    return ip.ok ? ok(ipHostPort(ip.value, port.value)) : ip;
  }
  if (host === "") return fail(`"${text}": a target needs a host before the port`);
  if (!HOST_NAME.test(host)) return fail(`"${text}": "${host}" is neither an IP address nor a host name`);
  return ok({ host: host.toLowerCase(), port: port.value, family: undefined });
}

/** A CIDR ("10.0.0.0/8") or a single address ("10.1.2.3" = /32, "::1" = /128). */
export function parseCidr(text: string): Parsed<Cidr> {
  const slash = text.indexOf("/");
  const addressText = slash < 0 ? text : text.slice(0, slash);
  const ip = parseIP(addressText);
  if (!ip.ok) return ip;
  const family: Family = ip.value.kind() === "ipv4" ? 4 : 6;
  const max = family === 4 ? 32 : 128;
  let prefix = max;
  if (slash >= 0) {
    const prefixText = text.slice(slash + 1);
    if (!/^(?:0|[1-9][0-9]{0,2})$/.test(prefixText) || Number(prefixText) > max) {
      return fail(`"${text}": prefix length must be a number from 0 to ${max}`);
    }
    prefix = Number(prefixText);
  }
  const network = networkOf(ip.value, prefix);
  if (network.toString() !== ip.value.toString()) {
    return fail(`"${text}" has host bits set (did you mean ${network.toString()}/${prefix}?)`);
  }
  return ok({ family, address: ip.value, prefix, text: `${ip.value.toString()}/${prefix}` });
}

/**
 * The IPv4 range an entry stands for: an IPv4 CIDR, or one written in the IPv4-mapped
 * form ("::ffff:10.1.2.3", as a dual-stack socket, and our own bridge log, print IPv4
 * clients). Clients are matched as IPv4 once unmapped, so a mapped entry kept as IPv6
 * could never match anyone: a deny rule copied from a log line would silently do nothing.
 */
export function ipv4Range(cidr: Cidr): { address: number; prefix: number } | undefined {
  const asNumber = (ip: ipaddr.IPv4) => ip.octets.reduce((n, octet) => n * 256 + octet, 0);
  if (cidr.family === 4) return { address: asNumber(cidr.address as ipaddr.IPv4), prefix: cidr.prefix };
  const address = cidr.address as ipaddr.IPv6;
  if (cidr.prefix < 96 || !address.isIPv4MappedAddress()) return undefined;
  return { address: asNumber(address.toIPv4Address()), prefix: cidr.prefix - 96 };
}

function networkOf(ip: ipaddr.IPv4 | ipaddr.IPv6, prefix: number): ipaddr.IPv4 | ipaddr.IPv6 {
  const bytes = ip.toByteArray();
  for (let i = 0; i < bytes.length; i++) {
    const keep = Math.max(0, Math.min(8, prefix - i * 8));
    bytes[i] = (bytes[i] ?? 0) & ((0xff << (8 - keep)) & 0xff);
  }
  return ipaddr.fromByteArray(bytes);
}

export function formatHostPort(hp: HostPort): string {
  if (hp.host === "") return `:${hp.port}`;
  return hp.family === 6 ? `[${hp.host}]:${hp.port}` : `${hp.host}:${hp.port}`;
}
