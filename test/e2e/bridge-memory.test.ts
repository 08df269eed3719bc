// Backpressure end to end: a reader that never reads must slow the writer down instead of
// filling the proxy's memory. Measured on the real CLI's resident set (Linux /proc).
import assert from "node:assert/strict";
import type { Socket } from "node:net";
import { after, before, describe, test } from "node:test";
import { type Gate, startGate } from "../support/cli.ts";
import { freePort, readAll, startServer, type TestServer } from "../support/net.ts";
import { configText } from "../support/reload.ts";
import { flood, rssBytes } from "../support/streams.ts";

const MiB = 1024 * 1024;
const FLOOD_MS = 3000;
/**
 * What may pile up between a writer and a stalled reader is bounded by the kernel's socket
 * buffers (loopback autotuning can grow a receive buffer to tcp_rmem's max, 32 MiB on some
 * hosts) plus a few chunks in the proxy. Without backpressure it grows by gigabytes in
 * FLOOD_MS, so this bound is generous and still decisive.
 */
const MAX_IN_FLIGHT = 64 * MiB;
const MAX_RSS_GROWTH = 64 * MiB;

describe("bridge memory", () => {
  let sink: TestServer;
  let proxy: Gate;
  const waiting: ((socket: Socket) => void)[] = [];
  const nextTarget = (): Promise<Socket> => new Promise((resolve) => waiting.push(resolve));

  before(async () => {
    sink = await startServer((socket) => {
      socket.pause();
      const take = waiting.shift();
      if (take) take(socket);
      else socket.destroy();
    });
    const port = await freePort();
    proxy = await startGate(
      configText([{ name: "mem", listen: `127.0.0.1:${port}`, targets: [sink.address] }], { shutdownTimeout: "2s" }),
    );
  });

  after(async () => {
    await proxy?.close();
    await sink?.close();
  });

  test("a reader that never reads stalls the writer; the proxy's memory stays bounded", {
    timeout: 60_000,
  }, async (t) => {
    // Warm up (code paths, buffers) so the baseline is a running proxy, not a fresh one.
    {
      const targetSide = nextTarget();
      const client = await proxy.dial(proxy.port("mem"));
      const target = await targetSide;
      target.resume();
      target.pipe(target);
      const echoed = readAll(client);
      client.end(Buffer.alloc(4 * MiB));
      assert.equal((await echoed).length, 4 * MiB);
      // Its bridge has ended and let go of its buffers.
      await proxy.bridgeEnd(client);
    }
    const baseline = rssBytes(proxy.pid);

    // Down: the target floods a client that never reads. Up: a client floods a target that never reads.
    const downTarget = nextTarget();
    const downClient = await proxy.dial(proxy.port("mem"));
    const downSender = flood(await downTarget, FLOOD_MS);
    const upTarget = nextTarget();
    const upClient = await proxy.dial(proxy.port("mem"));
    const upReceiver = await upTarget;
    const upSender = flood(upClient, FLOOD_MS);

    let peak = baseline;
    const sampler = setInterval(() => {
      peak = Math.max(peak, rssBytes(proxy.pid));
    }, 100);
    let downWritten: number;
    let upWritten: number;
    try {
      [downWritten, upWritten] = await Promise.all([downSender.done, upSender.done]);
    } finally {
      clearInterval(sampler);
    }
    peak = Math.max(peak, rssBytes(proxy.pid));

    t.diagnostic(
      `in flight: down ${(downWritten / MiB).toFixed(1)} MiB, up ${(upWritten / MiB).toFixed(1)} MiB; ` +
        `proxy RSS ${(baseline / MiB).toFixed(1)} → peak ${(peak / MiB).toFixed(1)} MiB`,
    );
    assert.ok(downWritten < MAX_IN_FLIGHT, `target wrote ${downWritten / MiB} MiB into a stalled client`);
    assert.ok(upWritten < MAX_IN_FLIGHT, `client wrote ${upWritten / MiB} MiB into a stalled target`);
    assert.ok(
      peak - baseline < MAX_RSS_GROWTH,
      `proxy RSS grew by ${((peak - baseline) / MiB).toFixed(1)} MiB (baseline ${(baseline / MiB).toFixed(1)} MiB)`,
    );

    // Now the readers read: every byte the writers got rid of arrives, nothing lost or duplicated.
    const count = async (socket: Socket) => {
      let bytes = 0;
      for await (const chunk of socket) bytes += (chunk as Buffer).length;
      return bytes;
    };
    const [downRead, upRead] = await Promise.all([count(downClient), count(upReceiver)]);
    assert.equal(downRead, downWritten);
    assert.equal(upRead, upWritten);
    downClient.end();
    upReceiver.end();
    const [downLine, upLine] = await Promise.all([proxy.bridgeEnd(downClient), proxy.bridgeEnd(upClient)]);
    assert.equal(downLine.bytesDown, downWritten);
    assert.equal(upLine.bytesUp, upWritten);
  });
});
