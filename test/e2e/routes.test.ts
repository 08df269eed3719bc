// Routing by TLS server name end to end: real node:tls clients (and openssl s_client when
// installed) through the real CLI to real TLS servers with a self-signed certificate made
// for the test, each server saying who it is; raw ClientHellos cut into records and
// segments to plain targets that record every byte; refusals; a reload of a route.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { type AddressInfo, connect as connectTcp, type Socket } from "node:net";
import { before, describe, test } from "node:test";
import { connect as connectTls, createServer as createTlsServer, type Server as TlsServer } from "node:tls";
import { proxyHeaderV2 } from "../../src/proxy/proxy-protocol.ts";
import { type Gate, startGate } from "../support/cli.ts";
import { endOf, eventually, freePort } from "../support/net.ts";
import { cleanup, targetStatus, targets } from "../support/targets.ts";
import { captureClientHello, refragment, selfSigned } from "../support/tls.ts";

const BOUNDED = { timeout: 30_000 };
let credentials: { key: Buffer; cert: Buffer };
before(() => {
  credentials = selfSigned();
});

/** One TLS server per tag, each closed by c when the test ends. */
async function tlsTargets(c: ReturnType<typeof cleanup>, ...tags: string[]) {
  const servers = await Promise.all(tags.map(tlsTarget));
  for (const server of servers) c.add(server);
  return servers;
}

