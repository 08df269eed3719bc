// workers: n under load while the config changes: a listener moved and removed, workers
// scaled down, `workers` changed by reload. Clients loop from their own loopback addresses
// and every attempt is counted by how it ended.
//
// Resets at an address whose listening sockets close are the kernel's: with
// net.ipv4.tcp_migrate_req = 0, closing one socket of a SO_REUSEPORT group resets the
// connections whose handshake it completed but that no worker had accepted yet. The tests
// report those figures (`--test-reporter=spec` shows them) and assert what tcpgate can
// promise.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import type { Socket } from "node:net";
import { availableParallelism } from "node:os";
import { after, describe, test } from "node:test";
import { workersUnsupported } from "../../src/workers/support.ts";
import { status } from "../support/admin.ts";
import { type Gate, startGate } from "../support/cli.ts";
import { dialWithin, freePorts, startEcho } from "../support/net.ts";
import { exchange } from "../support/reload.ts";

const unsupported = workersUnsupported(2);

/** What an open bridge to an echo target sends back for text. */
const echoed = (socket: Socket, text: string) => exchange(socket, text, text.length);

/** Whether the kernel moves a closing reuseport socket's waiting connections to another one. */
function migrates(): boolean {
  try {
    return readFileSync("/proc/sys/net/ipv4/tcp_migrate_req", "utf8").trim() === "1";
  } catch {
    return false;
  }
}

/** How one client attempt ended: bridged (its line echoed), refused at connect, reset after the handshake. */
type Outcome = "ok" | "refused" | "reset" | "other";

async function attempt(port: number, from: string, timeoutMs = 3000): Promise<Outcome> {
  let socket: Awaited<ReturnType<typeof dialWithin>>;
  try {
    socket = await dialWithin(port, "127.0.0.1", from, timeoutMs);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    // ECONNRESET at connect: the handshake was done, then reset before this side saw it.
    return code === "ECONNREFUSED" ? "refused" : code === "ECONNRESET" ? "reset" : "other";
  }
  const outcome = await new Promise<Outcome>((resolve) => {
    const timer = setTimeout(() => done("other"), timeoutMs);
    function done(o: Outcome) {
      clearTimeout(timer);
      resolve(o);
    }
    socket.once("data", () => done("ok"));
    socket.once("error", (e: NodeJS.ErrnoException) =>
      done(e.code === "ECONNRESET" || e.code === "EPIPE" ? "reset" : "other"),
    );
    socket.once("close", () => done("other"));
    socket.write("ping\n");
  });
  socket.destroy();
  return outcome;
}

type Tally = Record<Outcome, number>;

/** A client looping on port from its own address until stopped, counting every outcome. */
function loop(port: number, from: string) {
  let stopped = false;
  const counts: Tally = { ok: 0, refused: 0, reset: 0, other: 0 };
  const done = (async () => {
    while (!stopped) counts[await attempt(port, from)]++;
  })();
  return {
    counts,
    async stop(): Promise<Tally> {
      stopped = true;
      await done;
      return counts;
    },
  };
}

const sum = (tallies: Tally[]): Tally =>
  tallies.reduce((a, t) => ({
    ok: a.ok + t.ok,
    refused: a.refused + t.refused,
    reset: a.reset + t.reset,
    other: a.other + t.other,
  }));

