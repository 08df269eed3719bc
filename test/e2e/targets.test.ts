// Targets end to end (SPEC §2 "Targets", issue 5) through the real CLI and real sockets
// on loopback: how each balance strategy spreads 1,000 short connections, failover past
// targets that refuse, a target killed mid-run and brought back, every target down, the
// PROXY header a target receives, and least-connections' counts across a reload.
// Distinct clients are distinct loopback source addresses (127.0.0.2, 127.0.0.3, …).
//
// Tolerances, stated once: smooth round-robin is exact (every full cycle of the weights
// is served exactly, whatever the order of arrival); random is checked to ±5 percentage
// points over 1,000 connections (about 3 standard deviations of a binomial at p = 0.5);
// source-hash over 240 distinct clients to ±12 points.

import assert from "node:assert/strict";
import { once } from "node:events";
import { connect, type Socket } from "node:net";
import { describe, test } from "node:test";
import { hasIPv6Loopback, wildcardIsDualStack } from "../support/admission.ts";
import { startBlackHole } from "../support/blackhole.ts";
import { type Running, startGate } from "../support/cli.ts";
import { eventually, freePort, freePorts } from "../support/net.ts";
import {
  appConfig,
  cleanup,
  closedBy,
  type Landed,
  land,
  TaggedTarget,
  type TargetEntry,
  type TargetStatus,
  targetStatus,
  targets,
  visit,
  visits,
  visitsOneByOne,
} from "../support/targets.ts";

/** Every test is bounded in time: a hang fails it instead of stalling the suite. */
const BOUNDED = { timeout: 20_000 };

/** How many of these bridges reached each tag. */
function tally(list: readonly Landed[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const { tag } of [...list].sort((x, y) => x.tag.localeCompare(y.tag))) counts[tag] = (counts[tag] ?? 0) + 1;
  return counts;
}

/** Open bridges per target, in config order, from /status. */
const open = (targets: readonly TargetStatus[]) => targets.map((t) => t.openBridges);

const share = (counts: Map<string, number>, tag: string, total: number) => (counts.get(tag) ?? 0) / total;

describe("distribution over 1,000 connections", () => {
  test("round-robin: weights 5,3,2 are served in a smooth order, and exactly 500/300/200", BOUNDED, async (t) => {
    const c = cleanup();
    t.after(() => c.run());
    const [a, b, d] = await targets(c, "a", "b", "c");
    const port = await freePort();
    c.add(
      await startGate(
        appConfig({
          listen: `127.0.0.1:${port}`,
          targets: [
            { target: a, weight: 5 },
            { target: b, weight: 3 },
            { target: d, weight: 2 },
          ],
        }),
      ),
    );
    // One at a time first: the order itself is the strategy's (nginx's smooth weighted).
    const order: string[] = [];
    for (let i = 0; i < 10; i++) order.push(await visit(port));
    assert.equal(order.join(" "), "a b c a a b a c b a");
    // Then 990 more, 16 at a time: the order of arrival changes nothing in the counts.
    const counts = await visits(port, 990, { parallel: 16 });
    for (const tag of order) counts.set(tag, (counts.get(tag) ?? 0) + 1);
    t.diagnostic(`round-robin 5,3,2 over 1000: ${JSON.stringify(Object.fromEntries(counts))}`);
    assert.deepEqual(Object.fromEntries(counts), { a: 500, b: 300, c: 200 });
    assert.deepEqual([a.accepted(), b.accepted(), d.accepted()], [500, 300, 200], "as counted by the targets");
  });

  test("round-robin: weights 3,1 give exactly 750/250", BOUNDED, async (t) => {
    const c = cleanup();
    t.after(() => c.run());
    const [a, b] = await targets(c, "a", "b");
    const port = await freePort();
    c.add(
      await startGate(
        appConfig({
          listen: `127.0.0.1:${port}`,
          targets: [
            { target: a, weight: 3 },
            { target: b, weight: 1 },
          ],
        }),
      ),
    );
    const counts = await visits(port, 1000, { parallel: 16 });
    t.diagnostic(`round-robin 3,1 over 1000: ${JSON.stringify(Object.fromEntries(counts))}`);
    assert.deepEqual(Object.fromEntries(counts), { a: 750, b: 250 });
  });

  test("random: weights 2,1,1 give 50/25/25 % within ±5 points under 16 concurrent clients", BOUNDED, async (t) => {
    const c = cleanup();
    t.after(() => c.run());
    const [a, b, d] = await targets(c, "a", "b", "c");
    const port = await freePort();
    c.add(
      await startGate(
        appConfig({
          listen: `127.0.0.1:${port}`,
          balance: "random",
          targets: [{ target: a, weight: 2 }, b, d],
        }),
      ),
    );
    const counts = await visits(port, 1000, { parallel: 16 });
    t.diagnostic(`random 2,1,1 over 1000, 16 at a time: ${JSON.stringify(Object.fromEntries(counts))}`);
    for (const [tag, expected] of [
      ["a", 0.5],
      ["b", 0.25],
      ["c", 0.25],
    ] as const) {
      const got = share(counts, tag, 1000);
      assert.ok(
        Math.abs(got - expected) <= 0.05,
        `${tag}: ${(got * 100).toFixed(1)} %, expected ${expected * 100} ± 5`,
      );
    }
  });

  test(
    "random: weights 3,1 give 75/25 % within ±5 points when each bridge ends before the next",
    BOUNDED,
    async (t) => {
      const c = cleanup();
      t.after(() => c.run());
      const [a, b] = await targets(c, "a", "b");
      const port = await freePort();
      const gate = c.add(
        await startGate(
          appConfig({
            listen: `127.0.0.1:${port}`,
            balance: "random",
            targets: [
              { target: a, weight: 3 },
              { target: b, weight: 1 },
            ],
          }),
        ),
      );
      // Every pick finds both targets idle, so this is the weighted draw alone. (Back to back
      // without waiting, the previous bridge is still open at the next pick and the power of
      // two choices leans to the lighter target: about 68/32, like nginx's "random two".)
      const counts = await visitsOneByOne(gate, port, 1000);
      t.diagnostic(`random 3,1 over 1000, one by one: ${JSON.stringify(Object.fromEntries(counts))}`);
      const got = share(counts, "a", 1000);
      assert.ok(Math.abs(got - 0.75) <= 0.05, `a: ${(got * 100).toFixed(1)} %, expected 75 ± 5`);
    },
  );
});

