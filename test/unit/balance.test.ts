import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import type { TargetConfig } from "../../src/config/runtime.ts";
import { createStrategy } from "../../src/proxy/balance/index.ts";
import { LeastConnections } from "../../src/proxy/balance/least-connections.ts";
import { Random } from "../../src/proxy/balance/random.ts";
import { RoundRobin } from "../../src/proxy/balance/round-robin.ts";
import { SourceHash } from "../../src/proxy/balance/source-hash.ts";

function target(key: string, weight = 1, open = 0) {
  const config: TargetConfig = { key, weight, address: { host: "127.0.0.1", port: 1, family: 4 } };
  return { config, open };
}

/** A seeded generator (mulberry32) so distribution tests are repeatable. */
function seeded(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

describe("round-robin", () => {
  test("is smooth: weights 5,1,1 give a a b a c a a", () => {
    const rr = new RoundRobin();
    const targets = [target("a", 5), target("b"), target("c")];
    const order = Array.from({ length: 14 }, () => rr.pick(targets).config.key).join(" ");
    assert.equal(order, "a a b a c a a a a b a c a a");
  });

  test("honours weights exactly over every full cycle", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 20 }), { minLength: 1, maxLength: 6 }), (weights) => {
        const rr = new RoundRobin();
        const targets = weights.map((w, i) => target(`t${i}`, w));
        const total = weights.reduce((a, b) => a + b, 0);
        const counts = new Map<string, number>();
        for (let i = 0; i < total * 3; i++) {
          const key = rr.pick(targets).config.key;
          counts.set(key, (counts.get(key) ?? 0) + 1);
        }
        for (const [i, w] of weights.entries()) assert.equal(counts.get(`t${i}`), w * 3);
      }),
    );
  });
});

describe("least-connections", () => {
  test("sends new bridges to the target with the fewest open per weight", () => {
    const lc = new LeastConnections();
    assert.equal(lc.pick([target("a", 1, 5), target("b", 1, 2), target("c", 1, 3)]).config.key, "b");
    assert.equal(lc.pick([target("a", 4, 8), target("b", 1, 3)]).config.key, "a");
  });

  test("breaks ties by taking turns", () => {
    const lc = new LeastConnections();
    const targets = [target("a"), target("b"), target("c")];
    const seen = new Set(Array.from({ length: 3 }, () => lc.pick(targets).config.key));
    assert.equal(seen.size, 3);
  });
});

describe("random (power of two choices)", () => {
  test("spreads 30,000 picks by weight within 3% when loads are equal", () => {
    const random = new Random(seeded(42));
    const targets = [target("a", 3), target("b", 1)];
    let a = 0;
    for (let i = 0; i < 30_000; i++) if (random.pick(targets).config.key === "a") a++;
    // On equal load the first draw is kept, so the shares are the weights': 3/4 and 1/4.
    assert.ok(Math.abs(a / 30_000 - 3 / 4) < 0.03, `share of a: ${a / 30_000}`);
  });

  test("prefers the less loaded of its two draws", () => {
    const random = new Random(seeded(7));
    const targets = [target("busy", 1, 100), target("idle", 1, 0)];
    let idle = 0;
    for (let i = 0; i < 1000; i++) if (random.pick(targets).config.key === "idle") idle++;
    assert.ok(idle > 700, `idle chosen ${idle} of 1000`);
  });
});

describe("source-hash", () => {
  test("the same client always lands on the same target", () => {
    const hash = new SourceHash();
    const targets = [target("10.0.0.1:80"), target("10.0.0.2:80"), target("10.0.0.3:80")];
    const first = hash.pick(targets, "127.0.0.2").config.key;
    for (let i = 0; i < 100; i++) assert.equal(hash.pick(targets, "127.0.0.2").config.key, first);
  });

  test("removing one of 4 targets moves only its own clients, about a quarter", () => {
    const hash = new SourceHash();
    const four = ["a", "b", "c", "d"].map((k) => target(`${k}:80`));
    const three = four.slice(0, 3);
    let moved = 0;
    const clients = 20_000;
    for (let i = 0; i < clients; i++) {
      const key = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
      const before = hash.pick(four, key).config.key;
      const after = hash.pick(three, key).config.key;
      if (before !== after) {
        moved++;
        assert.equal(before, "d:80", "only clients of the removed target may move");
      }
    }
    assert.ok(moved / clients < 1 / 3, `moved ${moved / clients}`);
    assert.ok(moved / clients > 0.2, `moved ${moved / clients}`);
  });

  test("honours weights within 3% over many clients", () => {
    const hash = new SourceHash();
    const targets = [target("a:1", 2), target("b:1", 1), target("c:1", 1)];
    const counts = new Map<string, number>();
    for (let i = 0; i < 40_000; i++) {
      const key = hash.pick(targets, `192.168.${i >> 8}.${i & 255}`).config.key;
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    assert.ok(Math.abs((counts.get("a:1") ?? 0) / 40_000 - 0.5) < 0.03, JSON.stringify([...counts]));
  });
});

test("createStrategy knows every balance name", () => {
  for (const name of ["round-robin", "least-connections", "random", "source-hash"] as const) {
    assert.ok(createStrategy(name).pick([target("x")], "c"));
  }
});
