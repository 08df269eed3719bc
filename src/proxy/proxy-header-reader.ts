// A strict, streaming reader of the PROXY protocol header a load balancer puts before a
// client's bytes (haproxy's proxy-protocol.txt, versions 1 and 2). Bytes are fed as they
// arrive, in pieces of any size; the reader says how many bytes of the last piece were
// the header's, so not one byte after it is taken from the client's stream. Pure: no
// socket, no clock.
import { isIPv6 } from "node:net";
import ipaddr from "ipaddr.js";

export interface ProxyAddress {
  readonly address: string;
  readonly port: number;
}

export type ProxyHeader =
  /** A relayed connection: the client is source, the address it connected to is destination. */
  | { readonly command: "proxy"; readonly source: ProxyAddress; readonly destination: ProxyAddress }
  /** v2 LOCAL: the balancer's own connection (a health check); the peer is the client. */
  | { readonly command: "local" }
  /** v1 UNKNOWN: relayed from a client the balancer cannot name; the peer stands for it. */
  | { readonly command: "unknown" };

export type ReadResult =
  | { readonly state: "more" }
  | {
      readonly state: "done";
      readonly header: ProxyHeader;
      /** The header's length in bytes. */
      readonly length: number;
      /** How many bytes of the last piece belong to the header; the rest are the client's. */
      readonly used: number;
    }
  | { readonly state: "error"; readonly reason: string };

/** The v1 line's limit, CRLF included (proxy-protocol.txt §2.1). */
export const V1_MAX_BYTES = 107;
/**
 * Bytes after v2's 16-byte fixed part: addresses and TLVs. The format allows 65,535;
 * balancers send a few hundred at most (addresses, AWS/Azure/GCP ids, TLS facts).
 */
export const V2_MAX_LENGTH = 4096;

const V1_PREFIX = Buffer.from("PROXY ", "latin1");
const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const CR = 0x0d;
const LF = 0x0a;
const V2_FIXED = 16;
const V2_TCP4 = 0x11;
const V2_TCP6 = 0x21;
/** Address block sizes: two addresses and two ports. */
const V2_TCP4_LENGTH = 12;
const V2_TCP6_LENGTH = 36;

const MORE: ReadResult = { state: "more" };

export class ProxyHeaderReader {
  /** The bytes kept: the whole v1 line, or v2's fixed part and address block (52 at most). */
  private readonly kept = Buffer.alloc(V1_MAX_BYTES);
  /** Header bytes seen so far. */
  private seen = 0;
  private version: 1 | 2 | undefined;
  /** v2: the header's total length, once its length field has arrived. */
  private total: number | undefined;
  private result: ReadResult = MORE;

  /** Feeds the next piece; after "done" or "error" the reader takes nothing more. */
  push(chunk: Uint8Array): ReadResult {
    if (this.result.state !== "more") return this.result;
    for (let i = 0; i < chunk.length; i++) {
      const at = this.seen++;
      const byte = chunk[i] as number;
      if (at < this.kept.length) this.kept[at] = byte;
      const verdict =
        this.version === 2 || (this.version === undefined && byte === CR) ? this.v2(byte, at) : this.v1(byte, at);
      if (verdict.state === "done") {
        this.result = { ...verdict, used: i + 1 };
        return this.result;
      }
      if (verdict.state === "error") {
        this.result = verdict;
        return verdict;
      }
    }
    return MORE;
  }

  private v1(byte: number, at: number): ReadResult | { state: "done"; header: ProxyHeader; length: number } {
    if (at < V1_PREFIX.length) {
      if (byte !== V1_PREFIX[at]) return error("not a PROXY header");
      this.version = 1;
      return MORE;
    }
    const previous = this.kept[at - 1];
    if (previous === CR && byte !== LF) return error("PROXY v1: CR not followed by LF");
    if (byte === LF) {
      if (previous !== CR) return error("PROXY v1: line not ended by CRLF");
      return parseV1(this.kept.toString("latin1", 0, at - 1), at + 1);
    }
    if (byte !== CR && (byte < 0x20 || byte > 0x7e)) return error("PROXY v1: a byte that is not printable ASCII");
    if (at + 1 >= V1_MAX_BYTES) return error(`PROXY v1: no CRLF within ${V1_MAX_BYTES} bytes`);
    return MORE;
  }

