// The PROXY header reader (proxy-protocol.txt v1 and v2): what it accepts, what it
// refuses, and that however the bytes are cut into pieces it reads the same header and
// takes not one byte of what follows.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import ipaddr from "ipaddr.js";
import {
  Command,
  IPv4Address,
  IPv4ProxyAddress,
  IPv6Address,
  IPv6ProxyAddress,
  TransportProtocol,
  V2ProxyProtocol,
} from "proxy-protocol-js";
import {
  type ProxyHeader,
  ProxyHeaderReader,
  type ReadResult,
  V2_MAX_LENGTH,
} from "../../src/proxy/proxy-header-reader.ts";
import { type Endpoints, proxyHeaderV1, proxyHeaderV2 } from "../../src/proxy/proxy-protocol.ts";

/** Feeds the pieces in order; returns the verdict and the bytes after the header, as a caller would keep them. */
function read(pieces: readonly Uint8Array[]): { result: ReadResult; after: Buffer } {
  const reader = new ProxyHeaderReader();
  const after: Buffer[] = [];
  let result: ReadResult = { state: "more" };
  for (const piece of pieces) {
    if (result.state === "more") {
      result = reader.push(piece);
      if (result.state === "done") after.push(Buffer.from(piece).subarray(result.used));
    } else {
      after.push(Buffer.from(piece));
    }
  }
  return { result, after: Buffer.concat(after) };
}

const whole = (bytes: Uint8Array | string) => read([typeof bytes === "string" ? Buffer.from(bytes, "latin1") : bytes]);

/** Every way to cut bytes into two pieces, and one byte at a time. */
function cuts(bytes: Buffer): Uint8Array[][] {
  const all: Uint8Array[][] = [[...bytes].map((b) => Buffer.from([b]))];
  for (let i = 0; i <= bytes.length; i++) all.push([bytes.subarray(0, i), bytes.subarray(i)]);
  return all;
}

const header = (result: ReadResult): ProxyHeader => {
  assert.equal(result.state, "done", JSON.stringify(result));
  return (result as { header: ProxyHeader }).header;
};
const refused = (result: ReadResult) => {
  assert.equal(result.state, "error", JSON.stringify(result));
  return (result as { reason: string }).reason;
};

const tcp4 = (source: string, destination: string, sourcePort: number, destinationPort: number): ProxyHeader => ({
  command: "proxy",
  source: { address: source, port: sourcePort },
  destination: { address: destination, port: destinationPort },
});

/** A v2 header from raw parts: command nibble, family byte, address block, TLV bytes. */
function v2(command: number, family: number, block: number[], tlvs: number[] = [], version = 2): Buffer {
  const body = [...block, ...tlvs];
  const head = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
  const length = Buffer.alloc(2);
  length.writeUInt16BE(body.length);
  return Buffer.concat([head, Buffer.from([(version << 4) | command, family]), length, Buffer.from(body)]);
}
const BLOCK4 = [192, 0, 2, 7, 198, 51, 100, 1, 0x15, 0xb3, 0x01, 0xbb]; // 192.0.2.7:5555 → 198.51.100.1:443

