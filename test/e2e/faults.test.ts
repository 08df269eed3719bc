// tcpgate under fire, through the real CLI: out of file descriptors, a target that dies
// with 200 bridges open, clients that reset, say nothing, or half-close and never read, a
// target that never answers, and exact accounting after mixed traffic.
import assert from "node:assert/strict";
import { connect, type Socket } from "node:net";
import { describe, test } from "node:test";
import { status } from "../support/admin.ts";
import { ChildEcho } from "../support/child-target.ts";
import { type Gate, type LogLine, startGate } from "../support/cli.ts";
import { dial, dialFrom, eventually, freePort, startEcho, startServer, tcpTimer, tryRefused } from "../support/net.ts";
import { exchange } from "../support/reload.ts";

const BOUNDED = { timeout: 40_000 };

/** tcpgate with an admin endpoint (on `admin`) and these listeners, on free ports. */
async function startFaultsGate(
  listeners: Record<string, { targets: string[]; settings?: Record<string, string | number | string[]> }>,
  options: { nofile?: number } = {},
): Promise<Gate & { admin: number }> {
  const admin = await freePort();
  const lines = ["version: 1", "shutdownTimeout: 1s", "admin:", `  listen: 127.0.0.1:${admin}`, "listeners:"];
  for (const [name, l] of Object.entries(listeners)) {
    lines.push(
      `  - name: ${name}`,
      `    listen: 127.0.0.1:${await freePort()}`,
      `    targets: ${JSON.stringify(l.targets)}`,
    );
    for (const [key, value] of Object.entries(l.settings ?? {})) lines.push(`    ${key}: ${JSON.stringify(value)}`);
  }
  return Object.assign(await startGate(`${lines.join("\n")}\n`, options), { admin });
}

/** Access-log lines (one per admitted bridge) of a listener. */
const accessLines = (gate: Gate, listener: string): LogLine[] =>
  gate.bridgeLines().filter((l) => l.listener === listener);

type ListenerStatus = Awaited<ReturnType<typeof status>>["listeners"][number];

function refusedOf(l: ListenerStatus): number {
  return Object.values(l.refused).reduce((a, b) => a + b, 0);
}

/** Waits until no bridge is open anywhere, then checks accepted = refused + closed + open per listener. */
async function quietAndBalanced(gate: Gate & { admin: number }): Promise<ListenerStatus[]> {
  let listeners: ListenerStatus[] = [];
  await eventually(
    async () => {
      listeners = (await status(gate.admin)).listeners;
      return listeners.every((l) => l.openBridges === 0);
    },
    5000,
    "every bridge to end",
  );
  for (const l of listeners) {
    assert.equal(l.accepted, refusedOf(l) + l.closed + l.openBridges, `accounting of ${l.name}: ${JSON.stringify(l)}`);
    for (const t of l.targets) assert.equal(t.openBridges, 0, `target ${t.address} of ${l.name} still counts bridges`);
  }
  return listeners;
}

/** How a held client fared: it got its echo back, was closed, or is still waiting. */
function probe(socket: Socket, timeoutMs: number): Promise<"served" | "closed" | "waiting"> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve("waiting"), timeoutMs);
    socket.once("data", () => {
      clearTimeout(timer);
      resolve("served");
    });
    socket.once("close", () => {
      clearTimeout(timer);
      resolve("closed");
    });
  });
}

/** Writes as fast as the socket takes it, until the socket is destroyed. */
function writeUntilDestroyed(socket: Socket): void {
  const chunk = Buffer.alloc(64 * 1024, 0x5a);
  const pump = () => {
    while (!socket.destroyed && socket.write(chunk));
  };
  socket.on("drain", pump);
  pump();
}

/** A plain client (it closes its half when the proxy closes its own, as most programs do). */
function plainClient(port: number): Socket {
  const socket = connect({ port, host: "127.0.0.1" });
  socket.on("error", () => {});
  return socket;
}

