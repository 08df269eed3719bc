// acceptProxy end to end through the real CLI and real sockets: 127.0.0.2 plays the load
// balancer (the only peer in `from`) and writes PROXY headers, whole or in pieces, before
// its client's bytes; 127.0.0.1 is a client connecting directly. Targets record every
// byte they receive, so "nothing reached a target" and "bytes unchanged" are read on
// the target's side.
import assert from "node:assert/strict";
import { connect, type Socket } from "node:net";
import { describe, test } from "node:test";
import { proxyHeaderV1, proxyHeaderV2 } from "../../src/proxy/proxy-protocol.ts";
import { type Gate, startGate } from "../support/cli.ts";
import { endOf, eventually, freePort } from "../support/net.ts";
import { appConfig, cleanup, type TaggedTarget, targets } from "../support/targets.ts";

const BOUNDED = { timeout: 20_000 };
const BALANCER = "127.0.0.2";
/** The client and the address it reached, as the balancer's header tells them. */
const client = (address: string, port = 5555) => ({
  sourceAddress: address,
  sourcePort: port,
  destinationAddress: "198.51.100.1",
  destinationPort: 443,
});

interface Sent {
  readonly socket: Socket;
  /** The client's local port, which the refusal or access-log line names when it came directly. */
  readonly localPort: number;
  /** Everything received until the target's tag line (or the close). */
  readonly reply: Promise<string>;
}

/** Connects from `from` and writes each piece as a write of its own, waiting for each to be handed to the kernel. */
async function send(port: number, pieces: readonly (Buffer | string)[], from = BALANCER): Promise<Sent> {
  const socket = connect({ port, host: "127.0.0.1", localAddress: from, noDelay: true, allowHalfOpen: true });
  socket.on("error", () => {});
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  let text = "";
  const reply = new Promise<string>((resolve) => {
    socket.on("data", (chunk: Buffer) => {
      text += chunk.toString("latin1");
      if (text.includes("\n")) resolve(text);
    });
    socket.once("end", () => resolve(text));
    socket.once("close", () => resolve(text));
  });
  for (const piece of pieces) {
    if (socket.destroyed) break;
    await new Promise<void>((resolve) => socket.write(piece, () => resolve()));
  }
  return { socket, localPort: socket.localPort ?? 0, reply };
}

/** Bytes cut into pieces of `size`. */
const pieces = (bytes: Buffer, size: number) =>
  Array.from({ length: Math.ceil(bytes.length / size) }, (_, i) => bytes.subarray(i * size, (i + 1) * size));

/** A gate with one listener "app" in front of target, trusting 127.0.0.2. */
async function gateFor(
  c: ReturnType<typeof cleanup>,
  target: TaggedTarget,
  more: readonly string[] = [],
  timeout = "3s",
  adminPort?: number,
): Promise<{ gate: Gate; port: number }> {
  const port = await freePort();
  const yaml = appConfig({
    listen: `127.0.0.1:${port}`,
    targets: [target],
    more: ["    acceptProxy:", `      from: [${BALANCER}]`, `      timeout: ${timeout}`, ...more],
    adminPort,
  });
  return { gate: c.add(await startGate(yaml)), port };
}

/** What the target received on its connection number i, once `length` bytes are in. */
async function receivedBy(target: TaggedTarget, i: number, length: number): Promise<Buffer> {
  const all = () => Buffer.concat(target.received[i] ?? []);
  await eventually(() => all().length >= length, 3000, `the target got ${all().length} of ${length} bytes`);
  return all();
}

/** The refusal line naming `client`, logged from index `from` on. */
function refusalOf(gate: Gate, client: string, from: number) {
  return gate.waitForLog((l) => l.client === client && l.reason !== undefined && gate.logs.indexOf(l) >= from);
}

