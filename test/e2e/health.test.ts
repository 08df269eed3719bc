// Target health end to end (issue 5) through the real CLI and real sockets on loopback:
// active checks (a TCP connect per target every interval) marking a target down and up
// without any client traffic, each change logged once; every target down by the checks
// while clients still get through; and health state that survives a reload.
//
// Checks here run every 200 ms with fall 2 and rise 2, so a state change is due within
// about (fall or rise + 1) × 200 ms; the bounds below leave room for a loaded machine.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { startBlackHole } from "../support/blackhole.ts";
import { startGate } from "../support/cli.ts";
import { eventually, freePort, freePorts } from "../support/net.ts";
import {
  appConfig,
  cleanup,
  closedBy,
  type TaggedTarget,
  targetStatus,
  targets,
  visit,
  visits,
} from "../support/targets.ts";

const BOUNDED = { timeout: 20_000 };

const CHECKS = ["    healthCheck:", "      interval: 200ms", "      timeout: 200ms", "      fall: 2", "      rise: 2"];

/**
 * Resolves once n more checks have reached target: n intervals have passed for every
 * target of its listener (one timer checks them all), whatever the machine's load.
 */
async function checksPass(target: TaggedTarget, n: number): Promise<void> {
  const seen = target.accepted();
  await eventually(() => target.accepted() >= seen + n, 5000, `${n} more checks on ${target.tag}`);
}