  private v2(byte: number, at: number): ReadResult | { state: "done"; header: ProxyHeader; length: number } {
    this.version = 2;
    if (at < V2_SIGNATURE.length) return byte === V2_SIGNATURE[at] ? MORE : error("not a PROXY header");
    if (at === 12) {
      if (byte >> 4 !== 2) return error(`PROXY v2: version ${byte >> 4}`);
      if ((byte & 0x0f) > 1) return error(`PROXY v2: command ${byte & 0x0f}`);
      return MORE;
    }
    if (at === 15) {
      const local = ((this.kept[12] as number) & 0x0f) === 0;
      const family = this.kept[13] as number;
      const length = this.kept.readUInt16BE(14);
      if (length > V2_MAX_LENGTH) return error(`PROXY v2: length ${length} over ${V2_MAX_LENGTH}`);
      if (!local) {
        const needed = family === V2_TCP4 ? V2_TCP4_LENGTH : family === V2_TCP6 ? V2_TCP6_LENGTH : undefined;
        if (needed === undefined) return error(`PROXY v2: family 0x${hex(family)} (only TCP over IPv4 or IPv6)`);
        if (length < needed) return error(`PROXY v2: length ${length} too short for its addresses`);
      }
      this.total = V2_FIXED + length;
    }
    if (this.total !== undefined && at + 1 === this.total) return this.v2Header();
    return MORE;
  }

  private v2Header(): { state: "done"; header: ProxyHeader; length: number } {
    const length = this.total as number;
    // LOCAL: whatever address block follows is to be ignored (proxy-protocol.txt §2.2).
    if (((this.kept[12] as number) & 0x0f) === 0) return { state: "done", header: { command: "local" }, length };
    const v4 = this.kept[13] === V2_TCP4;
    const size = v4 ? 4 : 16;
    const address = (offset: number) => ipaddr.fromByteArray([...this.kept.subarray(offset, offset + size)]).toString();
    const ports = V2_FIXED + 2 * size;
    return {
      state: "done",
      header: {
        command: "proxy",
        source: { address: address(V2_FIXED), port: this.kept.readUInt16BE(ports) },
        destination: { address: address(V2_FIXED + size), port: this.kept.readUInt16BE(ports + 2) },
      },
      length,
    };
  }
}

const IPV4 =
  /^(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(?:\.(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}$/;
const PORT = /^(?:0|[1-9][0-9]{0,4})$/;

/** "PROXY TCP4 192.0.2.1 198.51.100.1 56324 443", CRLF removed; length is the line's with it. */
function parseV1(line: string, length: number): ReadResult | { state: "done"; header: ProxyHeader; length: number } {
  const fields = line.split(" ");
  // UNKNOWN may be followed by anything up to the CRLF, which is to be ignored.
  if (fields[1] === "UNKNOWN") return { state: "done", header: { command: "unknown" }, length };
  const [, family, source, destination, sourcePort, destinationPort] = fields;
  if (fields.length !== 6 || (family !== "TCP4" && family !== "TCP6")) return error("PROXY v1: malformed line");
  const valid = family === "TCP4" ? (a: string) => IPV4.test(a) : (a: string) => isIPv6(a) && !a.includes("%");
  if (!valid(source as string) || !valid(destination as string)) return error(`PROXY v1: not ${family} addresses`);
  const port = (text: string) => (PORT.test(text) && Number(text) <= 65_535 ? Number(text) : undefined);
  const from = port(sourcePort as string);
  const to = port(destinationPort as string);
  if (from === undefined || to === undefined) return error("PROXY v1: bad port");
  return {
    state: "done",
    header: {
      command: "proxy",
      source: { address: source as string, port: from },
      destination: { address: destination as string, port: to },
    },
    length,
  };
}

function error(reason: string): ReadResult {
  return { state: "error", reason };
}

function hex(byte: number): string {
  return byte.toString(16).padStart(2, "0");
}
