// The filter's forwarding logic, in process: filterBridge between two real loopback socket
// pairs (no CLI, no mocked net), so that chunk order, Promises, the FIN after pending
// chunks, backpressure and the ways a filter ends its bridge are checked in milliseconds.
import assert from "node:assert/strict";
import { once } from "node:events";
import { type AddressInfo, connect, createServer, type Socket } from "node:net";
import { after, describe, test } from "node:test";
import fc from "fast-check";
import type { FilterSetting } from "../../src/config/runtime.ts";
import { type FilterBridge, type FilterEndReason, filterBridge } from "../../src/proxy/filter-stream.ts";
import { eventually, readAll } from "../support/net.ts";

const server = createServer({ allowHalfOpen: true });
server.listen(0, "127.0.0.1");
await once(server, "listening");
const port = (server.address() as AddressInfo).port;
const open = new Set<Socket>();
after(() => {
  for (const s of open) s.destroy();
  server.close();
});

/** A connected pair: outer is the peer (client or target program), inner the proxy's socket. */
async function pair(): Promise<{ outer: Socket; inner: Socket }> {
  const outer = connect({ port, host: "127.0.0.1", allowHalfOpen: true });
  const [[inner]] = (await Promise.all([once(server, "connection"), once(outer, "connect")])) as [[Socket], unknown];
  for (const s of [outer, inner]) {
    open.add(s);
    s.on("error", () => {});
    s.on("close", () => open.delete(s));
  }
  // As a bridge's sockets are: nothing is read until the filter is in place.
  inner.pause();
  return { outer, inner };
}

interface Ended {
  reason: FilterEndReason;
  error: string | undefined;
}

/**
 * A bridge through `create`: client and target are the programs at either end. ended
 * resolves when the filter closes the bridge; a test that expects that destroys nothing
 * itself: like the real bridge, the close hook destroys both proxy sockets.
 */
async function bridged(create: (options: unknown, bridge: FilterBridge) => unknown, options?: unknown) {
  const c = await pair();
  const t = await pair();
  const halves = { client: false, target: false };
  let resolveEnded: (e: Ended) => void = () => {};
  const ended = new Promise<Ended>((resolve) => {
    resolveEnded = resolve;
  });
  const setting: FilterSetting = {
    module: "./test.mjs",
    options,
    loaded: { path: "/test.mjs", sha256: "0", create: create as (o: unknown, b: unknown) => unknown },
  };
  filterBridge(
    setting,
    { listener: "l", client: "127.0.0.1", clientPort: c.outer.localPort ?? 0, target: "127.0.0.1:1" },
    c.inner,
    t.inner,
    {
      clientEnded: () => {
        halves.client = true;
      },
      targetEnded: () => {
        halves.target = true;
      },
      close: (reason, error) => {
        c.inner.destroy();
        t.inner.destroy();
        resolveEnded({ reason, error });
      },
    },
  );
  c.inner.resume();
  t.inner.resume();
  return { client: c.outer, target: t.outer, proxyClient: c.inner, proxyTarget: t.inner, halves, ended };
}

const later = (ms = 0) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

