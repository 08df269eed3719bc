// The access log (SPEC §6) and `inspect` previews, end to end through the real CLI: one
// JSON line per bridge when it ends, with the bytes a known transfer really moved; one
// "refused: …" line per refused client and no bridge line for it; exactly one line per
// admitted bridge however it ended; and, with `inspect: true` at trace level, a bounded
// hex/ASCII preview of every chunk each way.
import assert from "node:assert/strict";
import type { Socket } from "node:net";
import { after, before, describe, test } from "node:test";
import { echoes } from "../support/admission.ts";
import { type Gate, type LogLine, startGate } from "../support/cli.ts";
import { eventually, freePorts, readAll, startServer, type TestServer } from "../support/net.ts";

/** Every test is bounded in time: a hang fails it instead of stalling the suite. */
const BOUNDED = { timeout: 20_000 };

const isBridgeLine = (l: LogLine) => l.msg === "bridge closed" || l.msg === "no target reachable";

/** The fields of an access-log line, as documented; pino adds level, time, pid and msg. */
const ACCESS_FIELDS = [
  "bytesDown",
  "bytesUp",
  "client",
  "clientPort",
  "durationMs",
  "end",
  "level",
  "listener",
  "msg",
  "pid",
  "target",
  "time",
];

/**
 * A target for a known transfer: it reads everything the client sends until the client's
 * FIN, then answers with `reply` bytes and closes its side. The client closes first.
 */
function startSink(reply: number): Promise<TestServer & { received: () => number }> {
  let received = 0;
  return startServer((socket) => {
    socket.on("data", (chunk: Buffer) => {
      received += chunk.length;
    });
    socket.on("end", () => socket.end(Buffer.alloc(reply, 0x42)));
  }).then((server) => Object.assign(server, { received: () => received }));
}

/** Echoes each chunk; a chunk containing "BYE" is echoed and then the target closes its side. */
function startByeEcho(): Promise<TestServer> {
  return startServer((socket) => {
    socket.on("data", (chunk: Buffer) => {
      if (chunk.includes("BYE")) socket.end(chunk);
      else socket.write(chunk);
    });
    socket.on("end", () => socket.end());
  });
}

