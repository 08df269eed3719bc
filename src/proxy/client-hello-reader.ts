// Reads the server name a TLS client asks for from its ClientHello, without decrypting
// anything (there is nothing encrypted yet): TLS records (RFC 8446 §5.1) carry handshake
// fragments, reassembled into the ClientHello (§4.1.2), whose server_name extension
// (RFC 6066 §3) names the host. Bytes arrive in pieces of any size and a ClientHello may
// span several records (post-quantum key shares make it ~2 KB; some clients split it on
// purpose); all of it is bounded by MAX_CLIENT_HELLO_BYTES. Pure: no socket, no clock.

export type HelloResult =
  | { readonly state: "more" }
  /** serverName: undefined when the ClientHello names no host. */
  | { readonly state: "done"; readonly serverName: string | undefined }
  | { readonly state: "error"; readonly reason: string };

/** Bytes read at most, records included, before giving up on a ClientHello. */
export const MAX_CLIENT_HELLO_BYTES = 16 * 1024;

const RECORD_HEADER = 5;
const HANDSHAKE = 0x16;
const CLIENT_HELLO = 0x01;
/** RFC 8446 §5.1: a record's plaintext fragment is at most 2^14 bytes. */
const MAX_FRAGMENT = 1 << 14;
const SERVER_NAME = 0x0000;
const HOST_NAME = 0x00;
/** What a host name may hold (letters, digits, '-', '.', and '_' that real names use). */
const HOST_NAME_BYTES = /^[A-Za-z0-9._-]{1,253}$/;

const MORE: HelloResult = { state: "more" };

export class ClientHelloReader {
  /** Bytes received so far. */
  private readonly received = new Bytes();
  /** Where the next record header starts. */
  private next = 0;
  /** Handshake bytes reassembled from the records read so far. */
  private readonly handshake = new Bytes();
  private result: HelloResult = MORE;

  /** Feeds the next piece; after "done" or "error" the reader takes nothing more. */
  push(chunk: Uint8Array): HelloResult {
    if (this.result.state !== "more") return this.result;
    const room = MAX_CLIENT_HELLO_BYTES - this.received.length;
    this.received.append(chunk.subarray(0, room));
    this.result = this.records();
    if (this.result.state === "more" && chunk.length >= room) {
      this.result = error(`no complete ClientHello within ${MAX_CLIENT_HELLO_BYTES} bytes`);
    }
    return this.result;
  }

  /** Takes every complete record; judges a record header as soon as its bytes are in, so non-TLS fails fast. */
  private records(): HelloResult {
    const bytes = this.received.view();
    for (;;) {
      const at = this.next;
      const available = bytes.length - at;
      if (available >= 1 && bytes[at] !== HANDSHAKE) return error("not a TLS handshake");
      if (available >= 2 && bytes[at + 1] !== 0x03) return error("not a TLS handshake");
      if (available < RECORD_HEADER) return MORE;
      const fragment = bytes.readUInt16BE(at + 3);
      if (fragment === 0 || fragment > MAX_FRAGMENT) return error(`TLS record of ${fragment} bytes`);
      if (available < RECORD_HEADER + fragment) return MORE;
      const start = at + RECORD_HEADER;
      this.handshake.append(bytes.subarray(start, start + fragment));
      this.next = start + fragment;
      const verdict = this.clientHello();
      if (verdict.state !== "more") return verdict;
    }
  }

  private clientHello(): HelloResult {
    const h = this.handshake.view();
    if (h.length >= 1 && h[0] !== CLIENT_HELLO) return error("the first handshake message is not a ClientHello");
    if (h.length < 4) return MORE;
    const length = h.readUIntBE(1, 3);
    if (4 + length > MAX_CLIENT_HELLO_BYTES) return error(`a ClientHello of ${length} bytes`);
    if (h.length < 4 + length) return MORE;
    return serverNameOf(h.subarray(4, 4 + length));
  }
}