describe("v1", () => {
  test("TCP4 and TCP6 lines, with the client's bytes after the CRLF left alone", () => {
    const r4 = whole("PROXY TCP4 192.0.2.7 198.51.100.1 5555 443\r\nGET / HTTP/1.0\r\n");
    assert.deepEqual(header(r4.result), tcp4("192.0.2.7", "198.51.100.1", 5555, 443));
    assert.equal(r4.after.toString(), "GET / HTTP/1.0\r\n");
    const r6 = whole("PROXY TCP6 2001:db8::7 2001:db8::1 65535 0\r\n");
    assert.deepEqual(header(r6.result), tcp4("2001:db8::7", "2001:db8::1", 65535, 0));
    assert.equal(r6.after.length, 0);
  });

  test("UNKNOWN, with or without the addresses that are to be ignored", () => {
    assert.deepEqual(header(whole("PROXY UNKNOWN\r\n").result), { command: "unknown" });
    assert.deepEqual(header(whole("PROXY UNKNOWN ffff::1 ffff::2 1 2\r\nx").result), { command: "unknown" });
  });

  test("107 bytes with the CRLF is the longest line; 108 is refused before the CRLF arrives", () => {
    const ff = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
    // The protocol's own worst case: UNKNOWN with the longest TCP6 fields after it.
    const longest = `PROXY UNKNOWN ${ff} ${ff} 65535 65535\r\n`;
    assert.equal(longest.length, 107);
    assert.equal(header(whole(longest).result).command, "unknown");
    assert.equal(header(whole(`PROXY TCP6 ${ff} ${ff} 65535 65535\r\n`).result).command, "proxy");
    const unknown = `PROXY UNKNOWN ${"x".repeat(108 - 16)}\r\n`;
    assert.equal(unknown.length, 108);
    // Refused at byte 107, whatever comes after.
    assert.match(refused(whole(unknown.slice(0, 107)).result), /within 107 bytes/);
  });

  for (const [line, why] of [
    ["PROXY TCP4 192.0.2.7 198.51.100.1 5555 443\n", "LF without CR"],
    ["PROXY TCP4 192.0.2.7 198.51.100.1 5555 443\rX", "CR without LF"],
    ["PROXY  TCP4 192.0.2.7 198.51.100.1 5555 443\r\n", "two spaces"],
    ["PROXY TCP4 192.0.2.7 198.51.100.1 5555\r\n", "a field missing"],
    ["PROXY TCP4 192.0.2.7 198.51.100.1 5555 443 1\r\n", "a field too many"],
    ["PROXY TCP4 192.0.2.07 198.51.100.1 5555 443\r\n", "an octet with a leading zero"],
    ["PROXY TCP4 2001:db8::7 198.51.100.1 5555 443\r\n", "IPv6 in TCP4"],
    ["PROXY TCP6 192.0.2.7 2001:db8::1 5555 443\r\n", "IPv4 in TCP6"],
    ["PROXY TCP6 fe80::1%eth0 2001:db8::1 5555 443\r\n", "a zone index"],
    ["PROXY TCP4 192.0.2.7 198.51.100.1 65536 443\r\n", "a port over 65535"],
    ["PROXY TCP4 192.0.2.7 198.51.100.1 05555 443\r\n", "a port with a leading zero"],
    ["PROXY UDP4 192.0.2.7 198.51.100.1 5555 443\r\n", "UDP"],
    ["proxy TCP4 192.0.2.7 198.51.100.1 5555 443\r\n", "lower case"],
    ["PROXY TCP4 192.0.2.7 198.51.100.1 5555 4\u00e93\r\n", "a byte that is not ASCII"],
    ["GET / HTTP/1.1\r\n", "no header at all"],
    ["\r\n\r\n\u0000\r\nQUIX\n", "v2's signature, wrong"],
  ] as const) {
    test(`refused: ${why}`, () => {
      refused(whole(line).result);
    });
  }

  test("garbage is refused at its first wrong byte, not after 107", () => {
    const reader = new ProxyHeaderReader();
    assert.equal(reader.push(Buffer.from("PROX")).state, "more");
    assert.equal(reader.push(Buffer.from("Z")).state, "error");
  });
});