describe("access log", () => {
  let sink: TestServer & { received: () => number };
  let echo: TestServer;
  let gate: Gate;
  let bulkPort: number;
  let echoPort: number;
  let deadPort: number;
  let nowhere: number;

  before(async () => {
    sink = await startSink(250_000);
    echo = await startByeEcho();
    [bulkPort = 0, echoPort = 0, deadPort = 0, nowhere = 0] = await freePorts(4);
    gate = await startGate(
      [
        "version: 1",
        "shutdownTimeout: 1s",
        "listeners:",
        "  - name: bulk",
        `    listen: 127.0.0.1:${bulkPort}`,
        `    targets: ["${sink.address}"]`,
        "  - name: echo",
        `    listen: 127.0.0.1:${echoPort}`,
        `    targets: ["${echo.address}"]`,
        "    deny: [127.0.0.3]",
        "  - name: dead",
        `    listen: 127.0.0.1:${deadPort}`,
        `    targets: ["127.0.0.1:${nowhere}"]`,
        "",
      ].join("\n"),
    );
  });
  after(async () => {
    await gate?.close();
    await sink?.close();
    await echo?.close();
  });

  /**
   * A later bridge's line, logged: a line that an earlier bridge should not have had
   * (a second one, or a bridge line for a refused client) would have come before it.
   */
  async function barrier(): Promise<void> {
    const later = await gate.dial(echoPort, "127.0.0.2");
    await echoes(later, "a later bridge");
    later.end();
    await gate.bridgeEnd(later);
  }

  test("one line per bridge with the bytes of a known transfer: 100,000 up, 250,000 down", BOUNDED, async () => {
    const started = performance.now();
    const client = await gate.dial(bulkPort, "127.0.0.2");
    const clientPort = client.localPort;
    const down = readAll(client);
    client.end(Buffer.alloc(100_000, 0x41));
    assert.equal((await down).length, 250_000);
    const elapsed = performance.now() - started;
    const line = await gate.bridgeEnd(client);
    assert.equal(sink.received(), 100_000);

    assert.equal(line.msg, "bridge closed");
    assert.equal(line.level, 30, "info");
    assert.equal(line.listener, "bulk");
    assert.equal(line.client, "127.0.0.2");
    assert.equal(line.clientPort, clientPort);
    assert.equal(line.target, sink.address);
    assert.equal(line.bytesUp, 100_000);
    assert.equal(line.bytesDown, 250_000);
    assert.equal(line.end, "client-closed");
    assert.ok(Number.isInteger(line.durationMs) && (line.durationMs as number) >= 0, `durationMs ${line.durationMs}`);
    assert.ok((line.durationMs as number) <= elapsed + 50, `durationMs ${line.durationMs} > ${elapsed} measured`);
    assert.equal(typeof line.time, "string");
    assert.deepEqual(Object.keys(line).sort(), ACCESS_FIELDS, "the documented fields, no more");
    await barrier();
    assert.equal(gate.logs.filter((l) => isBridgeLine(l) && l.clientPort === clientPort).length, 1);
  });

  test("a refused client: one 'refused: …' line and no bridge line", BOUNDED, async () => {
    const refused = await gate.tryRefused(echoPort, "127.0.0.3");
    assert.notEqual(refused.how, "timeout");
    const line = await gate.refusalLine(refused);
    assert.match(String(line.msg), /^refused: deny: 127\.0\.0\.3\b/);
    assert.equal(line.listener, "echo");
    assert.equal(line.client, "127.0.0.3");
    assert.equal(line.clientPort, refused.port);
    assert.equal(line.reason, "deny");
    await barrier();
    const mine = gate.logs.slice(refused.from).filter((l) => l.clientPort === refused.port);
    assert.equal(mine.length, 1, "one line for the refused connection");
    assert.equal(mine[0], line);
  });

  test("a target that cannot be reached: one 'no target reachable' line with end connect-failed", BOUNDED, async () => {
    const client = await gate.dial(deadPort, "127.0.0.2");
    const line = await gate.bridgeEnd(client);
    assert.equal(line.msg, "no target reachable");
    assert.equal(line.level, 40, "warn");
    assert.equal(line.listener, "dead");
    assert.equal(line.client, "127.0.0.2");
    assert.equal(line.end, "connect-failed");
    assert.equal(line.target, undefined, "no target carried it");
    assert.equal(line.bytesUp, 0);
    assert.equal(line.bytesDown, 0);
    assert.deepEqual(line.errors, [`127.0.0.1:${nowhere} ECONNREFUSED`]);
  });

  test("every admitted bridge gets exactly one line, however it ends: 50 connections, 50 lines", BOUNDED, async () => {
    const from = gate.logs.length;
    const ways = ["client-closed", "target-closed", "client-reset"] as const;
    const runs = Array.from({ length: 50 }, async (_, i) => {
      const way = ways[i % ways.length] ?? "client-closed";
      const client = await gate.dial(echoPort, "127.0.0.2");
      // Read now: a closed socket no longer knows its local port.
      const port = client.localPort ?? 0;
      const text = `bridge ${i}`;
      await echoes(client, text);
      let sent = text.length;
      if (way === "client-closed") {
        client.end();
      } else if (way === "target-closed") {
        await echoes(client, "BYE");
        sent += 3;
        client.end();
      } else {
        client.resetAndDestroy();
      }
      return { port, way, sent, client };
    });
    const clients = await Promise.all(runs);
    const ports = new Set(clients.map((c) => c.port));
    assert.equal(ports.size, 50);
    const lines = () => gate.logs.slice(from).filter((l) => isBridgeLine(l) && ports.has(l.clientPort as number));
    await eventually(() => lines().length >= 50, 10_000, "50 access-log lines");
    await barrier();
    const logged = lines();
    assert.equal(logged.length, 50);
    for (const c of clients) {
      const mine = logged.filter((l) => l.clientPort === c.port);
      assert.equal(mine.length, 1, `one line for client port ${c.port}`);
      const line = mine[0] as LogLine;
      assert.equal(line.msg, "bridge closed");
      assert.equal(line.end, c.way, `bridge from port ${c.port}`);
      assert.equal(line.bytesUp, c.sent);
      assert.equal(line.bytesDown, c.sent);
      assert.equal(line.target, echo.address);
      c.client.destroy();
    }
  });
});