describe("least-connections with long-lived bridges", () => {
  test("a target holding 5 open bridges gets no new one until the others hold as many", BOUNDED, async (t) => {
    const c = cleanup();
    t.after(() => c.run());
    const [a, b, d] = await targets(c, "a", "b", "c");
    const port = await freePort();
    const adminPort = await freePort();
    const gate = c.add(
      await startGate(
        appConfig({ listen: `127.0.0.1:${port}`, balance: "least-connections", targets: [a, b, d], adminPort }),
      ),
    );
    const held: Landed[] = [];
    c.sockets(held);
    // 15 held bridges, one at a time, can only end up 5/5/5: a target with more is never
    // chosen while another has fewer.
    for (let i = 0; i < 15; i++) held.push(await land(port));
    assert.deepEqual(tally(held), { a: 5, b: 5, c: 5 });
    // Then b and c's end: a holds 5, b and c none.
    const from = gate.logs.length;
    const ended = held.filter((h) => h.tag !== "a");
    for (const h of ended) h.socket.end();
    for (const h of ended) await gate.bridgeEnd(h.clientPort, from);
    held.splice(0, held.length, ...held.filter((h) => h.tag === "a"));
    assert.deepEqual(open(await targetStatus(adminPort, "app")), [5, 0, 0]);

    // 1,000 short connections back to back: never to a.
    const counts = await visits(port, 1000);
    t.diagnostic(
      `least-connections, a holding 5 bridges, 1000 short ones: ${JSON.stringify(Object.fromEntries(counts))}`,
    );
    assert.equal(counts.get("a") ?? 0, 0, "the target with 5 open bridges got a new one");
    for (const tag of ["b", "c"]) {
      const got = share(counts, tag, 1000);
      assert.ok(Math.abs(got - 0.5) <= 0.05, `${tag}: ${(got * 100).toFixed(1)} %: ties are broken by turns`);
    }
    // 10 more held ones fill b and c up to a's 5, and only then is a chosen again.
    const more: Landed[] = [];
    c.sockets(more);
    for (let i = 0; i < 10; i++) more.push(await land(port));
    assert.deepEqual(tally(more), { b: 5, c: 5 });
    more.push(await land(port), await land(port), await land(port));
    assert.deepEqual(tally(more.slice(10)), { a: 1, b: 1, c: 1 }, "all tied at 5: one each");
  });

  test("weights: open bridges are compared per weight", BOUNDED, async (t) => {
    const c = cleanup();
    t.after(() => c.run());
    const [a, b] = await targets(c, "a", "b");
    const port = await freePort();
    c.add(
      await startGate(
        appConfig({
          listen: `127.0.0.1:${port}`,
          balance: "least-connections",
          targets: [{ target: a, weight: 3 }, b],
        }),
      ),
    );
    const held: Landed[] = [];
    c.sockets(held);
    for (let i = 0; i < 40; i++) held.push(await land(port));
    assert.deepEqual(tally(held), { a: 30, b: 10 });
  });
});