describe("v2", () => {
  test("PROXY over TCP4, TLVs skipped, the client's bytes left alone", () => {
    const tlvs = [0x04, 0x00, 0x03, 0xaa, 0xbb, 0xcc, 0x01, 0x00, 0x02, 0x68, 0x32]; // NOOP and ALPN
    const bytes = Buffer.concat([v2(1, 0x11, BLOCK4, tlvs), Buffer.from("hello")]);
    const { result, after } = whole(bytes);
    assert.deepEqual(header(result), tcp4("192.0.2.7", "198.51.100.1", 5555, 443));
    assert.equal((result as { length: number }).length, 16 + 12 + tlvs.length);
    assert.equal(after.toString(), "hello");
  });

  test("PROXY over TCP6", () => {
    const source = ipaddr.parse("2001:db8::7").toByteArray();
    const destination = ipaddr.parse("2001:db8::1").toByteArray();
    const { result } = whole(v2(1, 0x21, [...source, ...destination, 0, 80, 1, 187]));
    assert.deepEqual(header(result), tcp4("2001:db8::7", "2001:db8::1", 80, 443));
  });

  test("LOCAL: the peer itself, whatever family and address block it carries", () => {
    assert.deepEqual(header(whole(v2(0, 0x00, [])).result), { command: "local" });
    assert.deepEqual(header(whole(v2(0, 0x11, BLOCK4)).result), { command: "local" });
    assert.deepEqual(header(whole(v2(0, 0x31, Array(216).fill(1))).result), { command: "local" });
  });

  test("the longest header allowed is read; one byte more is refused at the length field", () => {
    const longest = v2(1, 0x11, BLOCK4, Array(V2_MAX_LENGTH - 12).fill(0));
    assert.equal(header(whole(longest).result).command, "proxy");
    const over = v2(1, 0x11, BLOCK4, Array(V2_MAX_LENGTH - 11).fill(0));
    assert.match(refused(whole(over.subarray(0, 16)).result), /length 4097/);
  });

  for (const [bytes, why] of [
    [v2(1, 0x12, BLOCK4), "UDP over IPv4"],
    [v2(1, 0x00, []), "UNSPEC with PROXY"],
    [v2(1, 0x31, Array(216).fill(1)), "a unix socket"],
    [v2(1, 0x11, BLOCK4.slice(0, 11)), "an address block too short"],
    [v2(1, 0x21, Array(35).fill(1)), "an IPv6 block too short"],
    [v2(2, 0x11, BLOCK4), "command 2"],
    [v2(1, 0x11, BLOCK4, [], 1), "version 1"],
    [v2(1, 0x11, BLOCK4, [], 3), "version 3"],
  ] as const) {
    test(`refused: ${why}`, () => {
      refused(whole(bytes).result);
    });
  }
});

describe("pieces", () => {
  const samples = [
    Buffer.from("PROXY TCP4 192.0.2.7 198.51.100.1 5555 443\r\nafter"),
    Buffer.from("PROXY UNKNOWN\r\nafter"),
    Buffer.concat([v2(1, 0x11, BLOCK4, [1, 0, 2, 0x68, 0x32]), Buffer.from("after")]),
    Buffer.concat([v2(0, 0x00, []), Buffer.from("after")]),
  ];
  test("every cut gives the same header, and exactly the bytes after it", () => {
    for (const sample of samples) {
      const expected = whole(sample);
      for (const pieces of cuts(sample)) {
        const got = read(pieces);
        assert.deepEqual(got.result.state, "done");
        assert.deepEqual(header(got.result), header(expected.result));
        assert.equal(got.after.toString(), "after");
      }
    }
  });
});

