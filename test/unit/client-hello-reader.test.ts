// The ClientHello reader on the ClientHellos node:tls really sends: the server name it
// finds however the bytes are cut into pieces or records, the bound, and what it refuses.
import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import fc from "fast-check";
import { ClientHelloReader, type HelloResult, MAX_CLIENT_HELLO_BYTES } from "../../src/proxy/client-hello-reader.ts";
import { captureClientHello, handshakeOf, refragment } from "../support/tls.ts";

function read(pieces: readonly Uint8Array[]): HelloResult {
  const reader = new ClientHelloReader();
  let result: HelloResult = { state: "more" };
  for (const piece of pieces) result = reader.push(piece);
  return result;
}

const name = (result: HelloResult) => {
  assert.equal(result.state, "done", JSON.stringify(result));
  return (result as { serverName: string | undefined }).serverName;
};
const refused = (result: HelloResult) => {
  assert.equal(result.state, "error", JSON.stringify(result));
  return (result as { reason: string }).reason;
};

/** Every way to cut bytes in two, and one byte at a time. */
function cuts(bytes: Buffer): Uint8Array[][] {
  const all: Uint8Array[][] = [[...bytes].map((b) => Buffer.from([b]))];
  for (let i = 0; i <= bytes.length; i++) all.push([bytes.subarray(0, i), bytes.subarray(i)]);
  return all;
}

/** A record header around handshake bytes. */
const record = (type: number, body: Buffer) => {
  const header = Buffer.from([type, 3, 1, 0, 0]);
  header.writeUInt16BE(body.length, 3);
  return Buffer.concat([header, body]);
};

let withName: Buffer;
let withoutName: Buffer;
let large: Buffer;

before(async () => {
  withName = await captureClientHello({ servername: "DB.Example.com" });
  withoutName = await captureClientHello({});
  // Many ALPN names make a ClientHello of several KB, like one with post-quantum key shares.
  const alpn = Array.from({ length: 200 }, (_, i) => `protocol-number-${i}`);
  large = await captureClientHello({ servername: "big.example.com", ALPNProtocols: alpn });
});

describe("node:tls ClientHellos", () => {
  test("the server name as sent, or none; every cut and one byte at a time", () => {
    for (const [hello, expected] of [
      [withName, "DB.Example.com"],
      [withoutName, undefined],
    ] as const) {
      for (const pieces of cuts(hello)) assert.equal(name(read(pieces)), expected);
    }
  });

  test("split over several records, and over records and pieces at once", () => {
    // One byte a record: whole, and one byte at a time.
    const bytewise = refragment(withName, 1);
    assert.equal(name(read([bytewise])), "DB.Example.com");
    assert.equal(name(read(cuts(bytewise)[0] as Uint8Array[])), "DB.Example.com");
    for (const size of [7, 100]) {
      const split = refragment(withName, size);
      assert.ok(split.length > withName.length);
      for (const pieces of cuts(split)) assert.equal(name(read(pieces)), "DB.Example.com");
    }
  });

  test("a ClientHello of several KB, in one record or many", () => {
    assert.ok(large.length > 4000, `${large.length} bytes`);
    assert.equal(name(read([large])), "big.example.com");
    assert.equal(name(read([refragment(large, 512)])), "big.example.com");
  });

  test("incomplete: asks for more, never guesses", () => {
    assert.equal(read([withName.subarray(0, withName.length - 1)]).state, "more");
    assert.equal(read([withName.subarray(0, 3)]).state, "more");
  });
});

describe("refused", () => {
  test("something that is not TLS, at its first byte", () => {
    assert.match(refused(read([Buffer.from("G")])), /not a TLS handshake/);
    assert.match(refused(read([Buffer.from([0x16, 0x02])])), /not a TLS handshake/);
    assert.match(refused(read([Buffer.from("SSH-2.0-OpenSSH_9.6\r\n")])), /not a TLS handshake/);
  });

  test("a record that is not a handshake, empty, or over 2^14 bytes", () => {
    refused(read([record(0x15, Buffer.from([2, 40]))]));
    assert.match(refused(read([record(0x16, Buffer.alloc(0))])), /record of 0 bytes/);
    assert.match(refused(read([Buffer.from([0x16, 3, 1, 0x40, 0x01])])), /record of 16385 bytes/);
  });

  test("a first handshake message that is not a ClientHello", () => {
    const serverHello = Buffer.from(handshakeOf(withName));
    serverHello[0] = 2;
    assert.match(refused(read([record(0x16, serverHello)])), /not a ClientHello/);
  });

  test(`a ClientHello over ${MAX_CLIENT_HELLO_BYTES} bytes, said so by its length or not ending in time`, () => {
    const body = Buffer.from([1, 0, 0x50, 0x00]); // declares 20,480 bytes
    assert.match(refused(read([record(0x16, body)])), /ClientHello of 20480 bytes/);
    // 16,368 bytes declared: the message fits, but not with the headers of the 17 records carrying it.
    const hello = Buffer.concat([Buffer.from([1, 0, 0x3f, 0xf0]), Buffer.alloc(0x3ff0)]);
    const bytes = refragment(record(0x16, hello), 1000);
    assert.match(refused(read([bytes])), /no complete ClientHello within 16384 bytes/);
    assert.match(refused(read(cuts(bytes)[0] as Uint8Array[])), /no complete ClientHello within 16384 bytes/);
  });

  test("lengths that do not add up inside the ClientHello", () => {
    const handshake = handshakeOf(withName);
    // The extensions block's length, one byte off either way.
    for (const delta of [-1, 1]) {
      const broken = Buffer.from(handshake);
      // Body: version 2, random 32, session id 1+n, suites 2+n, compression 1+n, then extensions length.
      let at = 4 + 2 + 32;
      at += 1 + (broken[at] as number);
      at += 2 + broken.readUInt16BE(at);
      at += 1 + (broken[at] as number);
      broken.writeUInt16BE(broken.readUInt16BE(at) + delta, at);
      refused(read([record(0x16, broken)]));
    }
  });
});

describe("fuzz", () => {
  const fractions = fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 12 });
  const piecesOf = (bytes: Buffer, cut: readonly number[]) => {
    const at = [...new Set(cut.map((f) => Math.floor(f * bytes.length)))].sort((a, b) => a - b);
    return [0, ...at].map((start, i) => bytes.subarray(start, at[i] ?? bytes.length));
  };

  test("a real ClientHello in random records and pieces: always the same name", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 600 }), fractions, (size, cut) => {
        assert.equal(name(read(piecesOf(refragment(withName, size), cut))), "DB.Example.com");
      }),
      { numRuns: 500 },
    );
  });

  test("a ClientHello with bytes changed, or any bytes behind a handshake header: no crash, same verdict however cut", () => {
    const mutated = fc.array(fc.tuple(fc.nat(), fc.nat(255)), { minLength: 1, maxLength: 8 }).map((changes) => {
      const bytes = Buffer.from(withName);
      for (const [at, value] of changes) bytes[at % bytes.length] = value;
      return bytes;
    });
    const junk = fc.uint8Array({ maxLength: 600 }).map((b) => Buffer.concat([Buffer.from([0x16, 3, 1]), b]));
    fc.assert(
      fc.property(fc.oneof(mutated, junk), fractions, (bytes, cut) => {
        const once = read([bytes]);
        assert.deepEqual(read(piecesOf(bytes, cut)), once);
      }),
      { numRuns: 3000 },
    );
  });
});