describe("source-hash", () => {
  test("a client address always lands on the same target; many clients spread by weight", BOUNDED, async (t) => {
    const c = cleanup();
    t.after(() => c.run());
    const [a, b, d] = await targets(c, "a", "b", "c");
    const port = await freePort();
    c.add(
      await startGate(
        appConfig({
          listen: `127.0.0.1:${port}`,
          balance: "source-hash",
          targets: [{ target: a, weight: 2 }, b, d],
        }),
      ),
    );
    for (const client of ["127.0.0.2", "127.0.0.3"]) {
      const counts = await visits(port, 200, { localAddress: client, parallel: 8 });
      t.diagnostic(`source-hash, 200 connections from ${client}: ${JSON.stringify(Object.fromEntries(counts))}`);
      assert.equal(counts.size, 1, `${client} reached ${[...counts.keys()].join(", ")}`);
    }
    // 240 clients (127.0.1.1 … 127.0.1.240), twice each.
    const clients = Array.from({ length: 240 }, (_, i) => `127.0.1.${i + 1}`);
    const home = new Map<string, string>();
    for (const client of clients) home.set(client, await visit(port, { localAddress: client }));
    const counts = new Map<string, number>();
    for (const tag of home.values()) counts.set(tag, (counts.get(tag) ?? 0) + 1);
    t.diagnostic(`source-hash 2,1,1 over 240 clients: ${JSON.stringify(Object.fromEntries(counts))}`);
    for (const [tag, expected] of [
      ["a", 0.5],
      ["b", 0.25],
      ["c", 0.25],
    ] as const) {
      const got = share(counts, tag, clients.length);
      assert.ok(
        Math.abs(got - expected) <= 0.12,
        `${tag}: ${(got * 100).toFixed(1)} %, expected ${expected * 100} ± 12`,
      );
    }
    for (const client of clients) {
      assert.equal(await visit(port, { localAddress: client }), home.get(client), `${client} moved`);
    }
  });

  test(
    "when a client's target dies it goes to one stable second choice, and back when the target returns",
    BOUNDED,
    async (t) => {
      const c = cleanup();
      t.after(() => c.run());
      const all = await targets(c, "a", "b", "c");
      const port = await freePort();
      const gate = c.add(
        await startGate(appConfig({ listen: `127.0.0.1:${port}`, balance: "source-hash", targets: all })),
      );
      const others = Array.from({ length: 40 }, (_, i) => `127.0.2.${i + 1}`);
      const before = new Map<string, string>();
      for (const client of others) before.set(client, await visit(port, { localAddress: client }));
      const homeTag = await visit(port, { localAddress: "127.0.0.2" });
      const home = all.find((x) => x.tag === homeTag) as TaggedTarget;

      await home.kill();
      const second = await visits(port, 20, { localAddress: "127.0.0.2" });
      assert.equal(second.size, 1, `127.0.0.2 went to ${[...second.keys()].join(", ")}`);
      assert.notEqual([...second.keys()][0], homeTag);
      await gate.waitMsg(`target ${home.address} down: 3 failed connects (ECONNREFUSED)`);
      // Clients of the targets still up stay where they were.
      for (const client of others) {
        const now = await visit(port, { localAddress: client });
        if (before.get(client) !== homeTag) assert.equal(now, before.get(client), `${client} moved`);
        else assert.notEqual(now, homeTag);
      }

      await home.restart();
      // Tried again after the back-off (1 s, doubled by each failed trial): 127.0.0.2 is home again.
      await eventually(
        async () => (await visit(port, { localAddress: "127.0.0.2" })) === homeTag,
        8000,
        "127.0.0.2 to go back to its own target",
        100,
      );
      await gate.waitMsg(`target ${home.address} up: a connection succeeded`);
      const again = await visits(port, 20, { localAddress: "127.0.0.2" });
      assert.deepEqual(Object.fromEntries(again), { [homeTag]: 20 });
    },
  );
});