describe("against our own writer and an independent one", () => {
  const v4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((p) => p.join("."));
  const v6 = fc
    .array(fc.nat(0xffff), { minLength: 8, maxLength: 8 })
    .map((parts) => new ipaddr.IPv6(parts))
    .filter((a) => !a.isIPv4MappedAddress())
    .map((a) => a.toString());
  const port = fc.integer({ min: 0, max: 65535 });
  const endpoints = fc.oneof(
    fc.record({ sourceAddress: v4, sourcePort: port, destinationAddress: v4, destinationPort: port }),
    fc.record({ sourceAddress: v6, sourcePort: port, destinationAddress: v6, destinationPort: port }),
  );
  const expected = (e: Endpoints) => tcp4(e.sourceAddress, e.destinationAddress, e.sourcePort, e.destinationPort);

  test("what proxyHeaderV1 and proxyHeaderV2 write is read back as written", () => {
    fc.assert(
      fc.property(endpoints, (e) => {
        assert.deepEqual(header(whole(proxyHeaderV1(e)).result), expected(e));
        assert.deepEqual(header(whole(proxyHeaderV2(e)).result), expected(e));
      }),
      { numRuns: 500 },
    );
    assert.deepEqual(header(whole(proxyHeaderV1(undefined)).result), { command: "unknown" });
    assert.deepEqual(header(whole(proxyHeaderV2(undefined)).result), { command: "local" });
  });

  test("what proxy-protocol-js writes in v2 is read as it meant it", () => {
    fc.assert(
      fc.property(endpoints, (e) => {
        const six = e.sourceAddress.includes(":");
        const bytes = (a: string) => ipaddr.parse(a).toByteArray();
        const block = six
          ? new IPv6ProxyAddress(
              IPv6Address.createFrom(bytes(e.sourceAddress)),
              e.sourcePort,
              IPv6Address.createFrom(bytes(e.destinationAddress)),
              e.destinationPort,
            )
          : new IPv4ProxyAddress(
              IPv4Address.createFrom(bytes(e.sourceAddress)),
              e.sourcePort,
              IPv4Address.createFrom(bytes(e.destinationAddress)),
              e.destinationPort,
            );
        const built = new V2ProxyProtocol(Command.PROXY, TransportProtocol.STREAM, block).build();
        assert.deepEqual(header(whole(built).result), expected(e));
      }),
      { numRuns: 300 },
    );
  });
});

describe("fuzz", () => {
  /** Cuts bytes at the given fractions. */
  const piecesOf = (bytes: Buffer, fractions: readonly number[]) => {
    const at = [...new Set(fractions.map((f) => Math.floor(f * bytes.length)))].sort((a, b) => a - b);
    return [0, ...at].map((start, i) => bytes.subarray(start, at[i] ?? bytes.length));
  };
  const fractions = fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 12 });

  test("any bytes, cut anyhow: no crash, and the verdict does not depend on the cuts", () => {
    const prefixed = fc.oneof(
      fc.uint8Array({ maxLength: 300 }),
      fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.concat([Buffer.from("PROXY "), b])),
      fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.concat([v2(1, 0x11, []).subarray(0, 12), b])),
    );
    fc.assert(
      fc.property(prefixed, fractions, (bytes, cut) => {
        const once = whole(Buffer.from(bytes));
        const pieces = read(piecesOf(Buffer.from(bytes), cut));
        assert.deepEqual(pieces.result.state, once.result.state);
        if (once.result.state === "done") {
          assert.deepEqual(header(pieces.result), header(once.result));
          assert.deepEqual(pieces.after, once.after);
          assert.equal(once.after.length, bytes.length - (once.result as { length: number }).length);
        }
      }),
      { numRuns: 3000 },
    );
  });

  test("a valid header then any payload, cut anyhow: the payload comes out whole, not a byte more or less", () => {
    const headers = endpointsHeader();
    fc.assert(
      fc.property(headers, fc.uint8Array({ maxLength: 200 }), fractions, (head, payload, cut) => {
        const bytes = Buffer.concat([head, payload]);
        const { result, after } = read(piecesOf(bytes, cut));
        assert.equal(result.state, "done");
        assert.deepEqual(after, Buffer.from(payload));
      }),
      { numRuns: 2000 },
    );
  });

  function endpointsHeader() {
    const v4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((p) => p.join("."));
    const e = fc.record({
      sourceAddress: v4,
      sourcePort: fc.nat(65535),
      destinationAddress: v4,
      destinationPort: fc.nat(65535),
    });
    return fc.oneof(
      e.map(proxyHeaderV1),
      e.map(proxyHeaderV2),
      fc.uint8Array({ maxLength: 64 }).map((tlvs) => v2(1, 0x11, BLOCK4, [...tlvs])),
      fc.constant(v2(0, 0x00, [])),
    );
  }
});
