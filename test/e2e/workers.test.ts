// workers: n event loops (worker threads) accepting on the same addresses. On a Node.js
// without SO_REUSEPORT in net (before 22.12) the config is refused in one line; on one
// with it, every promise of the single loop holds for the instance as a whole.
import assert from "node:assert/strict";
import { once } from "node:events";
import type { Socket } from "node:net";
import { after, describe, test } from "node:test";
import { workersUnsupported } from "../../src/workers/support.ts";
import { fetchAdmin, scrape, status } from "../support/admin.ts";
import { type Running, runTcpgate, startGate, startTcpgate, tempConfig } from "../support/cli.ts";
import {
  dialWithin,
  eventually,
  freePort,
  freePorts,
  startEcho,
  startServer,
  type TestServer,
} from "../support/net.ts";

const unsupported = workersUnsupported(2);

describe("workers on a Node.js without SO_REUSEPORT", {
  skip: unsupported === undefined && "this Node.js has it",
}, () => {
  test("--check and start-up refuse workers: 2 in one line, exit 1", async () => {
    const config = tempConfig(
      "version: 1\nworkers: 2\nlisteners:\n  - {name: a, listen: '127.0.0.1:1', targets: ['127.0.0.1:9']}\n",
    );
    try {
      for (const args of [
        ["--config", config.path, "--check"],
        ["--config", config.path],
      ]) {
        const run = await runTcpgate(args);
        assert.equal(run.code, 1);
        const lines = run.stderr.trim().split("\n");
        assert.equal(lines.length, 1, run.stderr);
        assert.match(
          lines[0] ?? "",
          /workers: 2 needs Node\.js 22\.12 or later \(SO_REUSEPORT\); this is Node\.js 20\./,
        );
      }
    } finally {
      config.remove();
    }
  });

  test("a reload to workers: 2 is refused in one line; the single loop carries on", async () => {
    const echo = await startEcho();
    const port = await freePort();
    const yaml = (workers: number) => `version: 1
workers: ${workers}
listeners:
  - {name: a, listen: "127.0.0.1:${port}", targets: ["${echo.address}"]}
`;
    const gate = await startGate(yaml(1), { logLevel: "info" });
    try {
      gate.write(yaml(2));
      await assert.rejects(
        gate.reload(10_000),
        /^Error: reload rejected, the running config stays: \S+proxy\.yaml: workers: 2 needs Node\.js 22\.12 or later \(SO_REUSEPORT\); this is Node\.js 20\.\S+$/,
      );
      const socket = await dialWithin(port, "127.0.0.1", undefined, 3000);
      socket.write("still\n");
      await once(socket, "data");
      socket.destroy();
    } finally {
      await gate.close();
      await echo.close();
    }
  });
});