/** Bridge ends whose errors name this target: the connects to it that failed. */
const failedConnects = (gate: Running, address: string, from = 0) =>
  gate.bridgeLines(from).filter((l) => Array.isArray(l.errors) && l.errors.some((e) => String(e).startsWith(address)));

describe("failover", () => {
  test("a target with nothing listening is skipped, and marked down after 3 failed connects", BOUNDED, async (t) => {
    const c = cleanup();
    t.after(() => c.run());
    const b = c.add(await TaggedTarget.start("b"));
    const dead = `127.0.0.1:${await freePort()}`;
    const port = await freePort();
    const gate = c.add(await startGate(appConfig({ listen: `127.0.0.1:${port}`, targets: [dead, b] })));
    // Every client is served: the refused connect costs it nothing but a retry.
    const counts = await visits(port, 30);
    assert.deepEqual(Object.fromEntries(counts), { b: 30 });
    await gate.waitMsg(`target ${dead} down: 3 failed connects (ECONNREFUSED)`);
    // Back to back, well inside the 1 s back-off: the down target was not tried again.
    assert.equal(failedConnects(gate, dead).length, 3);
    const failed = failedConnects(gate, dead)[0];
    assert.deepEqual(failed?.errors, [`${dead} ECONNREFUSED`]);
    assert.equal(failed?.target, b.address, "the bridge went on to the next target");
    assert.equal(gate.messages(`target ${dead} down`).length, 1, "a state change is logged once");
  });

  test(
    "a target killed mid-run is marked down and skipped; restarted on its port, it is marked up and used again",
    BOUNDED,
    async (t) => {
      const c = cleanup();
      t.after(() => c.run());
      const [a, b] = await targets(c, "a", "b");
      const port = await freePort();
      const gate = c.add(await startGate(appConfig({ listen: `127.0.0.1:${port}`, targets: [a, b] })));
      const held = await land(port);
      c.sockets([held]);
      assert.equal(held.tag, "a");
      assert.deepEqual(Object.fromEntries(await visits(port, 20)), { a: 10, b: 10 });

      const killedAt = gate.logs.length;
      await a.kill();
      // Its open bridge is reset with it.
      const heldEnd = await gate.bridgeEnd(held.clientPort, 0);
      assert.equal(heldEnd.end, "target-reset");
      // Clients keep being served throughout; a's failures are counted until it is down.
      const during = await visits(port, 20);
      assert.deepEqual(Object.fromEntries(during), { b: 20 });
      const down = await gate.waitMsg(`target ${a.address} down: 3 failed connects (ECONNREFUSED)`, { from: killedAt });
      assert.equal(down.target, a.address);
      assert.equal(down.listener, "app");
      assert.equal(failedConnects(gate, a.address, killedAt).length, 3, "skipped once down");

      const restartedAt = gate.logs.length;
      await a.restart();
      // Retried by a real connection once its back-off has passed (1 s, doubled per failed trial).
      await eventually(async () => (await visit(port)) === "a", 8000, "a to get a bridge again", 100);
      const up = await gate.waitMsg(`target ${a.address} up: a connection succeeded`, { from: restartedAt });
      assert.equal(up.target, a.address);
      assert.deepEqual(Object.fromEntries(await visits(port, 20)), { a: 10, b: 10 }, "back in the rotation");
      assert.equal(gate.messages(`target ${a.address} down`).length, 1);
      assert.equal(gate.messages(`target ${a.address} up`).length, 1);
    },
  );

  test(
    "after its back-off a down target gets one trial, not one per client that arrives meanwhile",
    BOUNDED,
    async (t) => {
      const c = cleanup();
      t.after(() => c.run());
      const silent = await startBlackHole();
      t.after(() => silent.close());
      const [b] = await targets(c, "b");
      const port = await freePort();
      const gate = c.add(
        await startGate(
          appConfig({ listen: `127.0.0.1:${port}`, targets: [silent.address, b], more: ["    connectTimeout: 300ms"] }),
        ),
      );
      // Each of the first few clients waits out the connect timeout once, then is served.
      assert.deepEqual(Object.fromEntries(await visits(port, 6)), { b: 6 });
      const down = await gate.waitMsg(`target ${silent.address} down: 3 failed connects (ETIMEDOUT)`);
      // The back-off runs 1 s from the moment the target went down, a timer inside tcpgate
      // that logs nothing when it ends: its deadline is the down line's time plus 1 s.
      const backOffEnds = Date.parse(String(down.time)) + 1000;
      await eventually(() => Date.now() > backOffEnds, 3000, "the end of the back-off");
      // The back-off is over: of 10 clients arriving together, one may be the trial.
      const from = gate.logs.length;
      const burst = await Promise.all(Array.from({ length: 10 }, () => land(port)));
      c.sockets(burst);
      assert.deepEqual(tally(burst), { b: 10 });
      for (const h of burst) h.socket.destroy();
      const ends = await Promise.all(burst.map((h) => gate.bridgeEnd(h.clientPort, from)));
      const waited = ends.filter((l) => Array.isArray(l.errors) && l.errors.includes(`${silent.address} ETIMEDOUT`));
      t.diagnostic(`clients that waited on the silent target after its back-off: ${waited.length} of 10`);
      assert.ok(waited.length <= 1, `${waited.length} of 10 clients each waited 300 ms for the same down target`);
    },
  );

  test(
    "every target down: each client is still tried against them and closed at once; one coming back resumes service",
    BOUNDED,
    async (t) => {
      const c = cleanup();
      t.after(() => c.run());
      const [p1 = 0, p2 = 0] = await freePorts(2);
      const dead = [`127.0.0.1:${p1}`, `127.0.0.1:${p2}`];
      const port = await freePort();
      const gate = c.add(
        await startGate(appConfig({ listen: `127.0.0.1:${port}`, targets: dead, more: ["    connectTimeout: 1s"] })),
      );
      const clients = [];
      for (let i = 0; i < 6; i++) {
        const from = gate.logs.length;
        const closed = await closedBy(port);
        const line = await gate.bridgeEnd(closed.clientPort, from);
        clients.push({ closed, line });
      }
      for (const [i, { closed, line }] of clients.entries()) {
        assert.notEqual(closed.how, "timeout", `client ${i + 1} was left hanging`);
        assert.equal(closed.bytes, 0);
        assert.ok(closed.ms < 1000, `client ${i + 1} closed after ${Math.round(closed.ms)} ms`);
        assert.equal(line.end, "connect-failed");
        assert.equal(line.msg, "no target reachable");
        assert.equal(line.target, undefined);
        // Both were tried for every client, also once both were marked down.
        assert.deepEqual(
          [...(line.errors as string[])].sort(),
          dead.map((d) => `${d} ECONNREFUSED`).sort(),
          `client ${i + 1}`,
        );
      }
      for (const d of dead)
        assert.deepEqual(gate.messages(`target ${d} down`), [`target ${d} down: 3 failed connects (ECONNREFUSED)`]);
      assert.equal(gate.messages("every target is down: trying them anyway").length, 1, "said once, not per client");

      const back = c.add(await TaggedTarget.start("back", "127.0.0.1", p2));
      assert.equal(await visit(port), "back", "served at once, back-off or not");
      await gate.waitMsg(`target ${back.address} up: a connection succeeded`);
      assert.deepEqual(Object.fromEntries(await visits(port, 10)), { back: 10 });
    },
  );
});

