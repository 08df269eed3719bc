import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import ipaddr from "ipaddr.js";
import { V1ProxyProtocol, V2ProxyProtocol } from "proxy-protocol-js";
import { proxyHeaderV1, proxyHeaderV2 } from "../../src/proxy/proxy-protocol.ts";

const SIGNATURE = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a];

describe("PROXY protocol v1", () => {
  test("the spec's TCP4 example, byte for byte", () => {
    const header = proxyHeaderV1({
      sourceAddress: "192.168.0.1",
      sourcePort: 56324,
      destinationAddress: "192.168.0.11",
      destinationPort: 443,
    });
    assert.equal(header.toString("latin1"), "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n");
  });

  test("TCP6, and IPv4-mapped clients on a dual-stack socket are sent as TCP4", () => {
    const six = proxyHeaderV1({
      sourceAddress: "2001:db8::1",
      sourcePort: 1024,
      destinationAddress: "::1",
      destinationPort: 8443,
    });
    assert.equal(six.toString("latin1"), "PROXY TCP6 2001:db8::1 ::1 1024 8443\r\n");
    const mapped = proxyHeaderV1({
      sourceAddress: "::ffff:10.1.2.3",
      sourcePort: 5,
      destinationAddress: "::ffff:127.0.0.1",
      destinationPort: 6,
    });
    assert.equal(mapped.toString("latin1"), "PROXY TCP4 10.1.2.3 127.0.0.1 5 6\r\n");
  });

  test("an unknown peer is sent as UNKNOWN", () => {
    const header = proxyHeaderV1({ sourceAddress: "", sourcePort: 0, destinationAddress: "", destinationPort: 0 });
    assert.equal(header.toString("latin1"), "PROXY UNKNOWN\r\n");
  });
});

describe("PROXY protocol v2", () => {
  test("TCP over IPv4, byte for byte", () => {
    const header = proxyHeaderV2({
      sourceAddress: "192.0.2.1",
      sourcePort: 56324,
      destinationAddress: "198.51.100.1",
      destinationPort: 443,
    });
    assert.deepEqual(
      [...header],
      [...SIGNATURE, 0x21, 0x11, 0x00, 0x0c, 192, 0, 2, 1, 198, 51, 100, 1, 0xdc, 0x04, 0x01, 0xbb],
    );
  });

  test("TCP over IPv6, byte for byte", () => {
    const header = proxyHeaderV2({
      sourceAddress: "2001:db8::1",
      sourcePort: 1,
      destinationAddress: "::1",
      destinationPort: 2,
    });
    const source = [0x20, 0x01, 0x0d, 0xb8, ...Array(11).fill(0), 1];
    const destination = [...Array(15).fill(0), 1];
    assert.deepEqual([...header], [...SIGNATURE, 0x21, 0x21, 0x00, 36, ...source, ...destination, 0, 1, 0, 2]);
  });

  test("an unknown peer is sent as LOCAL with no address", () => {
    const header = proxyHeaderV2({ sourceAddress: "", sourcePort: 0, destinationAddress: "", destinationPort: 0 });
    assert.deepEqual([...header], [...SIGNATURE, 0x20, 0x00, 0x00, 0x00]);
  });
});

const v4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((p) => p.join("."));
const v6 = fc
  .array(fc.nat(255), { minLength: 16, maxLength: 16 })
  .map((b) => ipaddr.fromByteArray(b))
  .filter((a) => !(a as ipaddr.IPv6).isIPv4MappedAddress())
  .map((a) => a.toString());
const port = fc.integer({ min: 1, max: 65535 });
const endpoints = fc.oneof(
  fc.record({ sourceAddress: v4, sourcePort: port, destinationAddress: v4, destinationPort: port }),
  fc.record({ sourceAddress: v6, sourcePort: port, destinationAddress: v6, destinationPort: port }),
);

test("an independent parser (proxy-protocol-js) reads back what we wrote, v1 and v2", () => {
  fc.assert(
    fc.property(endpoints, (e) => {
      const v1 = V1ProxyProtocol.parse(proxyHeaderV1(e).toString("latin1"));
      assert.equal(ipaddr.parse(v1.source.ipAddress).toString(), e.sourceAddress);
      assert.equal(ipaddr.parse(v1.destination.ipAddress).toString(), e.destinationAddress);
      assert.equal(v1.source.port, e.sourcePort);
      assert.equal(v1.destination.port, e.destinationPort);

      const v2 = V2ProxyProtocol.parse(proxyHeaderV2(e));
      const address = v2.proxyAddress as unknown as {
        sourceAddress: { address: number[] };
        destinationAddress: { address: number[] };
        sourcePort: number;
        destinationPort: number;
      };
      assert.equal(ipaddr.fromByteArray(address.sourceAddress.address).toString(), e.sourceAddress);
      assert.equal(ipaddr.fromByteArray(address.destinationAddress.address).toString(), e.destinationAddress);
      assert.equal(address.sourcePort, e.sourcePort);
      assert.equal(address.destinationPort, e.destinationPort);
    }),
    { numRuns: 1000 },
  );
});