describe("inspect", () => {
  let target: TestServer;
  before(async () => {
    // "hello" is answered with "world"; any other chunk with its length.
    target = await startServer((socket) => {
      socket.on("data", (chunk: Buffer) =>
        socket.write(chunk.toString() === "hello" ? "world" : `got ${chunk.length}`),
      );
      socket.on("end", () => socket.end());
    });
  });
  after(async () => {
    await target?.close();
  });

  /** A tcpgate with two listeners, peek (inspected) and plain, logging at level. */
  async function start(level: string): Promise<Gate> {
    const [peek = 0, plain = 0] = await freePorts(2);
    return startGate(
      [
        "version: 1",
        "shutdownTimeout: 1s",
        "listeners:",
        "  - name: peek",
        `    listen: 127.0.0.1:${peek}`,
        `    targets: ["${target.address}"]`,
        "    inspect: true",
        "  - name: plain",
        `    listen: 127.0.0.1:${plain}`,
        `    targets: ["${target.address}"]`,
        "",
      ].join("\n"),
      { logLevel: level },
    );
  }

  /** Writes data and resolves with the first `length` bytes that come back, as text. */
  async function ask(socket: Socket, data: string | Buffer, length: number): Promise<string> {
    return new Promise((resolve, reject) => {
      let got = "";
      const timer = setTimeout(() => reject(new Error(`no answer, got ${JSON.stringify(got)}`)), 3000);
      const onData = (chunk: Buffer) => {
        got += chunk.toString();
        if (got.length >= length) {
          clearTimeout(timer);
          socket.off("data", onData);
          resolve(got);
        }
      };
      socket.on("data", onData);
      socket.write(data);
    });
  }

  const previews = (gate: Gate, listener: string, clientPort?: number) =>
    gate.logs.filter(
      (l) => l.msg === "data" && l.listener === listener && (clientPort === undefined || l.clientPort === clientPort),
    );

  test(
    "trace: a small exchange and a 200-byte chunk, previewed each way; nothing without inspect",
    BOUNDED,
    async () => {
      const gate = await start("trace");
      try {
        const client = await gate.dial(gate.port("peek"), "127.0.0.2");
        assert.equal(await ask(client, "hello", 5), "world");
        await gate.waitForLog(() => previews(gate, "peek").length >= 2);
        const [up, down] = previews(gate, "peek");
        assert.deepEqual(
          { ...up, time: undefined, pid: undefined },
          {
            level: 10,
            time: undefined,
            pid: undefined,
            listener: "peek",
            client: "127.0.0.2",
            clientPort: client.localPort,
            direction: "up",
            length: 5,
            hex: "68656c6c6f",
            ascii: "hello",
            truncated: false,
            msg: "data",
          },
        );
        assert.equal(down?.level, 10);
        assert.equal(down?.direction, "down");
        assert.equal(down?.length, 5);
        assert.equal(down?.hex, Buffer.from("world").toString("hex"));
        assert.equal(down?.ascii, "world");
        assert.equal(down?.truncated, false);
        assert.equal(down?.clientPort, client.localPort);

        // 200 bytes, 0x00..0xc7: the preview is the first 64, the length the whole chunk's.
        const chunk = Buffer.from(Array.from({ length: 200 }, (_, i) => i));
        assert.equal(await ask(client, chunk, "got 200".length), "got 200");
        await gate.waitForLog(() => previews(gate, "peek").length >= 4);
        const big = previews(gate, "peek")[2];
        assert.equal(big?.direction, "up");
        assert.equal(big?.length, 200);
        assert.equal(big?.hex, chunk.subarray(0, 64).toString("hex"));
        assert.equal(String(big?.hex).length, 128);
        const ascii = [...chunk.subarray(0, 64)]
          .map((b) => (b >= 0x20 && b <= 0x7e ? String.fromCharCode(b) : "."))
          .join("");
        assert.equal(big?.ascii, ascii);
        assert.equal(String(big?.ascii).length, 64);
        assert.equal(big?.truncated, true);
        const reply = previews(gate, "peek")[3];
        assert.equal(reply?.direction, "down");
        assert.equal(reply?.ascii, "got 200");

        // The same exchange through the listener without inspect: no preview at all.
        const plain = await gate.dial(gate.port("plain"), "127.0.0.2");
        const plainPort = plain.localPort;
        assert.equal(await ask(plain, "hello", 5), "world");
        plain.end();
        await gate.waitForLog((l) => l.msg === "bridge closed" && l.clientPort === plainPort);
        assert.equal(previews(gate, "plain").length, 0);
        assert.equal(gate.logs.filter((l) => l.msg === "data").length, 4, "only the inspected bridge's chunks");
      } finally {
        await gate.close();
      }
    },
  );

  test("inspect: true below trace level logs no preview", BOUNDED, async () => {
    const gate = await start("debug");
    const client = await gate.dial(gate.port("peek"), "127.0.0.2");
    const clientPort = client.localPort;
    try {
      assert.equal(await ask(client, "hello", 5), "world");
      client.end();
      await gate.waitForLog((l) => l.msg === "bridge closed" && l.clientPort === clientPort);
      assert.equal(gate.logs.filter((l) => l.msg === "data" || l.level === 10).length, 0);
    } finally {
      await gate.close();
    }
  });
});