describe("workers: 2 and more", { skip: unsupported }, () => {
  const cleanups: (() => unknown)[] = [];
  after(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  async function gate(yaml: string, env?: Record<string, string>) {
    const config = tempConfig(yaml);
    const tcpgate = startTcpgate(["--config", config.path, "--no-watch"], env ? { env } : {});
    cleanups.push(
      () => tcpgate.stop("SIGKILL"),
      () => config.remove(),
    );
    await tcpgate.waitForLog((l) => l.msg === "tcpgate started", 15_000);
    return { tcpgate, config };
  }
  const applied = (t: Running) => t.logs.filter((l) => l.msg === "reload applied").length;
  async function reload(t: Running, write: () => void, outcome = "reload applied"): Promise<void> {
    const before = t.logs.filter((l) => l.msg === outcome || String(l.msg).startsWith(outcome)).length;
    write();
    process.kill(t.pid, "SIGHUP");
    await eventually(
      () => t.logs.filter((l) => l.msg === outcome || String(l.msg).startsWith(outcome)).length > before,
      10_000,
      outcome,
    );
  }
  /** A client that sent a line and got it echoed back: it is bridged. */
  async function bridged(port: number, localAddress = "127.0.0.1", timeoutMs = 3000): Promise<Socket | undefined> {
    let socket: Socket;
    try {
      socket = await dialWithin(port, "127.0.0.1", localAddress, timeoutMs);
    } catch {
      return undefined;
    }
    socket.write("ping\n");
    const echoed = await Promise.race([
      once(socket, "data").then(
        () => true,
        () => false,
      ),
      once(socket, "close").then(() => false),
      new Promise<boolean>((r) => setTimeout(() => r(false), timeoutMs)),
    ]);
    if (echoed) return socket;
    socket.destroy();
    return undefined;
  }
  const closeAll = (sockets: (Socket | undefined)[]) => {
    for (const s of sockets) s?.destroy();
  };
  const metric = async (admin: number, line: RegExp) => {
    const body = (await fetchAdmin(admin, "/metrics")).body;
    const found = body.split("\n").find((l) => line.test(l));
    return found === undefined ? undefined : Number(found.split(" ").pop());
  };

  test("maxConnections and maxConnectionsPerClient are exact for the instance under a burst", async () => {
    const echo = await startEcho();
    cleanups.push(() => echo.close());
    const [port = 0, admin = 0] = await freePorts(2);
    const { tcpgate } = await gate(`version: 1
workers: 2
admin: {listen: "127.0.0.1:${admin}"}
listeners:
  - {name: a, listen: "127.0.0.1:${port}", targets: ["${echo.address}"], maxConnections: 5, maxConnectionsPerClient: 3}
`);
    const sources = ["127.0.0.2", "127.0.0.3", "127.0.0.4"];
    const burst = await Promise.all(Array.from({ length: 24 }, (_, i) => bridged(port, sources[i % 3])));
    const open = burst.filter((s) => s !== undefined);
    assert.equal(open.length, 5, "exactly maxConnections bridges");
    const perSource = sources.map((a) => open.filter((s) => s.localAddress === a).length);
    assert.ok(Math.max(...perSource) <= 3, `per client ${perSource}`);
    await eventually(
      async () => (await metric(admin, /refused_total\{listener="a",reason="limit"\}/)) === 19,
      5000,
      "19 refusals",
    );
    assert.equal(await metric(admin, /bridges_open\{listener="a"\}/), 5);
    // Never refused below: each freed slot admits one new client, wherever it lands.
    closeAll(open.slice(0, 2));
    await eventually(
      async () => (await metric(admin, /bridges_open\{listener="a"\}/)) === 3,
      5000,
      "two bridges ended",
    );
    const again = await Promise.all(Array.from({ length: 6 }, () => bridged(port, "127.0.0.5")));
    assert.equal(again.filter(Boolean).length, 2);
    // Per client on its own: one address, a burst of 10, exactly 3.
    closeAll([...open, ...again]);
    await eventually(async () => (await metric(admin, /bridges_open\{listener="a"\}/)) === 0, 5000, "all ended");
    const one = await Promise.all(Array.from({ length: 10 }, () => bridged(port, "127.0.0.6")));
    assert.equal(one.filter(Boolean).length, 3);
    closeAll(one);
    await eventually(
      () => tcpgate.logs.filter((l) => l.msg === "bridge closed").length === 10,
      5000,
      "10 access lines",
    );
    const workers = new Set(tcpgate.logs.filter((l) => l.msg === "bridge closed").map((l) => l.worker));
    const accepted = await metric(admin, /accepted_total\{listener="a"\}/);
    assert.equal(accepted, 24 + 6 + 10, "/metrics counts every worker's accepts");
    const status = JSON.parse((await fetchAdmin(admin, "/status")).body);
    assert.equal(status.listeners[0].accepted, 40);
    assert.equal(status.totals.refused, 40 - 10);
    assert.ok(workers.size >= 1);
  });

  test("bridge durations and ends are counted across workers; /status has each worker; gone workers' counts stay", async () => {
    const echo = await startEcho();
    cleanups.push(() => echo.close());
    const [port = 0, admin = 0] = await freePorts(2);
    const yaml = (workers: number) => `version: 1
workers: ${workers}
shutdownTimeout: 10s
admin: {listen: "127.0.0.1:${admin}"}
listeners:
  - {name: a, listen: "127.0.0.1:${port}", targets: ["${echo.address}"]}
`;
    const { tcpgate, config } = await gate(yaml(2), { TCPGATE_TEST_WORKER_EXIT_SIGNAL: "SIGUSR2" });
    const first = await status(admin);
    assert.deepEqual(
      first.workers?.map((w) => [w.index, w.state, w.replaced]),
      [
        [0, "serving", 0],
        [1, "serving", 0],
      ],
    );
    assert.notEqual(first.workers?.[0]?.threadId, first.workers?.[1]?.threadId);

    /** Opens bridges (at least min) until every worker holds one; the kernel spreads them. */
    const spread = async (min: number, from: string) => {
      const opened: Socket[] = [];
      for (let i = 1; i <= 32; i++) {
        const s = await bridged(port, `${from}${i}`);
        if (s) opened.push(s);
        const held = (await status(admin)).workers?.map((w) => w.openBridges) ?? [];
        if (opened.length >= min && held.every((n) => n > 0)) break;
      }
      return opened;
    };
    const open = await spread(4, "127.0.0.");
    const during = await status(admin);
    const per = during.workers?.map((w) => w.openBridges) ?? [];
    assert.ok(
      per.every((n) => n > 0),
      `both workers hold bridges: ${per}`,
    );
    assert.equal(
      per.reduce((a, b) => a + b, 0),
      open.length,
    );
    assert.equal(
      during.workers?.reduce((n, w) => n + w.accepted, 0),
      during.totals.accepted,
    );

    // Every bridge that ended is in the histogram and in closedBy, whichever worker carried it.
    closeAll(open);
    await eventually(() => tcpgate.logs.filter((l) => l.msg === "bridge closed").length === open.length, 5000, "ended");
    const ends = new Map<string, number>();
    for (const l of tcpgate.logs.filter((l) => l.msg === "bridge closed"))
      ends.set(String(l.end), (ends.get(String(l.end)) ?? 0) + 1);
    const check = async (why: string) => {
      const m = await scrape(admin);
      assert.equal(m.value("tcpgate_bridge_duration_seconds_count", { listener: "a" }), open.length, why);
      assert.equal(m.value("tcpgate_bridge_duration_seconds_bucket", { listener: "a", le: "+Inf" }), open.length, why);
      const doc = await status(admin);
      const a = doc.listeners.find((l) => l.name === "a");
      for (const [reason, n] of ends) {
        assert.equal(m.value("tcpgate_bridges_closed_total", { listener: "a", reason }), n, `${why}: ${reason}`);
        assert.equal(a?.closedBy[reason], n, `${why}: closedBy ${reason}`);
      }
      assert.equal(
        Object.values(a?.closedBy ?? {}).reduce((x, y) => x + y, 0),
        open.length,
        why,
      );
      assert.equal(doc.totals.accepted, during.totals.accepted, `${why}: accepted never goes backwards`);
      assert.equal(doc.totals.closed, open.length, why);
      return doc;
    };
    await check("both workers serving");

    // A worker that dies: its counts (as of the last read) stay; its replacement says so.
    process.kill(tcpgate.pid, "SIGUSR2");
    await tcpgate.waitForLog((l) => l.msg === "worker replaced", 10_000);
    const replaced = await check("a worker died and was replaced");
    assert.deepEqual(
      replaced.workers?.map((w) => [w.index, w.state, w.replaced]),
      [
        [0, "serving", 1],
        [1, "serving", 0],
      ],
    );
    assert.ok(Date.parse(replaced.workers?.[0]?.startedAt ?? "") > Date.parse(first.workers?.[0]?.startedAt ?? ""));

    // A worker removed by a reload: draining while it holds a bridge, then gone; its counts stay.
    const held = await spread(2, "127.0.1.");
    const holding = (await status(admin)).workers?.[1]?.openBridges;
    await reload(tcpgate, () => config.write(yaml(1)));
    const draining = await status(admin);
    assert.deepEqual(
      draining.workers?.map((w) => [w.index, w.state, w.openBridges]),
      [
        [0, "serving", held.length - (holding ?? 0)],
        [1, "draining", holding],
      ],
    );
    assert.equal(draining.totals.openBridges, held.length, "the removed worker's open bridges still count");
    closeAll(held);
    await eventually(async () => (await status(admin)).workers?.length === 1, 10_000, "the removed worker is gone");
    const all = open.length + held.length;
    await eventually(
      async () => (await scrape(admin)).value("tcpgate_bridge_duration_seconds_count", { listener: "a" }) === all,
      5000,
      "every bridge in the histogram",
    );
    const gone = await status(admin);
    assert.equal(gone.totals.accepted, during.totals.accepted + held.length, "accepted never goes backwards");
    assert.equal(gone.totals.closed, all);
  });

  test("a reload applies to every worker or none; no client is refused during 50 reloads; one access line per bridge", async () => {
    const echo = await startEcho();
    cleanups.push(() => echo.close());
    const [port = 0, busyPort = 0, extraPort = 0] = await freePorts(3);
    const busy: TestServer = await startServer(() => {}, "127.0.0.1", busyPort);
    cleanups.push(() => busy.close());
    const yaml = (idle: string, extra = "") => `version: 1
workers: 2
listeners:
  - {name: a, listen: "127.0.0.1:${port}", targets: ["${echo.address}"], idleTimeout: ${idle}, maxConnections: 1000}
${extra}`;
    const { tcpgate, config } = await gate(yaml("1m"));
    const held = await bridged(port);
    assert.ok(held);

    // A new listener on a port another process holds: no worker may apply any of it.
    await reload(
      tcpgate,
      () => config.write(yaml("2m", `  - {name: b, listen: "127.0.0.1:${busyPort}", targets: ["${echo.address}"]}\n`)),
      "reload rejected",
    );
    assert.match(String(tcpgate.logs.at(-1)?.msg), /EADDRINUSE|in use/);

    let stop = false;
    let ok = 0;
    const failures: string[] = [];
    const load = async () => {
      while (!stop) {
        const s = await bridged(port, "127.0.0.1", 5000);
        if (s) {
          ok++;
          s.destroy();
        } else failures.push(`client ${ok + failures.length} not bridged`);
      }
    };
    const clients = [load(), load(), load()];
    const start = applied(tcpgate);
    for (let i = 0; i < 50; i++) {
      const extra =
        i % 2 === 0 ? `  - {name: c, listen: "127.0.0.1:${extraPort}", targets: ["${echo.address}"]}\n` : "";
      await reload(tcpgate, () => config.write(yaml(`${60 + i}s`, extra)));
    }
    stop = true;
    await Promise.all(clients);
    assert.equal(applied(tcpgate) - start, 50);
    assert.deepEqual(failures, []);
    assert.ok(ok > 50, `${ok} clients bridged`);
    held.write("still\n");
    await once(held, "data");
    held.destroy();
    await eventually(
      () => tcpgate.logs.filter((l) => l.msg === "bridge closed").length === ok + 1,
      5000,
      "one line per bridge",
    );
  });

  test("a worker that dies is replaced, its slots given back; workers change by reload; SIGTERM drains them all", async () => {
    const echo = await startEcho();
    cleanups.push(() => echo.close());
    const port = await freePort();
    const yaml = (workers: number) => `version: 1
workers: ${workers}
shutdownTimeout: 20s
listeners:
  - {name: a, listen: "127.0.0.1:${port}", targets: ["${echo.address}"], maxConnections: 10}
`;
    const { tcpgate, config } = await gate(yaml(2), { TCPGATE_TEST_WORKER_EXIT_SIGNAL: "SIGUSR2" });
    const open = await Promise.all(Array.from({ length: 10 }, () => bridged(port)));
    assert.equal(open.filter(Boolean).length, 10);
    assert.equal(await bridged(port), undefined, "the 11th is refused");

    process.kill(tcpgate.pid, "SIGUSR2");
    const died = await tcpgate.waitForLog((l) => String(l.msg).startsWith("worker died"), 10_000);
    await tcpgate.waitForLog((l) => l.msg === "worker replaced", 10_000);
    const lost = Number(died.bridgesLost);
    // The dead worker's bridges are gone; its slots came back: exactly that many new ones fit.
    const gone = (s: Socket | undefined) => s === undefined || s.readableEnded || s.destroyed;
    assert.ok(lost > 0 && lost < 10, `${lost} bridges lost: both workers held some`);
    await eventually(() => open.filter(gone).length === lost, 5000, `${lost} lost bridges closed`);
    const alive = open.filter((s) => !gone(s));
    const fresh = await Promise.all(Array.from({ length: lost + 3 }, () => bridged(port)));
    assert.equal(fresh.filter(Boolean).length, lost);

    // 2 → 3 → 1 workers by reload; open bridges carry on, new clients are served.
    await reload(tcpgate, () => config.write(yaml(3)));
    await reload(tcpgate, () => config.write(yaml(1)));
    await tcpgate.waitForLog((l) => l.msg === "worker removed by reload: draining its bridges", 5000);
    for (const s of alive) {
      s?.write("still\n");
      await once(s as Socket, "data");
    }

    // SIGTERM: nothing new accepted, the open bridges finish, then exit 0.
    const stopping = tcpgate.stop("SIGTERM", 20_000);
    await tcpgate.waitForLog((l) => l.msg === "shutting down", 5000);
    const survivor = alive[0] as Socket;
    survivor.write("draining\n");
    await once(survivor, "data");
    closeAll([...open, ...fresh]);
    assert.equal(await stopping, 0);
  });
});