describe("filter stream", () => {
  test("an identity filter changes nothing, whatever the chunking and sync or async, both ways, half-close kept", async () => {
    const piece = fc.uint8Array({ minLength: 1, maxLength: 3000 });
    // Per chunk the filter answers at once, after a microtask, or after a timer.
    const mode = fc.constantFrom("sync", "microtask", "timer");
    await fc.assert(
      fc.asyncProperty(
        fc.array(piece, { maxLength: 12 }),
        fc.array(piece, { maxLength: 12 }),
        fc.array(mode, { minLength: 1, maxLength: 8 }),
        fc.boolean(),
        async (upPieces, downPieces, modes, clientFirst) => {
          let i = 0;
          const answer = (chunk: Buffer): Buffer | Promise<Buffer> => {
            const m = modes[i++ % modes.length];
            if (m === "sync") return chunk;
            if (m === "microtask") return Promise.resolve(chunk);
            return later(1).then(() => chunk);
          };
          const b = await bridged(() => ({ up: answer, down: answer }));
          const toTarget = readAll(b.target);
          const toClient = readAll(b.client);
          const send = async (socket: Socket, pieces: Uint8Array[]) => {
            for (const p of pieces) {
              socket.write(p);
              // Let some pieces go out alone, others coalesce.
              if (p.length % 2) await turn();
            }
            socket.end();
          };
          // One side closes its half first; the other keeps sending after it.
          if (clientFirst) {
            await send(b.client, upPieces);
            await send(b.target, downPieces);
          } else {
            await send(b.target, downPieces);
            await send(b.client, upPieces);
          }
          assert.deepEqual(await toTarget, Buffer.concat(upPieces));
          assert.deepEqual(await toClient, Buffer.concat(downPieces));
          await eventually(() => b.halves.client && b.halves.target, 2000, "both halves passed on");
          b.client.destroy();
          b.target.destroy();
        },
      ),
      { numRuns: 40 },
    );
  });

  test("up and down rewrite their direction", async () => {
    const upper = (chunk: Buffer) => Buffer.from(chunk.toString("latin1").toUpperCase(), "latin1");
    const b = await bridged(() => ({ up: upper, down: async (chunk: Buffer) => upper(chunk) }));
    const toTarget = readAll(b.target);
    const toClient = readAll(b.client);
    b.client.end("hello target");
    b.target.end("hello client");
    assert.equal((await toTarget).toString(), "HELLO TARGET");
    assert.equal((await toClient).toString(), "HELLO CLIENT");
  });

  test("create gets the options and the bridge's facts; a missing hook passes bytes through", async () => {
    let seen: { options: unknown; bridge: FilterBridge } | undefined;
    const b = await bridged(
      (options, bridge) => {
        seen = { options, bridge };
        return { up: (chunk: Buffer) => Buffer.concat([Buffer.from(">"), chunk]) };
      },
      { deny: ["FLUSHALL"] },
    );
    assert.deepEqual(seen?.options, { deny: ["FLUSHALL"] });
    assert.equal(seen?.bridge.listener, "l");
    assert.equal(seen?.bridge.target, "127.0.0.1:1");
    assert.equal(seen?.bridge.clientPort, b.client.localPort);
    const toClient = readAll(b.client);
    b.target.end("unchanged");
    assert.equal((await toClient).toString(), "unchanged");
  });

  test("null closes the bridge with reason filter", async () => {
    const b = await bridged(() => ({ up: (chunk: Buffer) => (chunk.includes("QUIT") ? null : chunk) }));
    const toTarget = readAll(b.target);
    b.client.write("one\n");
    await eventually(() => b.proxyTarget.bytesWritten === 4, 2000, "the first chunk");
    b.client.write("QUIT\n");
    assert.deepEqual(await b.ended, { reason: "filter", error: undefined });
    assert.equal((await toTarget).toString(), "one\n");
  });

  for (const [name, up, message] of [
    [
      "a throw",
      () => {
        throw new Error("boom");
      },
      "up: boom",
    ],
    ["a rejection", () => Promise.reject(new TypeError("bad input")), "up: TypeError: bad input"],
    [
      "a string instead of a Buffer",
      () => "text",
      "up: TypeError: returned a string; a filter returns a Buffer, or null to close",
    ],
    [
      "no return value",
      () => undefined,
      "up: TypeError: returned undefined; a filter returns a Buffer, or null to close",
    ],
  ] as const) {
    test(`${name} ends the bridge with filter-error and the message`, async () => {
      const b = await bridged(() => ({ up }));
      b.client.write("x");
      assert.deepEqual(await b.ended, { reason: "filter-error", error: message });
    });
  }

  test("a create that throws, or returns no object, ends the bridge before any byte is read", async () => {
    const thrown = await bridged(() => {
      throw new RangeError("no such mode");
    });
    assert.deepEqual(await thrown.ended, { reason: "filter-error", error: "create: RangeError: no such mode" });
    const promised = await bridged(async () => ({}));
    assert.deepEqual(await promised.ended, {
      reason: "filter-error",
      error: "create: TypeError: create() must return an object with optional up and down functions, not a Promise",
    });
  });

  test("while a Promise is pending its direction waits: no other chunk reaches the filter, and order is kept", async () => {
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const calls: string[] = [];
    const b = await bridged(() => ({
      up: async (chunk: Buffer) => {
        calls.push(chunk.toString());
        if (calls.length === 1) await gate;
        return chunk;
      },
    }));
    const toTarget = readAll(b.target);
    b.client.write("first");
    await eventually(() => calls.length === 1, 2000, "the first chunk");
    // Enough to fill the socket buffers: the proxy's side must stop reading, not buffer it all.
    const big = Buffer.alloc(8 * 1024 * 1024, 0x61);
    b.client.write(big);
    await eventually(() => b.proxyClient.isPaused(), 2000, "the source paused");
    await later(50);
    assert.equal(calls.length, 1, "no chunk went to the filter while its Promise was pending");
    // Read but not filtered: a high-water mark and a read's worth at most, not the 8 MiB sent.
    const buffered = b.proxyClient.readableLength;
    assert.ok(buffered <= b.proxyClient.readableHighWaterMark + 256 * 1024, `${buffered} bytes buffered`);
    b.client.end("last");
    release();
    const received = await toTarget;
    assert.equal(received.length, 5 + big.length + 4);
    assert.equal(received.subarray(0, 5).toString(), "first");
    assert.equal(received.subarray(-4).toString(), "last");
    await eventually(() => b.halves.client, 2000, "the FIN passed on after the pending chunks");
  });

  test("a FIN that arrives while a chunk is pending is passed on after it", async () => {
    const b = await bridged(() => ({ down: (chunk: Buffer) => later(30).then(() => chunk) }));
    // readAll stops at the FIN: the bytes it holds arrived before it.
    const toClient = readAll(b.client);
    b.target.end("reply");
    assert.equal((await toClient).toString(), "reply");
    await eventually(() => b.halves.target, 2000, "the target's half passed on");
  });

  test("reply writes to the client without reaching the target", async () => {
    const b = await bridged((_options, bridge) => ({
      up: (chunk: Buffer) => {
        if (!chunk.toString().startsWith("FLUSHALL")) return chunk;
        bridge.reply("-ERR refused\r\n");
        return Buffer.alloc(0);
      },
    }));
    const toTarget = readAll(b.target);
    let toClient = "";
    b.client.on("data", (d: Buffer) => {
      toClient += d.toString();
    });
    b.client.write("FLUSHALL\r\n");
    await eventually(() => toClient === "-ERR refused\r\n", 2000, "the reply");
    b.client.end("PING\r\n");
    assert.equal((await toTarget).toString(), "PING\r\n");
  });
});
