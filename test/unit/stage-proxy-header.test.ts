// The PROXY header stage on a real loopback connection: it reads the header and leaves
// every later byte in the socket for the bridge; it gives up after its timeout; a peer
// that leaves without a byte is told apart from one that sent a broken header.
import assert from "node:assert/strict";
import { test } from "node:test";
import { parseClientAddress } from "../../src/policy/address-match.ts";
import { proxyHeaderV1, proxyHeaderV2 } from "../../src/proxy/proxy-protocol.ts";
import { readProxyHeader } from "../../src/proxy/stages/proxy-header.ts";
import { loopbackPair, readAll } from "../support/net.ts";

const peer = parseClientAddress("127.0.0.1") as NonNullable<ReturnType<typeof parseClientAddress>>;
const endpoints = {
  sourceAddress: "192.0.2.7",
  sourcePort: 5555,
  destinationAddress: "198.51.100.1",
  destinationPort: 443,
};

test("a header in pieces: the client it names, and the bytes after it left in the socket, in order", async (t) => {
  const pair = await loopbackPair();
  t.after(() => pair.close());
  const bytes = Buffer.concat([proxyHeaderV1(endpoints), Buffer.from("first"), Buffer.from("second")]);
  const reading = readProxyHeader(pair.accepted, peer, 2000);
  for (let i = 0; i < bytes.length; i += 7) {
    await new Promise((resolve) => pair.client.write(bytes.subarray(i, i + 7), resolve));
  }
  pair.client.end();
  const outcome = await reading;
  assert.ok(outcome.ok);
  assert.equal(outcome.arrival.client.text, "192.0.2.7");
  assert.equal(outcome.arrival.port, 5555);
  assert.equal(outcome.arrival.headerBytes, proxyHeaderV1(endpoints).length);
  assert.deepEqual(outcome.arrival.endpoints, endpoints);
  assert.equal(outcome.arrival.trusted, false);
  assert.equal((await readAll(pair.accepted)).toString(), "firstsecond");
});

test("v2 LOCAL: the peer is the client, trusted, with unknown endpoints to send on", async (t) => {
  const pair = await loopbackPair();
  t.after(() => pair.close());
  pair.client.end(Buffer.concat([proxyHeaderV2(undefined), Buffer.from("x")]));
  const outcome = await readProxyHeader(pair.accepted, peer, 2000);
  assert.ok(outcome.ok);
  assert.equal(outcome.arrival.client.text, "127.0.0.1");
  assert.equal(outcome.arrival.trusted, true);
  assert.equal(outcome.arrival.endpoints, undefined);
  assert.equal((await readAll(pair.accepted)).toString(), "x");
});

test("no complete header within the timeout: refused, not silent", async (t) => {
  const pair = await loopbackPair();
  t.after(() => pair.close());
  pair.client.write("PROXY TCP4 ");
  const outcome = await readProxyHeader(pair.accepted, peer, 200);
  assert.deepEqual(outcome, { ok: false, silent: false, detail: "no PROXY header within 200 ms" });
});

test("a peer that leaves without a byte is silent; one that leaves mid-header is not", async (t) => {
  const quiet = await loopbackPair();
  const half = await loopbackPair();
  t.after(() => {
    quiet.close();
    half.close();
  });
  quiet.client.end();
  half.client.end("PROXY TCP4");
  assert.deepEqual(await readProxyHeader(quiet.accepted, peer, 2000), {
    ok: false,
    silent: true,
    detail: "closed before a complete PROXY header",
  });
  assert.deepEqual(await readProxyHeader(half.accepted, peer, 2000), {
    ok: false,
    silent: false,
    detail: "closed before a complete PROXY header",
  });
});