describe("a trusted balancer's PROXY header", () => {
  test(
    "v1, byte by byte: the header's client is the client, and the header we send on carries it",
    BOUNDED,
    async (t) => {
      const c = cleanup();
      t.after(() => c.run());
      const [a] = await targets(c, "a");
      const { gate, port } = await gateFor(c, a, ["    proxyProtocol: v1"]);
      const header = proxyHeaderV1(client("192.0.2.7"));
      const sent = await send(port, pieces(Buffer.concat([header, Buffer.from("payload")]), 1));
      assert.equal(await sent.reply, "a\n");
      const received = await receivedBy(a, 0, header.length + 7);
      assert.equal(received.toString("latin1"), `${header.toString("latin1")}payload`);
      sent.socket.end();
      const line = await gate.bridgeEnd(5555, 0);
      assert.equal(line.client, "192.0.2.7");
      assert.equal(line.bytesUp, 7, "the balancer's header is not counted as carried");
    },
  );

  test(
    "v2 with TLVs, in pieces of 3 bytes: the client's bytes arrive unchanged, a v2 header before them",
    BOUNDED,
    async (t) => {
      const c = cleanup();
      t.after(() => c.run());
      const [a] = await targets(c, "a");
      const { gate, port } = await gateFor(c, a, ["    proxyProtocol: v2"]);
      // Our own writer's header with two TLVs appended (length field raised to match).
      const plain = proxyHeaderV2(client("2001:db8::7", 6000));
      const tlvs = Buffer.from([0x04, 0x00, 0x02, 0xaa, 0xbb, 0x01, 0x00, 0x02, 0x68, 0x32]);
      const withTlvs = Buffer.concat([plain, tlvs]);
      withTlvs.writeUInt16BE(plain.readUInt16BE(14) + tlvs.length, 14);
      const payload = Buffer.from([0, 1, 2, 0x0d, 0x0a, 0xff, 0x50]);
      const sent = await send(port, pieces(Buffer.concat([withTlvs, payload]), 3));
      assert.equal(await sent.reply, "a\n");
      const received = await receivedBy(a, 0, plain.length + payload.length);
      assert.deepEqual(received, Buffer.concat([plain, payload]));
      sent.socket.end();
      assert.equal((await gate.bridgeEnd(6000, 0)).client, "2001:db8::7");
    },
  );

  test("deny and allow judge the header's client, not the balancer", BOUNDED, async (t) => {
    const c = cleanup();
    t.after(() => c.run());
    const [a] = await targets(c, "a");
    const { gate, port } = await gateFor(c, a, ["    allow: [192.0.2.0/24]", "    deny: [192.0.2.66]"]);
    const denied = await send(port, [proxyHeaderV1(client("192.0.2.66")), "x"]);
    assert.equal(await denied.reply, "");
    assert.equal((await refusalOf(gate, "192.0.2.66", 0)).reason, "deny");
    const outside = await send(port, [proxyHeaderV2(client("203.0.113.5"))]);
    assert.equal(await outside.reply, "");
    assert.equal((await refusalOf(gate, "203.0.113.5", 0)).reason, "allow");
    assert.equal(a.accepted(), 0, "a refused client reached the target");
    // The balancer itself is outside allow; the client it names is inside.
    const allowed = await send(port, [proxyHeaderV1(client("192.0.2.7"))]);
    assert.equal(await allowed.reply, "a\n");
    c.sockets([allowed.socket]);
  });

  test("maxConnectionsPerClient counts the header's clients", BOUNDED, async (t) => {
    const c = cleanup();
    t.after(() => c.run());
    const [a] = await targets(c, "a");
    const { gate, port } = await gateFor(c, a, ["    maxConnectionsPerClient: 1"]);
    const first = await send(port, [proxyHeaderV1(client("192.0.2.7", 1001))]);
    const other = await send(port, [proxyHeaderV1(client("192.0.2.8", 1002))]);
    c.sockets([first.socket, other.socket]);
    assert.equal(await first.reply, "a\n");
    assert.equal(await other.reply, "a\n", "another client behind the same balancer was refused");
    const from = gate.logs.length;
    const second = await send(port, [proxyHeaderV1(client("192.0.2.7", 1003))]);
    assert.equal(await second.reply, "");
    assert.equal((await refusalOf(gate, "192.0.2.7", from)).reason, "limit");
  });

  test(
    "v2 LOCAL (the balancer's own check) is admitted as the balancer without allow, and sent on as LOCAL",
    BOUNDED,
    async (t) => {
      const c = cleanup();
      t.after(() => c.run());
      const [a] = await targets(c, "a");
      const { gate, port } = await gateFor(c, a, ["    allow: [192.0.2.0/24]", "    proxyProtocol: v2"]);
      const local = proxyHeaderV2(undefined);
      const sent = await send(port, [local, "ping"]);
      assert.equal(await sent.reply, "a\n");
      assert.deepEqual(await receivedBy(a, 0, local.length + 4), Buffer.concat([local, Buffer.from("ping")]));
      sent.socket.end();
      assert.equal((await gate.bridgeEnd(sent.localPort, 0)).client, BALANCER);
    },
  );
});