describe("active health checks", () => {
  test(
    "a stopped target is marked down by the checks alone, and up after rise checks; each change logged once",
    BOUNDED,
    async (t) => {
      const c = cleanup();
      t.after(() => c.run());
      const [a, b] = await targets(c, "a", "b");
      const port = await freePort();
      const gate = c.add(await startGate(appConfig({ listen: `127.0.0.1:${port}`, targets: [a, b], more: CHECKS })));
      // Checks reach both targets, and close their connections at once.
      await eventually(() => a.accepted() >= 2 && b.accepted() >= 2, 5000, "two checks on each target");
      assert.deepEqual(gate.messages("target "), [], "healthy targets: no state change");

      const killed = performance.now();
      await a.kill();
      const down = await gate.waitMsg(`target ${a.address} down: 2 failed checks (ECONNREFUSED)`, { timeoutMs: 3000 });
      const downMs = performance.now() - killed;
      assert.equal(down.target, a.address);
      assert.equal(down.listener, "app");
      assert.ok(downMs < 1500, `down after ${Math.round(downMs)} ms`);
      // Five more failed checks (the same timer's checks of b tell): nothing more is said.
      await checksPass(b, 5);
      assert.equal(gate.messages(`target ${a.address} down`).length, 1, "logged once, not every interval");

      const restarted = performance.now();
      const checksBefore = a.accepted();
      await a.restart();
      await gate.waitMsg(`target ${a.address} up: 2 successful checks`, { timeoutMs: 3000 });
      const upMs = performance.now() - restarted;
      assert.ok(upMs < 1500, `up after ${Math.round(upMs)} ms`);
      assert.ok(a.accepted() - checksBefore >= 2, "marked up by checks it answered");
      await checksPass(a, 5);
      assert.equal(gate.messages(`target ${a.address} up`).length, 1, "logged once, not every interval");
      assert.deepEqual(gate.messages(`target ${b.address}`), [], "b never changed");
      assert.deepEqual(gate.bridgeLines(), [], "no client was involved");
      // A check's connection is closed as soon as it is up: none piles up between checks.
      await eventually(() => a.sockets.size === 0, 1000, "no check connection open");
    },
  );

  test("a target that never answers is marked down by checks that time out", BOUNDED, async (t) => {
    const c = cleanup();
    t.after(() => c.run());
    const silent = await startBlackHole();
    t.after(() => silent.close());
    const [b] = await targets(c, "b");
    const port = await freePort();
    const gate = c.add(
      await startGate(
        appConfig({
          listen: `127.0.0.1:${port}`,
          targets: [silent.address, b],
          more: [...CHECKS, "    connectTimeout: 300ms"],
        }),
      ),
    );
    await gate.waitMsg(`target ${silent.address} down: 2 failed checks (ETIMEDOUT)`, { timeoutMs: 3000 });
    assert.deepEqual(gate.messages("target "), [`target ${silent.address} down: 2 failed checks (ETIMEDOUT)`]);
    assert.equal(await visit(port), "b");
  });

  test("a target the checks hold down gets no clients; the others do", BOUNDED, async (t) => {
    const c = cleanup();
    t.after(() => c.run());
    const [a, b] = await targets(c, "a", "b");
    const port = await freePort();
    const gate = c.add(await startGate(appConfig({ listen: `127.0.0.1:${port}`, targets: [a, b], more: CHECKS })));
    await a.kill();
    await gate.waitMsg(`target ${a.address} down: 2 failed checks`, { timeoutMs: 3000 });
    const from = gate.logs.length;
    // Right after the change (inside the 1 s before a real connection may try it again).
    assert.deepEqual(Object.fromEntries(await visits(port, 20)), { b: 20 });
    for (const line of gate.bridgeLines(from)) assert.equal(line.errors, undefined, "a was tried");
  });

  test(
    "every target down by the checks: a client is still tried against them, and served as soon as one is back",
    BOUNDED,
    async (t) => {
      const c = cleanup();
      t.after(() => c.run());
      const [a, b] = await targets(c, "a", "b");
      const port = await freePort();
      const gate = c.add(await startGate(appConfig({ listen: `127.0.0.1:${port}`, targets: [a, b], more: CHECKS })));
      // Both stop at once, so the same checks find both down.
      await Promise.all([a.kill(), b.kill()]);
      await gate.waitMsg(`target ${a.address} down: 2 failed checks`, { timeoutMs: 3000 });
      await gate.waitMsg(`target ${b.address} down: 2 failed checks`, { timeoutMs: 3000 });
      const from = gate.logs.length;
      const closed = await closedBy(port);
      assert.notEqual(closed.how, "timeout", "the client was left hanging");
      assert.ok(closed.ms < 1000, `closed after ${Math.round(closed.ms)} ms`);
      const line = await gate.bridgeEnd(closed.clientPort, from);
      assert.equal(line.end, "connect-failed");
      assert.deepEqual(
        [...(line.errors as string[])].sort(),
        [`${a.address} ECONNREFUSED`, `${b.address} ECONNREFUSED`].sort(),
      );
      await gate.waitMsg("every target is down: trying them anyway", { from });

      // b is back; the checks have not seen it yet (rise 2), but a client is served at once.
      await b.restart();
      assert.equal(await visit(port), "b");
      // The log line may reach us after the bytes did: wait for it, then count.
      await gate.waitMsg(`target ${b.address} up`, { from });
      assert.equal(gate.messages(`target ${b.address} up`).length, 1);
    },
  );
});