/** A TLS server that sends "<tag>\n" once the handshake is done, then echoes. */
async function tlsTarget(tag: string): Promise<{ address: string; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: TlsServer = createTlsServer(credentials, (socket) => {
    socket.on("error", () => {});
    socket.write(`${tag}\n`);
    socket.pipe(socket);
  });
  server.on("connection", (s: Socket) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return {
    address: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    async close() {
      for (const s of sockets) s.destroy();
      server.close();
      await once(server, "close");
    },
  };
}

/** A TLS client through the gate: the tag of the server that answered, and the open socket. */
async function tlsVisit(port: number, servername?: string): Promise<{ tag: string; socket: Socket }> {
  const socket = connectTls({ port, host: "127.0.0.1", rejectUnauthorized: false, ...(servername && { servername }) });
  socket.on("error", () => {});
  let text = "";
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no answer for ${servername}`)), 5000);
    socket.on("data", (chunk: Buffer) => {
      text += chunk.toString();
      if (!text.includes("\n")) return;
      clearTimeout(timer);
      resolve({ tag: text.slice(0, text.indexOf("\n")), socket });
    });
    socket.once("close", () => {
      clearTimeout(timer);
      reject(new Error(`closed before an answer for ${servername}`));
    });
  });
}

async function tag(port: number, servername?: string): Promise<string> {
  const { tag, socket } = await tlsVisit(port, servername);
  socket.destroy();
  return tag;
}

/** A raw client: connects and writes each piece as a write of its own. */
async function rawSend(port: number, pieces: readonly Buffer[]): Promise<Socket> {
  const socket = connectTcp({ port, host: "127.0.0.1", noDelay: true, allowHalfOpen: true });
  socket.on("error", () => {});
  await once(socket, "connect");
  for (const piece of pieces) await new Promise((resolve) => socket.write(piece, resolve));
  return socket;
}

const refusals = (gate: Gate) => gate.logs.filter((l) => l.reason === "route");

function config(port: number, body: readonly string[], more: readonly string[] = []): string {
  return [
    "version: 1",
    "shutdownTimeout: 1s",
    ...more,
    "listeners:",
    "  - name: tls",
    `    listen: 127.0.0.1:${port}`,
    "    connectTimeout: 1s",
    ...body,
    "",
  ].join("\n");
}

describe("real TLS clients and servers", () => {
  test("exact names, one-label wildcards, any case; the default for the rest and for no name", BOUNDED, async (t) => {
    const c = cleanup();
    t.after(() => c.run());
    const [db, apps, fallback] = await tlsTargets(c, "db", "apps", "default");
    const port = await freePort();
    c.add(
      await startGate(
        config(port, [
          "    routes:",
          "      - sni: [db.example.com]",
          `        targets: ["${db?.address}"]`,
          '      - sni: ["*.apps.example.com"]',
          `        targets: ["${apps?.address}"]`,
          `    targets: ["${fallback?.address}"]`,
        ]),
      ),
    );
    assert.equal(await tag(port, "db.example.com"), "db");
    assert.equal(await tag(port, "DB.Example.COM"), "db");
    assert.equal(await tag(port, "shop.apps.example.com"), "apps");
    assert.equal(await tag(port, "a.shop.apps.example.com"), "default");
    assert.equal(await tag(port, "apps.example.com"), "default");
    assert.equal(await tag(port, "other.example.org"), "default");
    assert.equal(await tag(port), "default");
  });

  test("each bridge's access-log line names its route and the server name the client sent", BOUNDED, async (t) => {
    const c = cleanup();
    t.after(() => c.run());
    const [db, apps, fallback] = await tlsTargets(c, "db", "apps", "default");
    const port = await freePort();
    const gate = await startGate(
      config(port, [
        "    routes:",
        "      - sni: [db.example.com]",
        `        targets: ["${db?.address}"]`,
        '      - sni: ["*.apps.example.com", apps.example.com]',
        `        targets: ["${apps?.address}"]`,
        `    targets: ["${fallback?.address}"]`,
      ]),
    );
    c.add(gate);
    /** The access-log line of one TLS client's bridge, once the client has left. */
    const accessLine = async (servername?: string) => {
      const from = gate.logs.length;
      const { socket } = await tlsVisit(port, servername);
      const clientPort = socket.localPort ?? 0;
      socket.destroy();
      const line = await gate.bridgeEnd(clientPort, from);
      assert.equal(line.msg, "bridge closed");
      return line;
    };
    const toDb = await accessLine("db.example.com");
    assert.deepEqual([toDb.route, toDb.serverName, toDb.target], ["db.example.com", "db.example.com", db?.address]);
    // The route by its names joined by "," (as /status and metrics label it); the name as the client sent it.
    const toApps = await accessLine("Shop.Apps.Example.com");
    assert.deepEqual(
      [toApps.route, toApps.serverName, toApps.target],
      ["*.apps.example.com,apps.example.com", "Shop.Apps.Example.com", apps?.address],
    );
    // No route took it: the listener's own targets, and no route field.
    const unrouted = await accessLine("other.example.org");
    assert.deepEqual([unrouted.serverName, unrouted.target], ["other.example.org", fallback?.address]);
    assert.equal("route" in unrouted, false);
    const nameless = await accessLine();
    assert.equal(nameless.target, fallback?.address);
    assert.equal("route" in nameless || "serverName" in nameless, false);
  });

  test("openssl s_client -servername reaches the route for its name", BOUNDED, async (t) => {
    const c = cleanup();
    t.after(() => c.run());
    const [db, other] = await tlsTargets(c, "db", "other");
    const port = await freePort();
    c.add(
      await startGate(
        config(port, [
          "    routes:",
          "      - sni: [db.example.com]",
          `        targets: ["${db?.address}"]`,
          `    targets: ["${other?.address}"]`,
        ]),
      ),
    );
    const child = spawn(
      "openssl",
      ["s_client", "-connect", `127.0.0.1:${port}`, "-servername", "db.example.com", "-quiet"],
      {
        stdio: ["pipe", "pipe", "ignore"],
      },
    );
    const started = await Promise.race([once(child, "spawn").then(() => true), once(child, "error").then(() => false)]);
    if (!started) {
      t.skip("openssl is not installed");
      return;
    }
    t.after(() => child.kill("SIGKILL"));
    let out = "";
    child.stdout.on("data", (chunk: Buffer) => {
      out += chunk.toString();
    });
    await eventually(() => out.includes("\n"), 5000, `openssl printed ${JSON.stringify(out)}`);
    assert.equal(out.split("\n")[0], "db");
  });

  test(
    "a reload changes a route's targets: open bridges carry on, new clients go to the new target",
    BOUNDED,
    async (t) => {
      const c = cleanup();
      t.after(() => c.run());
      const [first, second] = await tlsTargets(c, "first", "second");
      const port = await freePort();
      const adminPort = await freePort();
      const yaml = (target: string) =>
        config(
          port,
          ["    routes:", "      - sni: [db.example.com]", `        targets: ["${target}"]`],
          ["admin:", `  listen: 127.0.0.1:${adminPort}`],
        );
      const gate = c.add(await startGate(yaml(first?.address as string)));
      const open = await tlsVisit(port, "db.example.com");
      c.sockets([open.socket]);
      assert.equal(open.tag, "first");
      gate.write(yaml(second?.address as string));
      await gate.reload();
      assert.equal(await tag(port, "db.example.com"), "second");
      // The bridge opened before the reload still carries bytes both ways.
      open.socket.write("still here\n");
      let echoed = "";
      open.socket.on("data", (chunk: Buffer) => {
        echoed += chunk.toString();
      });
      await eventually(() => echoed.includes("still here"), 3000);
      const status = await targetStatus(adminPort, "tls");
      assert.deepEqual(
        status.map((s) => [(s as { route?: string }).route, s.address, s.openBridges]),
        [["db.example.com", second?.address, 0]],
      );
      const metrics = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
      assert.match(metrics, /tcpgate_target_up\{listener="tls",route="db\.example\.com",target="127\.0\.0\.1:\d+"\} 1/);
    },
  );
});

describe("bytes as sent", () => {
  let hello: Buffer;
  before(async () => {
    hello = await captureClientHello({ servername: "db.example.com" });
  });

  test(
    "a ClientHello over many records and segments reaches the route's target unchanged, after the route's PROXY header",
    BOUNDED,
    async (t) => {
      const c = cleanup();
      t.after(() => c.run());
      const [db, other] = await targets(c, "db", "other");
      const port = await freePort();
      c.add(
        await startGate(
          config(port, [
            "    routes:",
            "      - sni: [db.example.com]",
            `        targets: ["${db?.address}"]`,
            "        proxyProtocol: v2",
            `    targets: ["${other?.address}"]`,
          ]),
        ),
      );
      const bytes = Buffer.concat([refragment(hello, 40), Buffer.from("then more")]);
      const pieces = Array.from({ length: Math.ceil(bytes.length / 33) }, (_, i) =>
        bytes.subarray(i * 33, (i + 1) * 33),
      );
      const socket = await rawSend(port, pieces);
      c.sockets([socket]);
      const received = () => Buffer.concat(db?.received[0] ?? []);
      await eventually(() => received().length >= bytes.length, 3000, `got ${received().length} bytes`);
      const header = proxyHeaderV2({
        sourceAddress: "127.0.0.1",
        sourcePort: socket.localPort ?? 0,
        destinationAddress: "127.0.0.1",
        destinationPort: port,
      });
      assert.deepEqual(received(), Buffer.concat([header, bytes]));
      assert.equal(other?.accepted(), 0);
    },
  );

  test(
    "behind a balancer: the PROXY header is read first, the ClientHello after it routes, and the header sent on names the client",
    BOUNDED,
    async (t) => {
      const c = cleanup();
      t.after(() => c.run());
      const [db] = await targets(c, "db");
      const port = await freePort();
      c.add(
        await startGate(
          config(port, [
            "    acceptProxy: {from: [127.0.0.2]}",
            "    routes:",
            "      - sni: [db.example.com]",
            `        targets: ["${db?.address}"]`,
            "        proxyProtocol: v2",
          ]),
        ),
      );
      const header = "PROXY TCP4 192.0.2.7 198.51.100.1 5555 443\r\n";
      // One write: the header, the ClientHello and more, in the same segment.
      const socket = connectTcp({ port, host: "127.0.0.1", localAddress: "127.0.0.2" });
      socket.on("error", () => {});
      c.sockets([socket]);
      await once(socket, "connect");
      socket.write(Buffer.concat([Buffer.from(header), hello, Buffer.from("more")]));
      const received = () => Buffer.concat(db?.received[0] ?? []);
      // Sent on in v2, so the balancer's own v1 line cannot pass for it.
      const onward = proxyHeaderV2({
        sourceAddress: "192.0.2.7",
        sourcePort: 5555,
        destinationAddress: "198.51.100.1",
        destinationPort: 443,
      });
      const expected = Buffer.concat([onward, hello, Buffer.from("more")]);
      await eventually(() => received().length >= expected.length, 3000, `got ${received().length} bytes`);
      assert.deepEqual(received(), expected);
    },
  );
});

describe("refused with reason route, nothing sent to a target", () => {
  test("no route and no default, not TLS, no ClientHello in time", BOUNDED, async (t) => {
    const c = cleanup();
    t.after(() => c.run());
    const [db] = await targets(c, "db");
    const port = await freePort();
    const gate = c.add(
      await startGate(
        config(port, ["    routes:", "      - sni: [db.example.com]", `        targets: ["${db?.address}"]`]),
      ),
    );
    const cases: [Buffer[], string, number][] = [
      [[await captureClientHello({ servername: "other.example.com" })], "no route for other.example.com", 0],
      [[await captureClientHello({})], "no server name, no default targets", 0],
      [[Buffer.from("GET / HTTP/1.1\r\nHost: db.example.com\r\n\r\n")], "not a TLS handshake", 0],
      [[Buffer.from([0x16, 3, 1])], "no ClientHello within 1000 ms", 1000],
    ];
    for (const [pieces, rule, waitMs] of cases) {
      const from = refusals(gate).length;
      const started = performance.now();
      const socket = await rawSend(port, pieces);
      assert.equal(await endOf(socket, 4000), "end", rule);
      const ms = performance.now() - started;
      assert.ok(ms >= waitMs * 0.9 && ms < waitMs + 1500, `${rule}: closed after ${Math.round(ms)} ms`);
      await eventually(() => refusals(gate).length > from, 3000);
      assert.equal(refusals(gate)[from]?.rule, rule);
      socket.destroy();
    }
    assert.equal(db?.accepted(), 0);
  });

  test("plain bytes to a listener with default targets are refused too", BOUNDED, async (t) => {
    const c = cleanup();
    t.after(() => c.run());
    const [db, other] = await targets(c, "db", "other");
    const port = await freePort();
    const gate = c.add(
      await startGate(
        config(port, [
          "    routes:",
          "      - sni: [db.example.com]",
          `        targets: ["${db?.address}"]`,
          `    targets: ["${other?.address}"]`,
        ]),
      ),
    );
    const socket = await rawSend(port, [Buffer.from("SSH-2.0-OpenSSH_9.6\r\n")]);
    assert.equal(await endOf(socket, 3000), "end");
    await eventually(() => refusals(gate).length === 1, 3000);
    assert.equal((db?.accepted() ?? 0) + (other?.accepted() ?? 0), 0);
  });
});