describe("refused with reason proxy-header, nothing sent to a target", () => {
  test("a header that never completes is closed after the timeout", BOUNDED, async (t) => {
    const c = cleanup();
    t.after(() => c.run());
    const [a] = await targets(c, "a");
    const { gate, port } = await gateFor(c, a, [], "500ms");
    const started = performance.now();
    const sent = await send(port, ["PROXY TCP4 192.0.2.7 "]);
    assert.equal(await endOf(sent.socket, 3000), "end");
    const ms = performance.now() - started;
    assert.ok(ms >= 450 && ms < 2000, `closed after ${Math.round(ms)} ms`);
    const line = await refusalOf(gate, BALANCER, 0);
    assert.equal(line.reason, "proxy-header");
    assert.equal(line.rule, "no PROXY header within 500 ms");
    assert.equal(a.accepted(), 0);
  });

  test("garbage, and a v1 line of 108 bytes, are closed at once", BOUNDED, async (t) => {
    const c = cleanup();
    t.after(() => c.run());
    const [a] = await targets(c, "a");
    const adminPort = await freePort();
    const { gate, port } = await gateFor(c, a, [], "3s", adminPort);
    for (const bytes of ["GET / HTTP/1.1\r\nHost: x\r\n\r\n", `PROXY UNKNOWN ${"x".repeat(92)}\r\n`]) {
      const from = gate.logs.length;
      const sent = await send(port, [bytes]);
      assert.notEqual(await endOf(sent.socket, 1500), "timeout");
      assert.equal((await refusalOf(gate, BALANCER, from)).reason, "proxy-header");
    }
    assert.equal(a.accepted(), 0);
    // Counted like any refusal: in /status and in the metrics.
    const status = (await (await fetch(`http://127.0.0.1:${adminPort}/status`)).json()) as {
      listeners: { refused: Record<string, number> }[];
    };
    assert.equal(status.listeners[0]?.refused["proxy-header"], 2);
    const metrics = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
    assert.match(metrics, /tcpgate_connections_refused_total\{listener="app",reason="proxy-header"\} 2/);
  });

  test(
    "a balancer that connects and leaves without a byte (a TCP check) is closed without a log line",
    BOUNDED,
    async (t) => {
      const c = cleanup();
      t.after(() => c.run());
      const [a] = await targets(c, "a");
      const { gate, port } = await gateFor(c, a);
      const sent = await send(port, []);
      sent.socket.end();
      assert.notEqual(await endOf(sent.socket, 1500), "timeout");
      // A connection refused afterwards is logged: the check's absence is not a lag.
      const garbage = await send(port, ["x"]);
      await refusalOf(gate, BALANCER, 0);
      garbage.socket.destroy();
      assert.equal(gate.logs.filter((l) => l.reason !== undefined).length, 1);
    },
  );
});

test("a peer outside `from` is a client: its PROXY header is forwarded as data", BOUNDED, async (t) => {
  const c = cleanup();
  t.after(() => c.run());
  const [a] = await targets(c, "a");
  const { gate, port } = await gateFor(c, a);
  const header = proxyHeaderV1(client("192.0.2.7"));
  const sent = await send(port, [header], "127.0.0.1");
  assert.equal(await sent.reply, "a\n");
  assert.deepEqual(await receivedBy(a, 0, header.length), header);
  sent.socket.end();
  assert.equal((await gate.bridgeEnd(sent.localPort, 0)).client, "127.0.0.1");
});