describe("health state across a reload", () => {
  test("a target marked down by failed connects stays down when another setting changes", BOUNDED, async (t) => {
    const c = cleanup();
    t.after(() => c.run());
    const [b] = await targets(c, "b");
    const dead = `127.0.0.1:${await freePort()}`;
    const port = await freePort();
    const adminPort = await freePort();
    const listen = `127.0.0.1:${port}`;
    const gate = c.add(await startGate(appConfig({ listen, targets: [dead, b], adminPort })));
    assert.deepEqual(Object.fromEntries(await visits(port, 10)), { b: 10 });
    await gate.waitMsg(`target ${dead} down: 3 failed connects (ECONNREFUSED)`);
    const before = await targetStatus(adminPort, "app");
    assert.equal(before[0]?.state, "down");

    gate.write(appConfig({ listen, targets: [dead, b], adminPort, more: ["    idleTimeout: 10m"] }));
    await gate.reload();
    const after = await targetStatus(adminPort, "app");
    assert.equal(after[0]?.state, "down", "the reload forgot that the target is down");
    assert.equal(after[0]?.connectFailures, before[0]?.connectFailures);
    // Had it come back as up, three more failures would mark it down again, and say so.
    assert.deepEqual(Object.fromEntries(await visits(port, 20)), { b: 20 });
    assert.equal(gate.messages(`target ${dead} down`).length, 1);
  });

  test("checks go on after a reload from the same state, with one timer per listener", BOUNDED, async (t) => {
    const c = cleanup();
    t.after(() => c.run());
    const [a, b] = await targets(c, "a", "b");
    const port = await freePort();
    const adminPort = await freePort();
    const listen = `127.0.0.1:${port}`;
    const gate = c.add(await startGate(appConfig({ listen, targets: [a, b], adminPort, more: CHECKS })));
    await a.kill();
    await gate.waitMsg(`target ${a.address} down: 2 failed checks`, { timeoutMs: 3000 });

    gate.write(appConfig({ listen, targets: [a, b], adminPort, more: [...CHECKS, "    idleTimeout: 10m"] }));
    await gate.reload();
    assert.equal((await targetStatus(adminPort, "app"))[0]?.state, "down");
    // Had the state been reset, the next two checks would mark it down again (b's checks
    // are the same timer's).
    await checksPass(b, 5);
    assert.equal(gate.messages(`target ${a.address} down`).length, 1);

    const checksBefore = a.accepted();
    await a.restart();
    await gate.waitMsg(`target ${a.address} up: 2 successful checks`, { timeoutMs: 3000 });
    assert.ok(a.accepted() - checksBefore >= 2, "marked up by checks it answered");
    // One check per interval, not one per pool that ever existed: 10 checks take 10
    // intervals (2 s) with one timer, half as long with two. A loaded machine only slows them.
    await checksPass(a, 1);
    const since = performance.now();
    await checksPass(a, 10);
    const elapsed = performance.now() - since;
    assert.ok(elapsed >= 1500, `10 checks in ${Math.round(elapsed)} ms at a 200 ms interval`);

    // And the new pool's checks see a change too.
    await b.kill();
    await gate.waitMsg(`target ${b.address} down: 2 failed checks`, { timeoutMs: 3000 });
  });

  test("checks stop when a reload removes them, and when it removes the listener", BOUNDED, async (t) => {
    const c = cleanup();
    t.after(() => c.run());
    const [a, other] = await targets(c, "a", "other");
    const [port = 0, otherPort = 0] = await freePorts(2);
    const base = appConfig({ listen: `127.0.0.1:${port}`, targets: [a], more: CHECKS });
    // The other listener's target is checked on a timer of its own: its checks tell that
    // intervals go by while a's have stopped.
    const second = [
      "  - name: other",
      `    listen: "127.0.0.1:${otherPort}"`,
      "    targets:",
      `      - "${other.address}"`,
      ...CHECKS,
    ];
    /** After a reload: a check of a that was on its way lands by the next interval; then none for 4 more. */
    const noMoreChecksOfA = async (why: string) => {
      await checksPass(other, 1);
      const seen = a.accepted();
      await checksPass(other, 4);
      assert.equal(a.accepted(), seen, why);
    };
    const gate = c.add(await startGate(`${base}${second.join("\n")}\n`));
    await eventually(() => a.accepted() >= 2, 5000, "two checks on a while configured");

    gate.write(`${appConfig({ listen: `127.0.0.1:${port}`, targets: [a] })}${second.join("\n")}\n`);
    await gate.reload();
    await noMoreChecksOfA("checks went on after healthCheck was removed");

    const seen = a.accepted();
    gate.write(`${appConfig({ listen: `127.0.0.1:${port}`, targets: [a], more: CHECKS })}${second.join("\n")}\n`);
    await gate.reload();
    await eventually(() => a.accepted() > seen, 5000, "checks to come back with healthCheck");

    const only = ["version: 1", "shutdownTimeout: 1s", "listeners:", ...second].join("\n");
    gate.write(`${only}\n`);
    await gate.reload();
    await noMoreChecksOfA("checks went on for a removed listener");
    assert.equal(await visit(otherPort), "other");
  });
});