describe("PROXY protocol through the proxy", () => {
  const SIGNATURE = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a];
  const be16 = (n: number) => [n >> 8, n & 0xff];
  const LOOPBACK6 = [...Array(15).fill(0), 1];

  /**
   * Connects from localAddress to host:port and writes `payload` at once, before the target
   * is even connected; resolves once the target has received `expectedLength` bytes.
   */
  async function through(
    target: TaggedTarget,
    host: string,
    port: number,
    localAddress: string,
    payload: string,
    expectedLength: (clientPort: number) => number,
  ): Promise<{ received: Buffer; clientPort: number; socket: Socket }> {
    const index = target.received.length;
    const socket = connect({ host, port, localAddress });
    socket.on("error", () => {});
    await once(socket, "connect");
    socket.write(payload);
    const clientPort = socket.localPort ?? 0;
    const length = expectedLength(clientPort);
    const bytes = () => Buffer.concat(target.received[index] ?? []);
    await eventually(() => bytes().length >= length, 3000, `${length} bytes at the target`).catch((error: Error) => {
      throw new Error(`${error.message}; it got ${JSON.stringify(bytes().toString("latin1"))}`);
    });
    // Nothing more is coming: the client sent no more.
    return { received: bytes(), clientPort, socket };
  }

  async function proxying(
    t: { after(fn: () => Promise<void>): void },
    version: "v1" | "v2",
    listen: (port: number) => string,
    targetsOf: (a: TaggedTarget) => TargetEntry[] = (a) => [a],
  ) {
    const c = cleanup();
    t.after(() => c.run());
    const a = c.add(await TaggedTarget.start("a"));
    const port = await freePort();
    const gate = c.add(
      await startGate(
        appConfig({ listen: listen(port), targets: targetsOf(a), more: [`    proxyProtocol: ${version}`] }),
      ),
    );
    return { a, port, gate, c };
  }

  test("v1: a client from 127.0.0.2 is announced as TCP4, before its first byte", BOUNDED, async (t) => {
    const { a, port, c } = await proxying(t, "v1", (p) => `127.0.0.1:${p}`);
    const header = (clientPort: number) => `PROXY TCP4 127.0.0.2 127.0.0.1 ${clientPort} ${port}\r\n`;
    const { received, clientPort, socket } = await through(
      a,
      "127.0.0.1",
      port,
      "127.0.0.2",
      "hello",
      (cp) => header(cp).length + 5,
    );
    c.sockets([socket]);
    assert.equal(received.toString("latin1"), `${header(clientPort)}hello`);
  });

  test(
    "v1: after a failed connect to the first target, the one that answered gets the header once",
    BOUNDED,
    async (t) => {
      const dead = `127.0.0.1:${await freePort()}`;
      const { a, port, c } = await proxying(
        t,
        "v1",
        (p) => `127.0.0.1:${p}`,
        (x) => [dead, x],
      );
      const header = (clientPort: number) => `PROXY TCP4 127.0.0.3 127.0.0.1 ${clientPort} ${port}\r\n`;
      for (let i = 0; i < 3; i++) {
        const { received, clientPort, socket } = await through(
          a,
          "127.0.0.1",
          port,
          "127.0.0.3",
          `client ${i}`,
          (cp) => header(cp).length + 8,
        );
        c.sockets([socket]);
        assert.equal(received.toString("latin1"), `${header(clientPort)}client ${i}`);
      }
    },
  );

  test("v2: the binary header for an IPv4 client, byte for byte", BOUNDED, async (t) => {
    const { a, port, c } = await proxying(t, "v2", (p) => `127.0.0.1:${p}`);
    const { received, clientPort, socket } = await through(a, "127.0.0.1", port, "127.0.0.2", "hi", () => 28 + 2);
    c.sockets([socket]);
    assert.deepEqual(
      [...received],
      [
        ...SIGNATURE,
        0x21, // version 2, PROXY
        0x11, // TCP over IPv4
        ...be16(12),
        ...[127, 0, 0, 2],
        ...[127, 0, 0, 1],
        ...be16(clientPort),
        ...be16(port),
        ...Buffer.from("hi"),
      ],
    );
  });

  test("v1 and v2: a client on a [::1] listener is announced as TCP6", BOUNDED, async (t) => {
    if (!(await hasIPv6Loopback())) {
      t.skip("::1 is not available here");
      return;
    }
    for (const version of ["v1", "v2"] as const) {
      const { a, port, c } = await proxying(t, version, (p) => `[::1]:${p}`);
      const v1 = (clientPort: number) => `PROXY TCP6 ::1 ::1 ${clientPort} ${port}\r\n`;
      const { received, clientPort, socket } = await through(a, "::1", port, "::1", "six", (cp) =>
        version === "v1" ? v1(cp).length + 3 : 52 + 3,
      );
      c.sockets([socket]);
      if (version === "v1") assert.equal(received.toString("latin1"), `${v1(clientPort)}six`);
      else {
        assert.deepEqual(
          [...received],
          [
            ...SIGNATURE,
            0x21,
            0x21, // TCP over IPv6
            ...be16(36),
            ...LOOPBACK6,
            ...LOOPBACK6,
            ...be16(clientPort),
            ...be16(port),
            ...Buffer.from("six"),
          ],
        );
      }
    }
  });

  test(
    "v1: an IPv4 client of a dual-stack wildcard listener is announced as TCP4, not as ::ffff:",
    BOUNDED,
    async (t) => {
      if (!(await wildcardIsDualStack())) {
        t.skip("the wildcard listener is not dual-stack here");
        return;
      }
      const { a, port, c } = await proxying(t, "v1", (p) => `:${p}`);
      const header = (clientPort: number) => `PROXY TCP4 127.0.0.2 127.0.0.1 ${clientPort} ${port}\r\n`;
      const { received, clientPort, socket } = await through(
        a,
        "127.0.0.1",
        port,
        "127.0.0.2",
        "mapped",
        (cp) => header(cp).length + 6,
      );
      c.sockets([socket]);
      assert.equal(received.toString("latin1"), `${header(clientPort)}mapped`);
    },
  );
});