describe("faults", () => {
  test(
    "out of descriptors: a flood of 300 clients under ulimit -n 128 is survived, and service recovers by itself",
    BOUNDED,
    async (t) => {
      const echo = await startEcho();
      // maxConnections 100 needs 2 × 100 descriptors plus overhead: more than 128.
      const gate = await startFaultsGate(
        { flood: { targets: [echo.address], settings: { maxConnections: 100 } } },
        { nofile: 128 },
      );
      const clients: Socket[] = [];
      try {
        const warning = gate.logs.find((l) => l.level === 40 && l.descriptorLimit === 128);
        assert.ok(warning, "a start-up warning about the descriptor limit");
        assert.match(String(warning.msg), /raise the limit \(ulimit -n, or LimitNOFILE= in systemd\) to at least \d+/);

        const port = gate.port("flood");
        const outcomes = await Promise.all(
          Array.from({ length: 300 }, () => {
            const socket = plainClient(port);
            clients.push(socket);
            socket.write("x");
            return probe(socket, 3000);
          }),
        );
        const count = (o: string) => outcomes.filter((x) => x === o).length;
        const served = count("served");
        const closed = count("closed");
        t.diagnostic(
          `flood of 300 under ulimit -n 128: ${served} served, ${closed} closed, ${count("waiting")} waiting`,
        );
        t.diagnostic(
          `accept failed lines: ${gate.logs.filter((l) => String(l.msg).startsWith("accept failed")).length}`,
        );
        assert.ok(served > 0, "some clients fit and are served");
        assert.ok(served < 128, `at most what the descriptors allow is served (${served})`);
        assert.ok(closed > 0, "clients beyond what fits are closed");
        assert.equal(gate.child.exitCode, null, "tcpgate is still running");
        assert.equal(gate.child.signalCode, null, "tcpgate is still running");

        for (const s of clients) s.destroy();
        // Nobody restarts it: once the flood's descriptors are free (its bridges take a moment
        // to end), new clients are served again.
        const leftAt = performance.now();
        await eventually(
          async () => {
            const socket = await dial(port);
            try {
              return (await exchange(socket, "back?", 5, 1000)) === "back?";
            } catch {
              return false;
            } finally {
              socket.destroy();
            }
          },
          5000,
          "service to come back",
        );
        t.diagnostic(`served again ${Math.round(performance.now() - leftAt)} ms after the flood left`);
        for (let i = 0; i < 20; i++) {
          const socket = await dial(port);
          clients.push(socket);
          assert.equal(await exchange(socket, `after ${i}`, `after ${i}`.length), `after ${i}`);
          socket.destroy();
        }
        await quietAndBalanced(gate);
        assert.equal(gate.stderr(), "", "nothing on stderr: no crash, no stack trace");
        assert.equal(await gate.close(), 0);
      } finally {
        for (const s of clients) s.destroy();
        await gate.close();
        await echo.close();
      }
    },
  );

  test(
    "a target SIGKILLed with 200 bridges open: every client is closed at once and every counter returns to zero",
    BOUNDED,
    async (t) => {
      const target = await ChildEcho.start();
      const gate = await startFaultsGate({ doomed: { targets: [target.address] } });
      const clients: Socket[] = [];
      try {
        const port = gate.port("doomed");
        await Promise.all(
          Array.from({ length: 200 }, async (_, i) => {
            const socket = plainClient(port);
            clients.push(socket);
            assert.equal(await exchange(socket, `bridge ${i}`, `bridge ${i}`.length), `bridge ${i}`);
          }),
        );
        assert.equal((await status(gate.admin)).listeners[0]?.openBridges, 200);

        const closedAt: number[] = [];
        const allClosed = Promise.all(
          clients.map(
            (s) =>
              new Promise<void>((resolve) =>
                s.once("close", () => {
                  closedAt.push(performance.now());
                  resolve();
                }),
              ),
          ),
        );
        const killedAt = performance.now();
        await target.kill("SIGKILL");
        const bound = new Promise<"late">((resolve) => setTimeout(() => resolve("late"), 3000).unref());
        const outcome = await Promise.race([allClosed.then(() => "closed" as const), bound]);
        const slowest = Math.max(...closedAt) - killedAt;
        t.diagnostic(
          `200 clients closed ${Math.round(slowest)} ms after the target's SIGKILL (${closedAt.length} closed)`,
        );
        assert.equal(outcome, "closed", `only ${closedAt.length} of 200 clients were closed within 3 s`);

        const [doomed] = await quietAndBalanced(gate);
        assert.equal(doomed?.accepted, 200);
        assert.equal(doomed?.closed, 200);
        await eventually(() => accessLines(gate, "doomed").length === 200, 3000, "200 access-log lines");
        const ends = new Set(accessLines(gate, "doomed").map((l) => l.end));
        assert.ok(
          [...ends].every((e) => e === "target-closed" || e === "target-reset"),
          `ends: ${[...ends]}`,
        );
      } finally {
        for (const s of clients) s.destroy();
        await target.kill();
        await gate.close();
      }
    },
  );

  test(
    "clients that reset mid-transfer: each bridge ends as client-reset and its target side is reset too",
    BOUNDED,
    async () => {
      // How each target-side connection ended. A reset behind unread data reaches Node as a
      // plain end (libuv's POLLHUP shortcut): a zero-byte write tells the two apart.
      const ends: string[] = [];
      const sink = await startServer((socket) => {
        socket.resume();
        socket.once("error", (e: NodeJS.ErrnoException) => ends.push(e.code ?? "error"));
        socket.once("end", () => socket.write(Buffer.alloc(0), (e) => !e && ends.push("fin")));
      });
      const gate = await startFaultsGate({ sink: { targets: [sink.address] } });
      const clients: Socket[] = [];
      try {
        const port = gate.port("sink");
        for (let i = 0; i < 20; i++) clients.push(await dial(port));
        for (const s of clients) writeUntilDestroyed(s);
        // Mid-transfer: every target connection has already received a good amount.
        await eventually(
          () => sink.sockets.size === 20 && [...sink.sockets].every((s) => s.bytesRead > 256 * 1024),
          10_000,
          "data flowing on 20 bridges",
        );
        for (const s of clients) s.resetAndDestroy();
        await eventually(() => ends.length === 20, 3000, "every target-side connection to end");
        assert.deepEqual(new Set(ends), new Set(["ECONNRESET"]), "the target sides were reset, not closed");
        await quietAndBalanced(gate);
        await eventually(() => accessLines(gate, "sink").length === 20, 3000, "20 access-log lines");
        assert.deepEqual(new Set(accessLines(gate, "sink").map((l) => l.end)), new Set(["client-reset"]));
        // And the listener serves the next client as if nothing had happened.
        const socket = await dial(port);
        clients.push(socket);
        socket.write("still here");
        await eventually(() => [...sink.sockets].some((s) => s.bytesRead === 10), 3000, "the next client's bytes");
      } finally {
        for (const s of clients) s.destroy();
        await gate.close();
        await sink.close();
      }
    },
  );

  test(
    "targets that reset mid-download to a slow client: the client is reset too, never handed a clean end",
    BOUNDED,
    async () => {
      const sources: Socket[] = [];
      const source = await startServer((socket) => {
        sources.push(socket);
        writeUntilDestroyed(socket);
      });
      const gate = await startFaultsGate({ source: { targets: [source.address] } });
      const clients: Socket[] = [];
      try {
        for (let i = 0; i < 10; i++) {
          const socket = await dial(gate.port("source"));
          socket.pause();
          clients.push(socket);
        }
        // Every buffer on the way is full: the proxy has stopped reading from the targets, and
        // each target's kernel, facing a zero window, probes for it.
        await eventually(() => sources.length === 10, 3000, "10 target connections");
        await eventually(
          () => sources.every((s) => tcpTimer(source.port, s.remotePort ?? 0) === 4),
          10_000,
          "every target connection to face a full buffer (a zero window)",
        );
        for (const s of sources) s.resetAndDestroy();
        const ends = await Promise.all(
          clients.map(
            (socket) =>
              new Promise<string>((resolve) => {
                socket.once("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? "error"));
                socket.once("end", () => socket.write(Buffer.alloc(0), (e) => !e && resolve("fin")));
                socket.resume();
              }),
          ),
        );
        assert.deepEqual(new Set(ends), new Set(["ECONNRESET"]), "each client was reset, not closed");
        await quietAndBalanced(gate);
        await eventually(() => accessLines(gate, "source").length === 10, 3000, "10 access-log lines");
        assert.deepEqual(new Set(accessLines(gate, "source").map((l) => l.end)), new Set(["target-reset"]));
      } finally {
        for (const s of clients) s.destroy();
        await gate.close();
        await source.close();
      }
    },
  );

  test(
    "silent peers: a client that says nothing, a client that half-closes and never reads, a target that never answers",
    BOUNDED,
    async () => {
      const echo = await startEcho();
      // Answers a half-closed request with more than any buffer holds, to a client that never reads.
      const talker = await startServer((socket) => {
        socket.resume();
        socket.on("end", () => {
          const chunk = Buffer.alloc(64 * 1024, 0x61);
          const pump = () => {
            while (!socket.destroyed && socket.write(chunk));
          };
          socket.on("drain", pump);
          pump();
        });
      });
      const mute = await startServer((socket) => {
        socket.resume();
        socket.on("end", () => socket.end());
      });
      const gate = await startFaultsGate({
        idle: { targets: [echo.address], settings: { idleTimeout: "600ms" } },
        halfclose: { targets: [talker.address], settings: { idleTimeout: "30s", halfCloseTimeout: "800ms" } },
        mute: { targets: [mute.address], settings: { idleTimeout: "600ms" } },
      });
      const clients: Socket[] = [];
      // These clients keep their own half open: a FIN from the proxy shows as "end".
      const closedWithin = async (socket: Socket, ms: number) => {
        const started = performance.now();
        const closed = await new Promise<boolean>((resolve) => {
          const timer = setTimeout(() => resolve(false), ms);
          const done = () => {
            clearTimeout(timer);
            resolve(true);
          };
          socket.once("end", done);
          socket.once("close", done);
        });
        return { closed, ms: performance.now() - started };
      };
      try {
        const silent = await dialFrom(gate.port("idle"), "127.0.0.1");
        const halfClosed = await dialFrom(gate.port("halfclose"), "127.0.0.1");
        const asking = await dialFrom(gate.port("mute"), "127.0.0.1");
        clients.push(silent, halfClosed, asking);
        halfClosed.pause();
        halfClosed.end("GET /big\n");
        asking.write("hello?");
        // The client that never reads sees nothing either: its access-log line tells.
        const [a, c] = await Promise.all([closedWithin(silent, 5000), closedWithin(asking, 5000)]);
        assert.ok(a.closed && a.ms >= 500, `silent client closed after ${a.ms} ms`);
        assert.ok(c.closed && c.ms >= 500, `client of a mute target closed after ${c.ms} ms`);
        await quietAndBalanced(gate);
        await eventually(
          () => ["idle", "halfclose", "mute"].every((l) => accessLines(gate, l).length === 1),
          3000,
          "one access-log line each",
        );
        const [idle] = accessLines(gate, "idle");
        const [half] = accessLines(gate, "halfclose");
        const [muted] = accessLines(gate, "mute");
        assert.equal(idle?.end, "idle-timeout");
        assert.equal(idle?.bytesUp, 0);
        assert.equal(half?.end, "half-close-timeout");
        assert.ok(Number(half?.durationMs) < 6000, `ended ${half?.durationMs} ms after it started`);
        assert.ok(Number(half?.bytesDown) > 0, "the answer flowed until the client's buffers were full");
        assert.equal(muted?.end, "idle-timeout");
        assert.equal(muted?.bytesUp, 6);
        assert.equal(muted?.bytesDown, 0);
        await eventually(() => talker.sockets.size === 0 && mute.sockets.size === 0, 3000, "target sides closed");
      } finally {
        for (const s of clients) s.destroy();
        await gate.close();
        await Promise.all([echo.close(), talker.close(), mute.close()]);
      }
    },
  );

  test(
    "accounting is exact after mixed traffic: accepted = refused + closed + open, one access-log line per bridge",
    BOUNDED,
    async () => {
      const echo = await startEcho();
      const dead = await freePort();
      const gate = await startFaultsGate({
        mixed: { targets: [echo.address], settings: { deny: ["127.0.0.66"], maxConnections: 5 } },
        dead: { targets: [`127.0.0.1:${dead}`], settings: { connectTimeout: "1s" } },
      });
      const clients: Socket[] = [];
      const admitted = { mixed: [] as number[], dead: [] as number[] };
      try {
        const mixed = gate.port("mixed");
        const quiet = () =>
          eventually(async () => (await status(gate.admin)).totals.openBridges === 0, 5000, "no bridge open");
        // 30 admitted, two at a time: with the bridges still closing, never more than the limit.
        for (let round = 0; round < 15; round++) {
          await Promise.all(
            Array.from({ length: 2 }, async (_, i) => {
              const socket = await dialFrom(mixed, "127.0.0.1");
              admitted.mixed.push(socket.localPort ?? 0);
              assert.equal(await exchange(socket, `m${round}.${i}`, `m${round}.${i}`.length), `m${round}.${i}`);
              socket.end();
              await new Promise((resolve) => socket.once("close", resolve));
            }),
          );
        }
        // 10 refused by deny.
        for (let i = 0; i < 10; i++) {
          const r = await tryRefused(mixed, "127.0.0.66");
          assert.notEqual(r.how, "timeout");
          assert.equal(r.bytes, 0);
        }
        // 5 held open, 5 more refused by the limit, then the 5 closed.
        await quiet();
        const held: Socket[] = [];
        for (let i = 0; i < 5; i++) {
          const socket = await dialFrom(mixed, "127.0.0.1");
          admitted.mixed.push(socket.localPort ?? 0);
          held.push(socket);
          clients.push(socket);
          await exchange(socket, "held", 4);
        }
        for (let i = 0; i < 5; i++) assert.notEqual((await tryRefused(mixed, "127.0.0.1")).how, "timeout");
        for (const s of held) s.destroy();
        await quiet();
        // 10 that reset mid-conversation.
        for (let i = 0; i < 10; i++) {
          const socket = await dialFrom(mixed, "127.0.0.1");
          admitted.mixed.push(socket.localPort ?? 0);
          await exchange(socket, "reset", 5);
          socket.resetAndDestroy();
        }
        // 10 whose only target refuses: a connect failure each.
        for (let i = 0; i < 10; i++) {
          const r = await tryRefused(gate.port("dead"), "127.0.0.1");
          admitted.dead.push(r.port);
          assert.notEqual(r.how, "timeout");
        }

        const listeners = await quietAndBalanced(gate);
        const byName = new Map(listeners.map((l) => [l.name, l]));
        assert.equal(byName.get("mixed")?.accepted, 60);
        assert.deepEqual(byName.get("mixed")?.refused, {
          deny: 10,
          allow: 0,
          schedule: 0,
          limit: 5,
          "proxy-header": 0,
          route: 0,
        });
        assert.equal(byName.get("mixed")?.closed, 45);
        assert.equal(byName.get("dead")?.accepted, 10);
        assert.equal(byName.get("dead")?.closed, 10);

        // Stopped: every line it wrote has been read, so a second line for a bridge cannot
        // come later.
        await gate.close();
        for (const name of ["mixed", "dead"] as const) {
          const closed = byName.get(name)?.closed ?? -1;
          const lines = accessLines(gate, name);
          assert.equal(lines.length, closed, `${name}: one access-log line per admitted bridge`);
          const sorted = (ports: number[]) => [...ports].sort((a, b) => a - b);
          assert.deepEqual(sorted(lines.map((l) => Number(l.clientPort))), sorted(admitted[name]));
        }
        assert.ok(
          accessLines(gate, "dead").every((l) => l.msg === "no target reachable" && l.end === "connect-failed"),
        );
        const resets = accessLines(gate, "mixed").filter((l) => l.end === "client-reset").length;
        assert.equal(resets, 10);
      } finally {
        for (const s of clients) s.destroy();
        await gate.close();
        await echo.close();
      }
    },
  );
});
