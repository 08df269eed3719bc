// End-to-end bridge behaviour through the real CLI: bytes, half-closes, resets, failover,
// many bridges at once, and the access-log line. Real sockets on 127.0.0.1 only.
import assert from "node:assert/strict";
import { once } from "node:events";
import type { Socket } from "node:net";
import { after, before, describe, test } from "node:test";
import { type Gate, startGate } from "../support/cli.ts";
import {
  dial,
  endOf,
  eventually,
  freePort,
  freePorts,
  readAll,
  startEcho,
  startServer,
  type TestServer,
} from "../support/net.ts";
import { configText } from "../support/reload.ts";
import { receiveHash, sendRandom } from "../support/streams.ts";

/** Every test is bounded on its own: a hang fails that test, not the run. */
const BOUNDED = { timeout: 15_000 };

const MiB = 1024 * 1024;

describe("bridge", () => {
  let echo: TestServer;
  let custom: TestServer;
  let proxy: Gate;
  let deadA: number;
  let deadB: number;
  // The custom target hands each new connection to whatever the running test set here.
  let onTarget: (socket: Socket) => void = (socket) => socket.destroy();
  const nextTarget = (): Promise<Socket> =>
    new Promise((resolve) => {
      onTarget = resolve;
    });

  before(async () => {
    echo = await startEcho();
    custom = await startServer((socket) => onTarget(socket));
    // Ports nobody listens on: connecting there is refused at once.
    deadA = await freePort();
    deadB = await freePort();
    const [p1 = 0, p2 = 0, p3 = 0, p4 = 0] = await freePorts(4);
    proxy = await startGate(
      configText(
        [
          { name: "echo", listen: `127.0.0.1:${p1}`, targets: [echo.address] },
          { name: "custom", listen: `127.0.0.1:${p2}`, targets: [custom.address] },
          { name: "failover", listen: `127.0.0.1:${p3}`, targets: [`127.0.0.1:${deadA}`, echo.address] },
          {
            name: "alldown",
            listen: `127.0.0.1:${p4}`,
            targets: [`127.0.0.1:${deadA}`, `127.0.0.1:${deadB}`],
            settings: { connectTimeout: "2s" },
          },
        ],
        { shutdownTimeout: "2s" },
      ),
    );
  });

  after(async () => {
    await proxy?.close();
    await echo?.close();
    await custom?.close();
  });

  test("64 MiB each way at the same time arrive unchanged", { timeout: 30_000 }, async () => {
    const targetSide = nextTarget();
    const client = await proxy.dial(proxy.port("custom"));
    const target = await targetSide;
    const [upSent, downSent, upReceived, downReceived] = await Promise.all([
      sendRandom(client, 64 * MiB),
      sendRandom(target, 64 * MiB),
      receiveHash(target),
      receiveHash(client),
    ]);
    assert.equal(upReceived.bytes, 64 * MiB);
    assert.equal(downReceived.bytes, 64 * MiB);
    assert.equal(upReceived.sha256, upSent, "client → target bytes differ");
    assert.equal(downReceived.sha256, downSent, "target → client bytes differ");
    const line = await proxy.bridgeEnd(client);
    assert.equal(line.bytesUp, 64 * MiB);
    assert.equal(line.bytesDown, 64 * MiB);
  });

  test("a client that half-closes still gets the reply sent after the target read EOF", BOUNDED, async () => {
    const targetSide = nextTarget();
    const client = await proxy.dial(proxy.port("custom"));
    const target = await targetSide;
    const question = readAll(target);
    client.end("question");
    assert.equal((await question).toString(), "question");
    // The target has seen EOF (readAll resolved on it); only now does it answer, then closes its half.
    const reply = readAll(client);
    target.end("answer after EOF");
    assert.equal((await reply).toString(), "answer after EOF");
    const line = await proxy.bridgeEnd(client);
    assert.equal(line.end, "client-closed");
  });

  test("a target that half-closes first still receives what the client sends", BOUNDED, async () => {
    const targetSide = nextTarget();
    const client = await proxy.dial(proxy.port("custom"));
    const target = await targetSide;
    const received = readAll(target);
    const goodbye = readAll(client);
    target.end("goodbye");
    assert.equal((await goodbye).toString(), "goodbye");
    assert.equal(client.readableEnded, true);
    // A write through the half-closed bridge arrives on its own, then the client ends.
    const still = once(target, "data");
    client.write("still ");
    await still;
    client.end("talking");
    assert.equal((await received).toString(), "still talking");
    const line = await proxy.bridgeEnd(client);
    assert.equal(line.end, "target-closed");
  });

  test("a target that speaks first (a banner) reaches a silent client", BOUNDED, async () => {
    const targetSide = nextTarget();
    const client = await proxy.dial(proxy.port("custom"));
    const target = await targetSide;
    target.write("220 tcpgate test banner\r\n");
    const [banner] = (await once(client, "data")) as [Buffer];
    assert.equal(banner.toString(), "220 tcpgate test banner\r\n");
    target.pipe(target);
    client.write("after banner");
    const [echoed] = (await once(client, "data")) as [Buffer];
    assert.equal(echoed.toString(), "after banner");
    client.end();
    await proxy.bridgeEnd(client);
  });

  test("a client reset is passed on as a reset to the target", BOUNDED, async () => {
    const targetSide = nextTarget();
    const client = await proxy.dial(proxy.port("custom"));
    const target = await targetSide;
    const targetEnd = endOf(target);
    // A byte through first, so the bridge is surely joined.
    client.write("x");
    await once(target, "data");
    client.resetAndDestroy();
    assert.equal(await targetEnd, "reset");
    const line = await proxy.bridgeEnd(client);
    assert.equal(line.end, "client-reset");
  });

  test("a target reset is passed on as a reset to the client", BOUNDED, async () => {
    const targetSide = nextTarget();
    const client = await proxy.dial(proxy.port("custom"));
    const target = await targetSide;
    const clientEnd = endOf(client);
    target.write("x");
    await once(client, "data");
    target.resetAndDestroy();
    assert.equal(await clientEnd, "reset");
    const line = await proxy.bridgeEnd(client);
    assert.equal(line.end, "target-reset");
  });

  test("a target that refuses is skipped and the next one serves the client", BOUNDED, async () => {
    // A fresh round-robin starts with the first target, the dead one.
    const client = await proxy.dial(proxy.port("failover"));
    const reply = readAll(client);
    client.end("through the second target");
    assert.equal((await reply).toString(), "through the second target");
    const line = await proxy.bridgeEnd(client);
    assert.equal(line.target, echo.address);
    assert.deepEqual(line.errors, [`127.0.0.1:${deadA} ECONNREFUSED`]);
    assert.equal(line.end, "client-closed");
  });

  test("with every target down the client is closed, within connectTimeout", BOUNDED, async () => {
    const started = performance.now();
    const client = await proxy.dial(proxy.port("alldown"));
    const how = await endOf(client, 2000 + 1000);
    const elapsed = performance.now() - started;
    assert.notEqual(how, "timeout", "the client was left hanging");
    assert.ok(elapsed < 2000 + 1000, `closed after ${elapsed} ms`);
    const line = await proxy.bridgeEnd(client);
    assert.equal(line.end, "connect-failed");
    assert.equal(line.target, undefined);
    assert.deepEqual(
      [...(line.errors as string[])].sort(),
      [`127.0.0.1:${deadA} ECONNREFUSED`, `127.0.0.1:${deadB} ECONNREFUSED`].sort(),
    );
    assert.equal(line.bytesUp, 0);
    assert.equal(line.bytesDown, 0);
  });

  test("the access-log line counts the bytes each way and says who, where and how", BOUNDED, async () => {
    const targetSide = nextTarget();
    const started = performance.now();
    const mark = proxy.logs.length;
    const client = await proxy.dial(proxy.port("custom"));
    const clientPort = client.localPort;
    const target = await targetSide;
    const up = await new Promise<Buffer>((resolve) => {
      const chunks: Buffer[] = [];
      target.on("data", (c: Buffer) => chunks.push(c));
      target.once("end", () => resolve(Buffer.concat(chunks)));
      client.end(Buffer.alloc(12_345, 1));
    });
    assert.equal(up.length, 12_345);
    const down = readAll(client);
    target.end(Buffer.alloc(54_321, 2));
    assert.equal((await down).length, 54_321);
    await once(client, "close");
    const elapsed = performance.now() - started;
    const line = await proxy.bridgeEnd(client);
    assert.equal(line.msg, "bridge closed");
    assert.equal(line.level, 30);
    assert.equal(line.listener, "custom");
    assert.equal(line.client, "127.0.0.1");
    assert.equal(line.clientPort, clientPort);
    assert.equal(line.target, custom.address);
    assert.equal(line.bytesUp, 12_345);
    assert.equal(line.bytesDown, 54_321);
    assert.equal(line.end, "client-closed");
    assert.equal(typeof line.durationMs, "number");
    assert.ok((line.durationMs as number) >= 0 && (line.durationMs as number) <= elapsed + 50, `${line.durationMs}`);
    assert.equal(line.errors, undefined);
    // A later bridge's line is the barrier: a second line for this one would come before it.
    const later = await proxy.dial(proxy.port("echo"));
    later.end();
    await proxy.bridgeEnd(later);
    const mine = proxy.bridgeLines(mark).filter((l) => l.listener === "custom" && l.clientPort === clientPort);
    assert.equal(mine.length, 1, "one line per bridge");
  });

  test("500 bridges open at once all echo correctly", { timeout: 30_000 }, async () => {
    const count = 500;
    const mark = proxy.logs.length;
    // Connects bounded by the test's own timeout, not each by a few seconds: on a loaded
    // machine a burst of 500 takes longer to be connected than a single client.
    const clients = await Promise.all(Array.from({ length: count }, () => dial(proxy.port("echo"))));
    const ports = new Set(clients.map((c) => c.localPort as number));
    try {
      // Every bridge is open at the same time before any of them talks.
      await eventually(() => echo.sockets.size >= count, 20_000, `${count} connections at the echo server`);
      const messages = clients.map((_, i) => Buffer.from(`bridge ${i} `.repeat(50)));
      const replies = clients.map((client) => readAll(client));
      clients.forEach((client, i) => {
        client.end(messages[i] as Buffer);
      });
      const received = await Promise.all(replies);
      for (let i = 0; i < count; i++) assert.ok(received[i]?.equals(messages[i] as Buffer), `bridge ${i} garbled`);
      const lines = () =>
        proxy.bridgeLines(mark).filter((l) => l.listener === "echo" && ports.has(l.clientPort as number));
      await eventually(() => lines().length >= count, 20_000, "an access-log line for each bridge");
      const ends = new Map<unknown, number>();
      for (const line of lines()) ends.set(line.end, (ends.get(line.end) ?? 0) + 1);
      assert.deepEqual(Object.fromEntries(ends), { "client-closed": count });
    } finally {
      for (const client of clients) client.destroy();
    }
  });
});
