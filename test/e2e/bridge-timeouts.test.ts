// The bridge's clocks, end to end through the real CLI: connectTimeout (against a
// loopback black hole), idleTimeout, maxDuration and halfCloseTimeout. Durations are
// only checked as bounds with generous slack.
import assert from "node:assert/strict";
import { once } from "node:events";
import type { Socket } from "node:net";
import { after, before, describe, test } from "node:test";
import { type BlackHole, startBlackHole } from "../support/blackhole.ts";
import { type Gate, startGate } from "../support/cli.ts";
import { delay, endOf, freePort, freePorts, readAll, startEcho, startServer, type TestServer } from "../support/net.ts";
import { configText } from "../support/reload.ts";

/** Every test is bounded on its own: a hang fails that test, not the run. */
const BOUNDED = { timeout: 15_000 };

/** Slack on top of a timeout before a test calls it missed (a loaded 2-core CI box). */
const SLACK_MS = 1500;
/** Timers may fire a little early relative to our own clock. */
const EARLY_MS = 100;

describe("bridge timeouts", () => {
  let echo: TestServer;
  let custom: TestServer;
  let blackHole: BlackHole;
  let proxy: Gate;
  let dead: number;
  const waiting: ((socket: Socket) => void)[] = [];
  const nextTarget = (): Promise<Socket> => new Promise((resolve) => waiting.push(resolve));

  before(async () => {
    echo = await startEcho();
    custom = await startServer((socket) => {
      const take = waiting.shift();
      if (take) take(socket);
      else socket.destroy();
    });
    blackHole = await startBlackHole();
    dead = await freePort();
    const [p1 = 0, p2 = 0, p3 = 0, p4 = 0, p5 = 0] = await freePorts(5);
    proxy = await startGate(
      configText(
        [
          {
            name: "blackhole",
            listen: `127.0.0.1:${p1}`,
            targets: [blackHole.address, echo.address],
            settings: { connectTimeout: "1s" },
          },
          {
            name: "bh-alldown",
            listen: `127.0.0.1:${p2}`,
            targets: [blackHole.address, `127.0.0.1:${dead}`],
            settings: { connectTimeout: "1s" },
          },
          { name: "idle", listen: `127.0.0.1:${p3}`, targets: [custom.address], settings: { idleTimeout: "500ms" } },
          { name: "maxdur", listen: `127.0.0.1:${p4}`, targets: [echo.address], settings: { maxDuration: "1s" } },
          {
            name: "halfclose",
            listen: `127.0.0.1:${p5}`,
            targets: [custom.address],
            settings: { halfCloseTimeout: "800ms" },
          },
        ],
        { shutdownTimeout: "2s" },
      ),
    );
  });

  after(async () => {
    await proxy?.close();
    await blackHole?.close();
    await echo?.close();
    await custom?.close();
  });

  test("a black-hole target is given up after connectTimeout and the next one used", BOUNDED, async () => {
    const started = performance.now();
    const client = await proxy.dial(proxy.port("blackhole"));
    const reply = readAll(client);
    client.end("ping");
    assert.equal((await reply).toString(), "ping");
    const elapsed = performance.now() - started;
    assert.ok(elapsed >= 1000 - EARLY_MS, `the black hole answered? reply after ${elapsed} ms`);
    assert.ok(elapsed < 1000 + SLACK_MS, `connectTimeout missed: reply after ${elapsed} ms`);
    const line = await proxy.bridgeEnd(client);
    assert.equal(line.target, echo.address);
    assert.deepEqual(line.errors, [`${blackHole.address} ETIMEDOUT`]);
    assert.equal(line.end, "client-closed");
  });

  test("when every target is down or silent the client is closed within connectTimeout", BOUNDED, async () => {
    const started = performance.now();
    const client = await proxy.dial(proxy.port("bh-alldown"));
    await endOf(client);
    const elapsed = performance.now() - started;
    assert.ok(elapsed < 1000 + SLACK_MS, `client closed after ${elapsed} ms`);
    const line = await proxy.bridgeEnd(client);
    assert.equal(line.end, "connect-failed");
    assert.equal(line.msg, "no target reachable");
    assert.deepEqual(
      [...(line.errors as string[])].sort(),
      [`${blackHole.address} ETIMEDOUT`, `127.0.0.1:${dead} ECONNREFUSED`].sort(),
    );
  });

  test("idleTimeout closes a silent bridge", BOUNDED, async () => {
    const targetSide = nextTarget();
    const client = await proxy.dial(proxy.port("idle"));
    const target = await targetSide;
    target.pipe(target);
    client.write("hi");
    await once(client, "data");
    const silentSince = performance.now();
    const [clientEnd, targetEnd] = await Promise.all([endOf(client), endOf(target)]);
    const elapsed = performance.now() - silentSince;
    assert.notEqual(clientEnd, "reset");
    assert.notEqual(targetEnd, "reset");
    assert.ok(elapsed >= 500 - EARLY_MS, `closed after ${elapsed} ms of silence`);
    assert.ok(elapsed < 500 + SLACK_MS, `closed only after ${elapsed} ms of silence`);
    const line = await proxy.bridgeEnd(client);
    assert.equal(line.end, "idle-timeout");
  });

  test("idleTimeout leaves bridges alone while bytes flow either way", BOUNDED, async () => {
    const closed: string[] = [];
    const open = async (name: string) => {
      const targetSide = nextTarget();
      const client = await proxy.dial(proxy.port("idle"));
      const target = await targetSide;
      client.on("data", () => {});
      target.on("data", () => {});
      client.once("close", () => closed.push(`${name} client`));
      target.once("close", () => closed.push(`${name} target`));
      return { client, target };
    };
    // Both ways, only client → target, only target → client: 100 ms apart, idleTimeout is 500 ms.
    const both = await open("both");
    const up = await open("up");
    const down = await open("down");
    const tick = setInterval(() => {
      both.client.write("a");
      both.target.write("b");
      up.client.write("c");
      down.target.write("d");
    }, 100);
    try {
      // The wait is the test: traffic for three idle timeouts' worth, and no bridge closed.
      await delay(1600);
      assert.deepEqual(closed, [], "an active bridge was closed");
    } finally {
      clearInterval(tick);
    }
    for (const bridge of [both, up, down]) {
      bridge.client.end();
      bridge.target.end();
    }
    for (const bridge of [both, up, down]) {
      const line = await proxy.bridgeEnd(bridge.client);
      assert.notEqual(line.end, "idle-timeout");
      assert.ok((line.durationMs as number) >= 1500, `bridge ended after ${line.durationMs} ms`);
    }
  });

  test("maxDuration closes a bridge however busy it is", BOUNDED, async () => {
    const started = performance.now();
    const client = await proxy.dial(proxy.port("maxdur"));
    let echoed = 0;
    client.on("data", (chunk: Buffer) => {
      echoed += chunk.length;
    });
    const tick = setInterval(() => client.write("busy"), 50);
    try {
      await endOf(client);
    } finally {
      clearInterval(tick);
    }
    const elapsed = performance.now() - started;
    assert.ok(echoed > 0, "nothing came back through the bridge");
    assert.ok(elapsed >= 1000 - EARLY_MS, `closed after ${elapsed} ms`);
    assert.ok(elapsed < 1000 + SLACK_MS, `closed only after ${elapsed} ms`);
    const line = await proxy.bridgeEnd(client);
    assert.equal(line.end, "max-duration");
    assert.ok((line.durationMs as number) >= 1000 - EARLY_MS && (line.durationMs as number) < 1000 + SLACK_MS);
  });

  test("halfCloseTimeout closes a bridge whose target never closes its half", BOUNDED, async () => {
    const targetSide = nextTarget();
    const client = await proxy.dial(proxy.port("halfclose"));
    const target = await targetSide;
    const request = readAll(target);
    const clientEnd = endOf(client);
    client.end("done talking");
    assert.equal((await request).toString(), "done talking");
    // The target has read EOF and keeps its own half open, forever.
    const halfClosedAt = performance.now();
    assert.equal(await clientEnd, "end");
    const elapsed = performance.now() - halfClosedAt;
    assert.ok(elapsed >= 800 - EARLY_MS - 50, `closed after ${elapsed} ms`);
    assert.ok(elapsed < 800 + SLACK_MS, `closed only after ${elapsed} ms`);
    const line = await proxy.bridgeEnd(client);
    assert.equal(line.end, "half-close-timeout");
  });

  test("halfCloseTimeout closes a bridge whose client never closes its half", BOUNDED, async () => {
    const targetSide = nextTarget();
    const client = await proxy.dial(proxy.port("halfclose"));
    const target = await targetSide;
    const goodbye = readAll(client);
    const targetEnd = endOf(target);
    target.end("bye");
    assert.equal((await goodbye).toString(), "bye");
    const halfClosedAt = performance.now();
    // The client never ends; the proxy closes the target's other half when time is up.
    assert.equal(await targetEnd, "end");
    const elapsed = performance.now() - halfClosedAt;
    assert.ok(elapsed >= 800 - EARLY_MS - 50, `closed after ${elapsed} ms`);
    assert.ok(elapsed < 800 + SLACK_MS, `closed only after ${elapsed} ms`);
    const line = await proxy.bridgeEnd(client);
    assert.equal(line.end, "half-close-timeout");
    client.destroy();
  });
});
