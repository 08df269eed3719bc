// The PROXY protocol header (haproxy's proxy-protocol.txt), sent to a target before any
// client byte so that it sees the real client address instead of tcpgate's.
import ipaddr from "ipaddr.js";

export interface Endpoints {
  /** The client's address and port. */
  readonly sourceAddress: string;
  readonly sourcePort: number;
  /** The address and port the client connected to (tcpgate's listening side). */
  readonly destinationAddress: string;
  readonly destinationPort: number;
}

const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const V2_PROXY_COMMAND = 0x21; // version 2, command PROXY
const V2_LOCAL_COMMAND = 0x20; // version 2, command LOCAL: "no address to give"
const V2_TCP4 = 0x11;
const V2_TCP6 = 0x21;

/**
 * Both ends as one family: a dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d.
 * Undefined when the endpoints are unknown (a balancer's LOCAL connection) or unusable.
 */
function addresses(
  endpoints: Endpoints | undefined,
): [ipaddr.IPv4, ipaddr.IPv4] | [ipaddr.IPv6, ipaddr.IPv6] | undefined {
  if (!endpoints) return undefined;
  if (!ipaddr.isValid(endpoints.sourceAddress) || !ipaddr.isValid(endpoints.destinationAddress)) return undefined;
  const source = ipaddr.process(endpoints.sourceAddress);
  const destination = ipaddr.process(endpoints.destinationAddress);
  if (source.kind() === "ipv4" && destination.kind() === "ipv4")
    return [source as ipaddr.IPv4, destination as ipaddr.IPv4];
  const six = (a: ipaddr.IPv4 | ipaddr.IPv6) =>
    a.kind() === "ipv4" ? (a as ipaddr.IPv4).toIPv4MappedAddress() : (a as ipaddr.IPv6);
  return [six(source), six(destination)];
}

/** "PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\r\n"; "PROXY UNKNOWN\r\n" without endpoints. */
export function proxyHeaderV1(endpoints: Endpoints | undefined): Buffer {
  const pair = addresses(endpoints);
  if (!pair || !endpoints) return Buffer.from("PROXY UNKNOWN\r\n", "latin1");
  const family = pair[0].kind() === "ipv4" ? "TCP4" : "TCP6";
  const line = `PROXY ${family} ${pair[0].toString()} ${pair[1].toString()} ${endpoints.sourcePort} ${endpoints.destinationPort}\r\n`;
  return Buffer.from(line, "latin1");
}

/** The binary form: signature, version and command, family, length, then the addresses; LOCAL without endpoints. */
export function proxyHeaderV2(endpoints: Endpoints | undefined): Buffer {
  const pair = addresses(endpoints);
  if (!pair || !endpoints) return Buffer.concat([V2_SIGNATURE, Buffer.from([V2_LOCAL_COMMAND, 0x00, 0x00, 0x00])]);
  const [source, destination] = pair;
  const v4 = source.kind() === "ipv4";
  const addressLength = v4 ? 4 : 16;
  const header = Buffer.alloc(16 + addressLength * 2 + 4);
  V2_SIGNATURE.copy(header, 0);
  header[12] = V2_PROXY_COMMAND;
  header[13] = v4 ? V2_TCP4 : V2_TCP6;
  header.writeUInt16BE(addressLength * 2 + 4, 14);
  header.set(source.toByteArray(), 16);
  header.set(destination.toByteArray(), 16 + addressLength);
  header.writeUInt16BE(endpoints.sourcePort, 16 + addressLength * 2);
  header.writeUInt16BE(endpoints.destinationPort, 18 + addressLength * 2);
  return header;
}