/** The host_name in a complete ClientHello body; errors on any structure that does not add up. */
function serverNameOf(body: Buffer): HelloResult {
  const r = new Cursor(body);
  r.skip(2 + 32); // legacy_version, random
  r.skip(r.u8(32)); // legacy_session_id <0..32>
  const suites = r.u16();
  if (suites < 2 || suites % 2 !== 0) return error("malformed ClientHello: cipher_suites");
  r.skip(suites);
  const compression = r.u8();
  if (compression < 1) return error("malformed ClientHello: compression_methods");
  r.skip(compression);
  if (r.failed) return error("malformed ClientHello");
  // A ClientHello without extensions (TLS 1.2 allows it) names no host.
  if (r.remaining === 0) return { state: "done", serverName: undefined };
  const extensions = r.u16();
  if (r.failed || extensions !== r.remaining) return error("malformed ClientHello: extensions");
  let serverName: string | undefined;
  let seen = false;
  while (r.remaining > 0) {
    const type = r.u16();
    const data = r.bytes(r.u16());
    if (r.failed || !data) return error("malformed ClientHello: an extension");
    if (type !== SERVER_NAME) continue;
    // RFC 8446 §4.2: no extension type twice.
    if (seen) return error("malformed ClientHello: server_name twice");
    seen = true;
    const name = hostName(data);
    if (name === null) return error("malformed ClientHello: server_name");
    serverName = name;
  }
  return { state: "done", serverName };
}

/** The host_name entry of a server_name extension; null when malformed. */
function hostName(data: Buffer): string | undefined | null {
  const r = new Cursor(data);
  const list = r.u16();
  if (r.failed || list !== r.remaining || list === 0) return null;
  let host: string | undefined;
  while (r.remaining > 0) {
    const type = r.u8();
    const name = r.bytes(r.u16());
    if (r.failed || !name) return null;
    if (type !== HOST_NAME) continue;
    // RFC 6066 §3: at most one name of each type.
    if (host !== undefined) return null;
    host = name.toString("latin1");
    if (!HOST_NAME_BYTES.test(host)) return null;
  }
  return host;
}

/** A buffer that grows by doubling (bounded by what its owner appends), so pieces of any size cost O(n) in all. */
class Bytes {
  private buffer = Buffer.alloc(512);
  length = 0;

  append(chunk: Uint8Array): void {
    if (this.length + chunk.length > this.buffer.length) {
      const grown = Buffer.alloc(Math.max(this.buffer.length * 2, this.length + chunk.length));
      this.buffer.copy(grown, 0, 0, this.length);
      this.buffer = grown;
    }
    this.buffer.set(chunk, this.length);
    this.length += chunk.length;
  }

  /** The bytes so far (valid until the next append). */
  view(): Buffer {
    return this.buffer.subarray(0, this.length);
  }
}

/** Reads big-endian fields; once a read runs past the end, failed stays true and reads return 0. */
class Cursor {
  private at = 0;
  failed = false;

  constructor(private readonly buffer: Buffer) {}

  get remaining(): number {
    return this.failed ? 0 : this.buffer.length - this.at;
  }

  private take(n: number): number | undefined {
    if (this.failed || this.at + n > this.buffer.length) {
      this.failed = true;
      return undefined;
    }
    const start = this.at;
    this.at += n;
    return start;
  }

  /** One byte; at most max when given (a larger value fails the read). */
  u8(max = 255): number {
    const at = this.take(1);
    if (at === undefined) return 0;
    const value = this.buffer[at] as number;
    if (value > max) this.failed = true;
    return value;
  }

  u16(): number {
    const at = this.take(2);
    return at === undefined ? 0 : this.buffer.readUInt16BE(at);
  }

  skip(n: number): void {
    this.take(n);
  }

  bytes(n: number): Buffer | undefined {
    const at = this.take(n);
    return at === undefined ? undefined : this.buffer.subarray(at, at + n);
  }
}

function error(reason: string): HelloResult {
  return { state: "error", reason };
}
