// What a reload does to listeners and bridges, end to end through the real CLI and its real
// config file: moved, removed and retargeted listeners, bad files that change nothing, a
// bind failure that rolls the whole file back, and no refused client while reloads run.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { renameSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { parseConfig } from "../../src/config/load.ts";
import { startGate } from "../support/cli.ts";
import { delay, endOf, eventually, freePorts, startEcho, startServer, type TestServer } from "../support/net.ts";
import {
  configText,
  connectOutcome,
  exchange,
  type ListenerDef,
  listeningPorts,
  open,
  roundTrip,
  startTagged,
} from "../support/reload.ts";

describe("reload", () => {
  let echo: TestServer;
  let tagA: TestServer;
  let tagB: TestServer;

  before(async () => {
    echo = await startEcho();
    tagA = await startTagged("A");
    tagB = await startTagged("B");
  });
  after(async () => {
    await echo?.close();
    await tagA?.close();
    await tagB?.close();
  });

  const listener = (name: string, port: number, targets = [echo.address], settings = {}): ListenerDef => ({
    name,
    listen: `127.0.0.1:${port}`,
    targets,
    settings,
  });

  describe("listeners and open bridges", () => {
    test("a changed port: the new one serves, the old refuses, its open bridge carries on", {
      timeout: 20_000,
    }, async () => {
      const [p1 = 0, p2 = 0] = await freePorts(2);
      const gate = await startGate(configText([listener("a", p1)]), { watch: true });
      try {
        const bridge = await open(p1);
        assert.equal(await exchange(bridge, "before", 6), "before");
        gate.write(configText([listener("a", p2)]));
        await gate.waitMsg(`listener a: rebound 127.0.0.1:${p1} → 127.0.0.1:${p2}`);
        assert.equal(await roundTrip(p2, "new port"), "new port");
        assert.equal(await connectOutcome(p1), "ECONNREFUSED");
        assert.equal(await exchange(bridge, "after", 5), "after");
        assert.deepEqual(listeningPorts(gate.pid), [p2]);
        bridge.end();
        assert.equal(await endOf(bridge), "end");
      } finally {
        await gate.close();
      }
    });

    test("a removed listener stops accepting, its open bridge carries on", { timeout: 20_000 }, async () => {
      const [pa = 0, pb = 0] = await freePorts(2);
      const gate = await startGate(configText([listener("a", pa), listener("b", pb)]), { watch: true });
      try {
        const bridge = await open(pb);
        assert.equal(await exchange(bridge, "before", 6), "before");
        gate.write(configText([listener("a", pa)]));
        await gate.waitMsg("listener b: removed (open bridges carry on)");
        assert.equal(await connectOutcome(pb), "ECONNREFUSED");
        assert.equal(await exchange(bridge, "after", 5), "after");
        assert.equal(await roundTrip(pa, "a serves"), "a serves");
        assert.deepEqual(listeningPorts(gate.pid), [pa]);
        // The drained listener's bridge still ends the normal way, with its access-log line.
        bridge.end();
        const line = await gate.waitForLog((l) => l.listener === "b" && l.msg === "bridge closed");
        assert.equal(line.end, "client-closed");
        assert.equal(line.bytesUp, 11);
      } finally {
        await gate.close();
      }
    });

    test("changed targets: the open bridge keeps its target, new bridges go to the new one", {
      timeout: 20_000,
    }, async () => {
      const [pa = 0] = await freePorts(1);
      const gate = await startGate(configText([listener("a", pa, [tagA.address])]), { watch: true });
      try {
        const bridge = await open(pa);
        assert.equal(await exchange(bridge, "x", 3), "A:x");
        gate.write(configText([listener("a", pa, [tagB.address])]));
        await gate.waitMsg("listener a: targets changed");
        assert.equal(await roundTrip(pa, "y", 3), "B:y");
        assert.equal(await exchange(bridge, "z", 3), "A:z");
        bridge.destroy();
      } finally {
        await gate.close();
      }
    });

    test("a changed idleTimeout applies to new bridges; an open bridge keeps its own", {
      timeout: 20_000,
    }, async () => {
      const [pa = 0] = await freePorts(1);
      const short = listener("a", pa, [echo.address], { idleTimeout: "700ms" });
      const gate = await startGate(configText([short]), { watch: true });
      try {
        const old = await open(pa);
        assert.equal(await exchange(old, "old", 3), "old");
        const oldEnd = endOf(old);
        gate.write(configText([{ ...short, settings: { idleTimeout: "1m" } }]));
        await gate.waitMsg("listener a: idleTimeout changed");
        const fresh = await open(pa);
        assert.equal(await exchange(fresh, "new", 3), "new");
        const freshIdleSince = performance.now();
        // The old bridge times out on its own 700 ms; the new one, idle as long, lives on.
        assert.equal(await oldEnd, "end");
        const line = await gate.waitForLog((l) => l.clientPort === old.localPort && l.msg === "bridge closed");
        assert.equal(line.end, "idle-timeout");
        // The wait is the test: the new bridge stays idle for longer than the old timeout.
        await delay(1000 - (performance.now() - freshIdleSince));
        assert.equal(await exchange(fresh, "alive", 5), "alive");
        fresh.destroy();
      } finally {
        await gate.close();
      }
    });

    test("round-robin carries on where it was when a reload leaves the targets alone", {
      timeout: 20_000,
    }, async () => {
      const [pa = 0] = await freePorts(1);
      const version = (idleTimeout: string) =>
        configText([listener("a", pa, [tagA.address, tagB.address], { idleTimeout })]);
      const gate = await startGate(version("1m"), { watch: true });
      try {
        assert.equal(await roundTrip(pa, "1", 3), "A:1");
        gate.write(version("2m"));
        await gate.waitMsg("listener a: idleTimeout changed");
        // A fresh balancer would start again at A.
        assert.equal(await roundTrip(pa, "2", 3), "B:2");
        assert.equal(await roundTrip(pa, "3", 3), "A:3");
      } finally {
        await gate.close();
      }
    });

    test("two listeners swap ports: both serve on their new port, bridges on the old ones carry on", {
      timeout: 20_000,
    }, async () => {
      const [p1 = 0, p2 = 0] = await freePorts(2);
      const gate = await startGate(configText([listener("a", p1, [tagA.address]), listener("b", p2, [tagB.address])]), {
        watch: true,
      });
      try {
        const onA = await open(p1);
        assert.equal(await exchange(onA, "1", 3), "A:1");
        gate.write(configText([listener("a", p2, [tagA.address]), listener("b", p1, [tagB.address])]));
        await gate.waitApplied(1);
        assert.ok(gate.messages(`listener a: rebound 127.0.0.1:${p1} → 127.0.0.1:${p2}`).length === 1);
        assert.ok(gate.messages(`listener b: rebound 127.0.0.1:${p2} → 127.0.0.1:${p1}`).length === 1);
        // Each address is given up by one listener and taken by the other: a short gap, said so.
        assert.equal(gate.messages("clients may be refused for an instant").length, 1);
        assert.equal(await roundTrip(p2, "a", 3), "A:a");
        assert.equal(await roundTrip(p1, "b", 3), "B:b");
        assert.equal(await exchange(onA, "2", 3), "A:2");
        assert.deepEqual(
          listeningPorts(gate.pid),
          [p1, p2].sort((x, y) => x - y),
        );
        onA.destroy();
      } finally {
        await gate.close();
      }
    });

    test("127.0.0.1:P → 0.0.0.0:P and back: works, warns that clients may be refused for an instant", {
      timeout: 20_000,
    }, async () => {
      const [p = 0] = await freePorts(1);
      const gate = await startGate(configText([listener("a", p)]), { watch: true });
      try {
        const bridge = await open(p);
        assert.equal(await exchange(bridge, "1", 1), "1");
        gate.write(configText([{ ...listener("a", p), listen: `0.0.0.0:${p}` }]));
        await gate.waitMsg(`listener a: rebound 127.0.0.1:${p} → 0.0.0.0:${p}`);
        const warning = await gate.waitMsg("clients may be refused for an instant");
        assert.deepEqual(warning.addresses, [`0.0.0.0:${p}`]);
        assert.equal(await roundTrip(p, "wildcard"), "wildcard");
        assert.equal(await exchange(bridge, "2", 1), "2");
        assert.deepEqual(listeningPorts(gate.pid), [p]);

        const from = gate.logs.length;
        gate.write(configText([listener("a", p)]));
        await gate.waitMsg(`listener a: rebound 0.0.0.0:${p} → 127.0.0.1:${p}`, { from });
        await gate.waitMsg("clients may be refused for an instant", { from });
        assert.equal(await roundTrip(p, "specific"), "specific");
        assert.equal(await exchange(bridge, "3", 1), "3");
        assert.deepEqual(listeningPorts(gate.pid), [p]);
        bridge.destroy();
      } finally {
        await gate.close();
      }
    });
  });

  describe("a bad file changes nothing", () => {
    /** Connects to port over and over until stopped; counts what went wrong. */
    function keepServing(port: number) {
      let stop = false;
      const counts = { attempted: 0, failed: 0, errors: [] as string[] };
      const loop = (async () => {
        while (!stop) {
          counts.attempted++;
          const text = `probe ${counts.attempted}`;
          try {
            assert.equal(await roundTrip(port, text), text);
          } catch (error) {
            counts.failed++;
            counts.errors.push(String(error));
          }
          // A pace, not a wait for anything.
          await delay(20);
        }
      })();
      return {
        counts,
        async end() {
          stop = true;
          await loop;
          return counts;
        },
      };
    }

    test("a file truncated to half is rejected; its completion applies", { timeout: 20_000 }, async () => {
      const [pa = 0, pb = 0] = await freePorts(2);
      const one = configText([listener("a", pa)]);
      const two = configText([
        listener("a", pa),
        listener("b", pb, [echo.address, tagA.address, tagB.address], { idleTimeout: "30s", connectTimeout: "2s" }),
      ]);
      const half = two.slice(0, Math.floor(two.length / 2));
      assert.equal(
        parseConfig(half, "half").ok,
        false,
        "the half must be a broken file for this test to mean anything",
      );
      const gate = await startGate(one, { watch: true });
      const probe = keepServing(pa);
      try {
        gate.write(half);
        const rejected = await gate.waitMsg("reload rejected");
        assert.match(String(rejected.msg), /proxy\.yaml:\d+:\d+: /);
        assert.equal(await connectOutcome(pb), "ECONNREFUSED");
        gate.write(two);
        await gate.waitMsg(`listener b: added on 127.0.0.1:${pb}`);
        await gate.waitApplied(1);
        assert.equal(await roundTrip(pb, "complete"), "complete");
        assert.equal(gate.applied(), 1);
      } finally {
        const counts = await probe.end();
        await gate.close();
        assert.equal(counts.failed, 0, counts.errors.join("\n"));
      }
    });

    test("broken YAML, then an unknown key, then a valid file: two rejected with file:line:col, one applied", {
      timeout: 20_000,
    }, async () => {
      const [pa = 0, pb = 0] = await freePorts(2);
      const one = configText([listener("a", pa)]);
      const two = configText([listener("a", pa), listener("b", pb)]);
      const gate = await startGate(one, { watch: true });
      const probe = keepServing(pa);
      try {
        gate.write(two.replace(`targets:\n      - "${echo.address}"\n`, `targets: [ "${echo.address}"\n`));
        const broken = await gate.waitMsg("reload rejected");
        assert.match(String(broken.msg), /reload rejected, the running config stays: \S*proxy\.yaml:\d+:\d+: \S/);

        let from = gate.logs.length;
        gate.write(two.replace("  - name: b\n", "  - name: b\n    idelTimeout: 5s\n"));
        const unknown = await gate.waitMsg("reload rejected", { from });
        assert.match(String(unknown.msg), /proxy\.yaml:9:5: listeners\[1\]\.idelTimeout: unknown key "idelTimeout"/);
        assert.equal(await connectOutcome(pb), "ECONNREFUSED");
        assert.equal(gate.applied(), 0);

        from = gate.logs.length;
        gate.write(two);
        await gate.waitMsg(`listener b: added on 127.0.0.1:${pb}`, { from });
        await gate.waitApplied(1);
        assert.equal(await roundTrip(pb, "valid"), "valid");
        assert.equal(gate.messages("reload rejected").length, 2);
        assert.equal(gate.applied(), 1);
      } finally {
        const counts = await probe.end();
        await gate.close();
        assert.equal(counts.failed, 0, counts.errors.join("\n"));
      }
    });

    test("a missing file keeps the running config; recreating it applies", { timeout: 20_000 }, async () => {
      const [pa = 0, pb = 0] = await freePorts(2);
      const gate = await startGate(configText([listener("a", pa)]), { watch: true });
      const probe = keepServing(pa);
      try {
        unlinkSync(gate.path);
        const missing = await gate.waitMsg("reload rejected");
        assert.match(String(missing.msg), /proxy\.yaml: cannot read the config: no such file/);
        // The running config goes on serving with the file gone: ten more probes in a row.
        const served = probe.counts.attempted;
        await eventually(() => probe.counts.attempted >= served + 10, 5000, "ten more probes");
        assert.equal(await roundTrip(pa, "still here"), "still here");
        writeFileSync(gate.path, configText([listener("a", pa), listener("b", pb)]));
        await gate.waitMsg(`listener b: added on 127.0.0.1:${pb}`);
        assert.equal(await roundTrip(pb, "back"), "back");
      } finally {
        const counts = await probe.end();
        await gate.close();
        assert.equal(counts.failed, 0, counts.errors.join("\n"));
      }
    });

    test("a new listener on a port another process holds: nothing in that file applies", {
      timeout: 20_000,
    }, async () => {
      const [pa = 0, pa2 = 0, pb = 0] = await freePorts(3);
      const squatter = await startServer((socket) => socket.end("squatter"));
      const start = [listener("a", pa), listener("b", pb, [tagA.address])];
      const gate = await startGate(configText(start), { watch: true });
      try {
        // a moves, b changes targets, c cannot bind: the move and the retarget must not happen.
        gate.write(configText([listener("a", pa2), listener("b", pb, [tagB.address]), listener("c", squatter.port)]));
        const rejected = await gate.waitMsg("reload rejected");
        assert.match(
          String(rejected.msg),
          new RegExp(`listener c: cannot listen on 127\\.0\\.0\\.1:${squatter.port}: .*EADDRINUSE`),
        );
        assert.equal(await roundTrip(pa, "a stays"), "a stays");
        assert.equal(await connectOutcome(pa2), "ECONNREFUSED");
        assert.equal(await roundTrip(pb, "b", 3), "A:b");
        assert.deepEqual(
          listeningPorts(gate.pid),
          [pa, pb].sort((x, y) => x - y),
        );
        assert.equal(gate.applied(), 0);
        assert.deepEqual(gate.messages("listener a: rebound"), []);

        // Once the port is free, the same file applies whole.
        await squatter.close();
        gate.hangup();
        await gate.waitApplied(1);
        assert.equal(await roundTrip(pa2, "a moved"), "a moved");
        assert.equal(await connectOutcome(pa), "ECONNREFUSED");
        assert.equal(await roundTrip(pb, "b", 3), "B:b");
        assert.equal(await roundTrip(squatter.port, "c"), "c");
      } finally {
        await gate.close();
        await squatter.close();
      }
    });

    test("a failed wildcard rebind (127.0.0.2:P is taken) rolls back to 127.0.0.1:P", { timeout: 20_000 }, async () => {
      const [p = 0, pb = 0] = await freePorts(2);
      const other = await startServer((socket) => socket.end("other"), "127.0.0.2", p);
      const gate = await startGate(configText([listener("a", p), listener("b", pb, [tagA.address])]), { watch: true });
      try {
        gate.write(configText([{ ...listener("a", p), listen: `0.0.0.0:${p}` }, listener("b", pb, [tagB.address])]));
        const rejected = await gate.waitMsg("reload rejected");
        assert.match(String(rejected.msg), new RegExp(`cannot listen on 0\\.0\\.0\\.0:${p}`));
        assert.deepEqual(gate.messages("could not listen again"), []);
        assert.equal(await roundTrip(p, "a back"), "a back");
        assert.equal(await roundTrip(pb, "b", 3), "A:b");
        assert.deepEqual(
          listeningPorts(gate.pid),
          [p, pb].sort((x, y) => x - y),
        );
      } finally {
        await gate.close();
        await other.close();
      }
    });
  });

  describe("under load", () => {
    test("50 reloads in a row: zero refused or reset clients", { timeout: 40_000 }, async (t) => {
      const [pa = 0, pb = 0] = await freePorts(2);
      const echo2 = await startEcho();
      // Odd versions change b's targets, even ones its idleTimeout: each is a real change.
      const version = (i: number) =>
        configText([
          listener("a", pa),
          listener("b", pb, i % 4 < 2 ? [echo.address] : [echo2.address], {
            idleTimeout: i % 4 === 1 || i % 4 === 2 ? "1m" : "2m",
          }),
        ]);
      const gate = await startGate(version(0), { watch: false });
      const bridge = await open(pb);
      let stop = false;
      const counts = { attempted: 0, ok: 0, refused: 0, reset: 0, other: 0 };
      const errors: string[] = [];
      const client = async (port: number) => {
        while (!stop) {
          counts.attempted++;
          const text = `hello ${counts.attempted}`;
          try {
            const answer = await roundTrip(port, text);
            if (answer === text) counts.ok++;
            else throw new Error(`answer ${JSON.stringify(answer)}`);
          } catch (error) {
            const code = (error as NodeJS.ErrnoException).code;
            if (code === "ECONNREFUSED") counts.refused++;
            else if (code === "ECONNRESET" || code === "EPIPE") counts.reset++;
            else counts.other++;
            errors.push(String(error));
          }
        }
      };
      const clients = [pa, pa, pa, pa, pb, pb].map(client);
      const durations: number[] = [];
      // Clients are being served before the first reload, and still after the last.
      const served = (more: number) => {
        const from = counts.ok;
        return eventually(() => counts.ok >= from + more, 5000, `${more} more connections served`);
      };
      try {
        await served(clients.length);
        for (let i = 1; i <= 50; i++) {
          writeFileSync(gate.path, version(i));
          const started = performance.now();
          gate.hangup();
          await gate.waitApplied(i);
          durations.push(performance.now() - started);
        }
        await served(clients.length);
      } finally {
        stop = true;
        await Promise.all(clients);
      }
      try {
        t.diagnostic(
          `reloads applied: ${gate.applied()}; connections attempted ${counts.attempted}, echoed ${counts.ok}, ` +
            `refused ${counts.refused}, reset ${counts.reset}, other ${counts.other}; ` +
            `SIGHUP → "reload applied" median ${median(durations).toFixed(1)} ms, max ${Math.max(...durations).toFixed(1)} ms`,
        );
        assert.equal(gate.applied(), 50);
        assert.equal(gate.messages("reload rejected").length, 0);
        assert.equal(gate.messages("listener b: targets changed").length, 25);
        assert.equal(gate.messages("listener b: idleTimeout changed").length, 25);
        assert.deepEqual(
          { refused: counts.refused, reset: counts.reset, other: counts.other },
          { refused: 0, reset: 0, other: 0 },
          errors.slice(0, 5).join("\n"),
        );
        assert.equal(counts.ok, counts.attempted);
        assert.ok(counts.attempted >= 200, `only ${counts.attempted} connections during the reloads`);
        // A bridge open through all 50 reloads of its listener still echoes.
        assert.equal(await exchange(bridge, "survivor", 8), "survivor");
        assert.deepEqual(
          listeningPorts(gate.pid),
          [pa, pb].sort((x, y) => x - y),
        );
      } finally {
        bridge.destroy();
        await gate.close();
        await echo2.close();
      }
    });

    // A tight loop ends before the watcher sees the file settle: one reload. Saves each
    // followed by SIGHUP make reloads overlap with saves and with each other in the queue.
    for (const pace of ["a tight loop", "a loop with a SIGHUP after each"] as const) {
      test(`100 saves in ${pace}: the last one applies, no listening socket leaks`, { timeout: 30_000 }, async (t) => {
        const [pa = 0, ...ports] = await freePorts(101);
        // Each save moves b to another port and alternates its target.
        const version = (i: number) =>
          configText([listener("a", pa), listener("b", ports[i] ?? 0, [i % 2 ? tagA.address : tagB.address])]);
        const gate = await startGate(version(0), { watch: true });
        try {
          for (let i = 1; i < 100; i++) {
            if (pace === "a tight loop") writeFileSync(gate.path, version(i));
            else {
              // Half of them by rename, as editors save: a reload never reads a half-written file.
              const temp = join(gate.dir, `.proxy.yaml.${i}`);
              writeFileSync(i % 2 ? temp : gate.path, version(i));
              if (i % 2) renameSync(temp, gate.path);
              gate.hangup();
              // The pace is the test: saves and SIGHUPs faster than reloads finish.
              await delay(i % 10 === 0 ? 20 : 2);
            }
          }
          const last = createHash("sha256").update(version(99)).digest("hex");
          await eventually(
            () => gate.logs.some((l) => l.msg === "reload applied" && l.sha256 === last),
            5000,
            "the last save to be applied",
          );
          assert.equal(await roundTrip(ports[99] ?? 0, "last", 6), "A:last");
          for (const port of ports.slice(0, 99))
            assert.equal(await connectOutcome(port), "ECONNREFUSED", `port ${port}`);
          assert.deepEqual(
            listeningPorts(gate.pid),
            [pa, ports[99] ?? 0].sort((x, y) => x - y),
          );
          assert.equal(await roundTrip(pa, "a"), "a");
          // An in-place write is truncate-then-write: a reload may catch it empty, and must reject it.
          const rejected = gate.messages("reload rejected");
          for (const line of rejected) assert.match(line, /the file is empty|YAML|proxy\.yaml:\d+:\d+/);
          t.diagnostic(`reloads applied: ${gate.applied()}, rejected: ${rejected.length} ${rejected.join(" | ")}`);
        } finally {
          await gate.close();
        }
      });
    }
  });
});

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}