describe("least-connections across a reload", () => {
  test("open bridges still count after a reload: a new target takes the next ones", BOUNDED, async (t) => {
    const c = cleanup();
    t.after(() => c.run());
    const [a, b, d, e] = await targets(c, "a", "b", "c", "d");
    const port = await freePort();
    const adminPort = await freePort();
    const listen = `127.0.0.1:${port}`;
    const gate = c.add(
      await startGate(appConfig({ listen, balance: "least-connections", targets: [a, b, d], adminPort })),
    );
    const held: Landed[] = [];
    c.sockets(held);
    for (let i = 0; i < 15; i++) held.push(await land(port));
    assert.deepEqual(tally(held), { a: 5, b: 5, c: 5 });

    // Another setting changes and a fourth target joins; the three keep their 5 bridges each.
    gate.write(
      appConfig({
        listen,
        balance: "least-connections",
        targets: [a, b, d, e],
        adminPort,
        more: ["    idleTimeout: 10m"],
      }),
    );
    await gate.reload();
    assert.deepEqual(open(await targetStatus(adminPort, "app")), [5, 5, 5, 0]);
    const after: Landed[] = [];
    c.sockets(after);
    for (let i = 0; i < 5; i++) after.push(await land(port));
    assert.deepEqual(tally(after), { d: 5 }, "counts were lost in the reload");
    after.push(await land(port), await land(port), await land(port), await land(port));
    assert.deepEqual(tally(after.slice(5)), { a: 1, b: 1, c: 1, d: 1 });

    // Bridges opened before the reload give their count back to the same targets.
    const from = gate.logs.length;
    for (const h of [...held, ...after]) h.socket.end();
    for (const h of [...held, ...after]) await gate.bridgeEnd(h.clientPort, from);
    assert.deepEqual(open(await targetStatus(adminPort, "app")), [0, 0, 0, 0]);
  });
});

describe("failover after a reload", () => {
  test("a bridge failing over dials from the targets now running, never one the reload removed", BOUNDED, async (t) => {
    const c = cleanup();
    t.after(() => c.run());
    const hole = c.add(await startBlackHole());
    const [removed, added] = await targets(c, "removed", "added");
    const port = await freePort();
    const adminPort = await freePort();
    const listen = `127.0.0.1:${port}`;
    const more = ["    connectTimeout: 2s"];
    const gate = c.add(await startGate(appConfig({ listen, targets: [hole.address, removed], adminPort, more })));
    // Round-robin's first pick is the first target: the black hole holds the bridge for 2 s.
    const landing = land(port, { timeoutMs: 8000 });
    landing.catch(() => {});
    await eventually(
      async () => (await targetStatus(adminPort, "app"))[0]?.openBridges === 1,
      3000,
      "the bridge to start dialing the black hole",
    );
    gate.write(appConfig({ listen, targets: [hole.address, added], adminPort, more }));
    await gate.reload();
    const { socket, tag } = await landing;
    c.sockets([socket]);
    assert.equal(tag, "added");
    assert.equal(removed.accepted(), 0, "the target the reload removed was dialed");
  });
});