describe("workers under load while the config changes", { skip: unsupported }, () => {
  const cleanups: (() => unknown)[] = [];
  after(async () => {
    for (const c of cleanups.reverse()) await c();
  });
  async function gate(yaml: string): Promise<Gate> {
    const g = await startGate(yaml, { logLevel: "info" });
    cleanups.push(() => g.close());
    return g;
  }
  async function echo() {
    const server = await startEcho();
    cleanups.push(() => server.close());
    return server;
  }
  /** Each client loop has been served n more times than when this was called. */
  async function served(g: Gate, loops: ReturnType<typeof loop>[], n: number): Promise<void> {
    const from = loops.map((l) => l.counts.ok);
    await g.waitForLog(() => loops.every((l, i) => l.counts.ok >= (from[i] ?? 0) + n), 10_000);
  }

  test("a listener moved 20 times, then removed, under load: the unchanged one loses no client", async (t) => {
    const target = await echo();
    const [kept = 0, m1 = 0, m2 = 0] = await freePorts(3);
    const yaml = (moving: number | undefined) => `version: 1
workers: 2
listeners:
  - {name: a, listen: "127.0.0.1:${kept}", targets: ["${target.address}"]}
${moving === undefined ? "" : `  - {name: m, listen: "127.0.0.1:${moving}", targets: ["${target.address}"]}\n`}`;
    const g = await gate(yaml(m1));
    const heldA = await g.dial(kept, "127.0.0.9");
    const heldM = await g.dial(m1, "127.0.0.9");
    await echoed(heldA, "before\n");
    await echoed(heldM, "before\n");

    const unchanged = [loop(kept, "127.0.0.2"), loop(kept, "127.0.0.3")];
    const moving = [loop(m1, "127.0.0.4"), loop(m2, "127.0.0.5")];
    await served(g, [...unchanged, moving[0] as ReturnType<typeof loop>], 5);
    for (let i = 1; i <= 20; i++) {
      const [to, from] = i % 2 === 1 ? [m2, m1] : [m1, m2];
      g.write(yaml(to));
      await g.reload(10_000);
      assert.equal(await attempt(to, "127.0.0.6"), "ok", `move ${i}: the new address answers`);
      assert.equal(await attempt(from, "127.0.0.6"), "refused", `move ${i}: the old address refuses`);
      await served(g, unchanged, 2);
    }
    g.write(yaml(undefined));
    await g.reload(10_000);
    await served(g, unchanged, 5);
    const a = sum(await Promise.all(unchanged.map((l) => l.stop())));
    const m = sum(await Promise.all(moving.map((l) => l.stop())));
    t.diagnostic(`unchanged listener: ${JSON.stringify(a)}`);
    t.diagnostic(`moving listener, both addresses (21 closes of a 2-socket group): ${JSON.stringify(m)}`);

    assert.equal(await attempt(m1, "127.0.0.6"), "refused", "removed: nothing listens");
    assert.equal(await attempt(m2, "127.0.0.6"), "refused", "removed: nothing listens");
    assert.deepEqual(
      { ...a, ok: 0 },
      { ok: 0, refused: 0, reset: 0, other: 0 },
      "the unchanged listener lost no client",
    );
    assert.ok(a.ok > 40, `${a.ok} clients served`);
    assert.equal(m.other, 0, "every attempt on the moving listener was served, refused or reset");
    assert.ok(m.ok > 0 && m.refused > 0);
    // Open bridges are untouched, the removed listener's included.
    assert.equal(await echoed(heldA, "after\n"), "after\n");
    assert.equal(await echoed(heldM, "after\n"), "after\n");
  });

  test("workers 3 → 2 by reload under load, five times: no client of an unchanged listener is refused", async (t) => {
    const target = await echo();
    const [port = 0, admin = 0] = await freePorts(2);
    const yaml = (workers: number) => `version: 1
workers: ${workers}
shutdownTimeout: 2m
admin: {listen: "127.0.0.1:${admin}"}
listeners:
  - {name: a, listen: "127.0.0.1:${port}", targets: ["${target.address}"]}
`;
    const g = await gate(yaml(3));
    const held = await Promise.all(Array.from({ length: 6 }, (_, i) => g.dial(port, `127.0.2.${i + 1}`)));
    for (const s of held) await echoed(s, "before\n");
    const loops = [loop(port, "127.0.0.2"), loop(port, "127.0.0.3"), loop(port, "127.0.0.4")];
    await served(g, loops, 5);
    for (let i = 1; i <= 10; i++) {
      const workers = i % 2 === 1 ? 2 : 3;
      g.write(yaml(workers));
      await g.reload(10_000);
      const serving = (await status(admin)).workers?.filter((w) => w.state === "serving").length;
      assert.equal(serving, workers);
      await served(g, loops, 10);
    }
    const all = sum(await Promise.all(loops.map((l) => l.stop())));
    t.diagnostic(`5 scale-downs, 5 scale-ups: ${JSON.stringify(all)}; tcp_migrate_req=${migrates() ? 1 : 0}`);
    assert.equal(all.refused, 0, "the address never stops listening");
    assert.equal(all.other, 0);
    // Without migration, a removed worker's socket resets what it had not accepted yet.
    if (migrates()) assert.equal(all.reset, 0);
    for (const s of held) assert.equal(await echoed(s, "after\n"), "after\n");
  });
});

describe("changing `workers` by reload", { skip: unsupported }, () => {
  const cleanups: (() => unknown)[] = [];
  after(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  test("started with 2: to 1, to 3, to auto; every change shows in /status, clients are served", async () => {
    const target = await startEcho();
    cleanups.push(() => target.close());
    const [port = 0, admin = 0] = await freePorts(2);
    const yaml = (workers: number | string) => `version: 1
workers: ${workers}
shutdownTimeout: 2m
admin: {listen: "127.0.0.1:${admin}"}
listeners:
  - {name: a, listen: "127.0.0.1:${port}", targets: ["${target.address}"]}
`;
    const g = await startGate(yaml(2), { logLevel: "info" });
    cleanups.push(() => g.close());
    const held = await g.dial(port);
    await echoed(held, "before\n");
    for (const [workers, count] of [
      [1, 1],
      [3, 3],
      ["auto", availableParallelism()],
      [2, 2],
    ] as const) {
      g.write(yaml(workers));
      await g.reload(10_000);
      const doc = await status(admin);
      const serving = doc.workers?.filter((w) => w.state === "serving").map((w) => w.index);
      assert.deepEqual(
        serving,
        Array.from({ length: count }, (_, i) => i),
        `workers: ${workers}`,
      );
      assert.equal(await attempt(port, "127.0.0.2"), "ok", `workers: ${workers} serves`);
    }
    assert.equal(await echoed(held, "after\n"), "after\n", "an open bridge carries on");
  });

  test("started with 1: a reload to workers: 2 is rejected in one clear line; the single loop carries on", async () => {
    const target = await startEcho();
    cleanups.push(() => target.close());
    const [port = 0] = await freePorts(1);
    const yaml = (workers: number) => `version: 1
workers: ${workers}
listeners:
  - {name: a, listen: "127.0.0.1:${port}", targets: ["${target.address}"]}
`;
    const g = await startGate(yaml(1), { logLevel: "info" });
    cleanups.push(() => g.close());
    g.write(yaml(2));
    await assert.rejects(
      g.reload(10_000),
      /^Error: reload rejected, the running config stays: workers: 2 needs a restart: this instance was started with workers: 1$/,
    );
    assert.equal(await attempt(port, "127.0.0.2"), "ok");
    assert.equal(g.logs.filter((l) => typeof l.worker === "number").length, 0, "no worker thread was started");
  });
});
