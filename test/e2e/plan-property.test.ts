// What `plan` said is what the reload then did (SPEC §7: one code path decides both),
// over random pairs of configs against one running instance with bridges open from
// 127.0.0.2 … .6: listeners added, removed, moved and changed; deny and allow entries over
// those clients; schedules open or closed now; recheck on and off. Each run: apply A, open
// a bridge from every client A admits, POST /plan B, check the plan against a model of
// the rules, apply B by SIGHUP, and check that what runs and what closed is what the plan said.
import assert from "node:assert/strict";
import type { Socket } from "node:net";
import { test } from "node:test";
import fc from "fast-check";
import { requestFrom, status } from "../support/admin.ts";
import type { LogLine } from "../support/cli.ts";
import { type Gate, startGate } from "../support/cli.ts";
import { dialFrom, eventually, freePorts, type TestServer } from "../support/net.ts";
import { connectOutcome, exchange, startTagged } from "../support/reload.ts";

const CLIENTS = ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6"] as const;
const NAMES = ["a", "b", "c", "d"] as const;
/** Three days from now no window of "every day but that one" can be open. */
const DAY_NAMES = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"] as const;

interface Def {
  readonly name: string;
  /** Which of the listener's two ports it listens on: a change is a move. */
  readonly at: 0 | 1;
  /** Indices into the two tagged targets. */
  readonly targets: readonly number[];
  readonly deny: readonly string[];
  readonly allow: readonly string[] | undefined;
  readonly schedule: "none" | "open" | "closed";
  readonly idleTimeout: "15m" | "5m";
  readonly recheck: boolean;
}

type Config = readonly Def[];

const defArb = (name: string) =>
  fc.record({
    name: fc.constant(name),
    at: fc.constantFrom<0 | 1>(0, 1),
    targets: fc.subarray([0, 1], { minLength: 1 }),
    deny: fc.subarray([...CLIENTS]),
    allow: fc.option(fc.subarray([...CLIENTS], { minLength: 1 }), { nil: undefined }),
    schedule: fc.constantFrom<Def["schedule"]>("none", "none", "open", "closed"),
    idleTimeout: fc.constantFrom<Def["idleTimeout"]>("15m", "5m"),
    recheck: fc.boolean(),
  });

const configArb: fc.Arbitrary<Config> = fc
  .tuple(...NAMES.map((name) => fc.option(defArb(name), { nil: undefined })))
  .map((defs) => defs.flatMap((d): Def[] => (d ? [d] : [])))
  .filter((defs) => defs.length > 0);

/** The model: does def admit a new connection from client now? */
const admits = (def: Def, client: string) =>
  !def.deny.includes(client) && (def.allow === undefined || def.allow.includes(client)) && def.schedule !== "closed";

/** Everything but the address: equal means unchanged (or moved without other changes). */
const settingsOf = (def: Def) => JSON.stringify({ ...def, at: undefined });

interface PlanDoc {
  listeners: {
    added: { name: string; listen: string }[];
    removed: { name: string; listen: string; openBridges: number }[];
    moved: { name: string; from: string; to: string }[];
    changed: { name: string; listen: string }[];
    unchanged: string[];
  };
  refused: { listener: string; client: string; clientPort: number; reason: string; closedOnApply: boolean }[];
  removedListenerBridges: { listener: string; clientPort: number }[];
  removedTargetBridges: { listener: string; clientPort: number; target: string }[];
}

interface OpenBridge {
  readonly listener: string;
  readonly client: string;
  readonly socket: Socket;
  readonly port: number;
  /** The target's address, as the tagged answer told it. */
  readonly target: string;
}

const key = (listener: string, port: number) => `${listener}:${port}`;
const sorted = (items: Iterable<string>) => [...items].sort();

test("plan says what the reload does: random config pairs, open bridges from five clients", {
  timeout: 300_000,
}, async () => {
  const targets: TestServer[] = [await startTagged("t0"), await startTagged("t1")];
  const free = await freePorts(1 + NAMES.length * 2);
  const admin = free[0] ?? 0;
  const portOf = (name: string, at: 0 | 1) => free[1 + NAMES.indexOf(name as (typeof NAMES)[number]) * 2 + at] ?? 0;
  const closedDay = DAY_NAMES[(new Date().getUTCDay() + 3) % 7];

  const text = (config: Config) => {
    const lines = ["version: 1", "shutdownTimeout: 1s", `admin: { listen: "127.0.0.1:${admin}" }`, "listeners:"];
    for (const d of config) {
      lines.push(
        `  - name: ${d.name}`,
        `    listen: "127.0.0.1:${portOf(d.name, d.at)}"`,
        `    targets: [${d.targets.map((t) => `"${targets[t]?.address}"`).join(", ")}]`,
        `    idleTimeout: ${d.idleTimeout}`,
        `    recheck: ${d.recheck}`,
      );
      if (d.deny.length > 0) lines.push(`    deny: [${d.deny.map((c) => `"${c}"`).join(", ")}]`);
      if (d.allow) lines.push(`    allow: [${d.allow.map((c) => `"${c}"`).join(", ")}]`);
      if (d.schedule !== "none") {
        const days = d.schedule === "closed" ? `[${closedDay}]` : "[sun, mon, tue, wed, thu, fri, sat]";
        lines.push(
          "    schedule:",
          "      timezone: UTC",
          "      windows:",
          `        - { days: ${days}, from: "00:00", to: "24:00" }`,
        );
      }
    }
    return `${lines.join("\n")}\n`;
  };

  const first: Config = [
    {
      name: "a",
      at: 0,
      targets: [0],
      deny: [],
      allow: undefined,
      schedule: "none",
      idleTimeout: "15m",
      recheck: false,
    },
  ];
  const gate: Gate = await startGate(text(first));
  const open: OpenBridge[] = [];
  let runs = 0;

  /** SIGHUP, and the line that says how that reload ended. */
  const reload = async (): Promise<LogLine> => {
    const outcome = (l: LogLine) =>
      l.trigger === "signal" &&
      typeof l.msg === "string" &&
      (l.msg === "reload applied" || l.msg === "reload: unchanged" || l.msg.startsWith("reload rejected"));
    const before = gate.logs.filter(outcome).length;
    process.kill(gate.pid, "SIGHUP");
    await gate.waitForLog(() => gate.logs.filter(outcome).length > before, 10_000);
    return gate.logs.filter(outcome).at(-1) as LogLine;
  };

  try {
    await fc.assert(
      fc.asyncProperty(configArb, configArb, async (a, b) => {
        runs++;
        // A clean start: no bridge from the run before, then A running.
        for (const bridge of open.splice(0)) bridge.socket.destroy();
        await eventually(
          async () => (await status(admin)).totals.openBridges === 0,
          5000,
          "the last run's bridges to end",
        );
        gate.write(text(a));
        const applied = await reload();
        assert.doesNotMatch(String(applied.msg), /rejected/, JSON.stringify(applied));

        for (const def of a) {
          for (const client of CLIENTS.filter((c) => admits(def, c))) {
            const socket = await dialFrom(portOf(def.name, def.at), client);
            socket.on("error", () => {});
            const answer = await exchange(socket, "?", 4);
            const target = targets[Number(answer.slice(1, 2))]?.address ?? "";
            open.push({ listener: def.name, client, socket, port: socket.localPort ?? 0, target });
          }
        }

        // The plan, and the model's plan.
        const reply = await requestFrom(admin, "/plan", { method: "POST", body: text(b) });
        assert.equal(reply.status, 200, reply.body);
        const plan = JSON.parse(reply.body) as PlanDoc;
        const inA = new Map(a.map((d) => [d.name, d]));
        const inB = new Map(b.map((d) => [d.name, d]));
        const listen = (d: Def) => `127.0.0.1:${portOf(d.name, d.at)}`;
        assert.deepEqual(
          sorted(plan.listeners.added.map((l) => `${l.name} ${l.listen}`)),
          sorted(b.filter((d) => !inA.has(d.name)).map((d) => `${d.name} ${listen(d)}`)),
          "added",
        );
        assert.deepEqual(
          sorted(plan.listeners.removed.map((l) => `${l.name} ${l.openBridges}`)),
          sorted(
            a
              .filter((d) => !inB.has(d.name))
              .map((d) => `${d.name} ${open.filter((o) => o.listener === d.name).length}`),
          ),
          "removed",
        );
        const both = b.filter((d) => inA.has(d.name));
        const before = (d: Def) => inA.get(d.name) as Def;
        assert.deepEqual(
          sorted(plan.listeners.moved.map((l) => `${l.name} ${l.from} ${l.to}`)),
          sorted(both.filter((d) => before(d).at !== d.at).map((d) => `${d.name} ${listen(before(d))} ${listen(d)}`)),
          "moved",
        );
        const same = both.filter((d) => before(d).at === d.at);
        assert.deepEqual(
          sorted(plan.listeners.changed.map((l) => l.name)),
          sorted(same.filter((d) => settingsOf(before(d)) !== settingsOf(d)).map((d) => d.name)),
          "changed",
        );
        assert.deepEqual(
          sorted(plan.listeners.unchanged),
          sorted(same.filter((d) => settingsOf(before(d)) === settingsOf(d)).map((d) => d.name)),
          "unchanged",
        );
        const refusedByModel = open.filter((o) => {
          const def = inB.get(o.listener);
          return def !== undefined && !admits(def, o.client);
        });
        assert.deepEqual(
          sorted(plan.refused.map((r) => `${key(r.listener, r.clientPort)} ${r.client} ${r.closedOnApply}`)),
          sorted(refusedByModel.map((o) => `${key(o.listener, o.port)} ${o.client} ${inB.get(o.listener)?.recheck}`)),
          "refused",
        );
        assert.deepEqual(
          sorted(plan.removedListenerBridges.map((r) => key(r.listener, r.clientPort))),
          sorted(open.filter((o) => !inB.has(o.listener)).map((o) => key(o.listener, o.port))),
          "bridges of removed listeners",
        );
        assert.deepEqual(
          sorted(plan.removedTargetBridges.map((r) => `${key(r.listener, r.clientPort)} ${r.target}`)),
          sorted(
            open
              .filter((o) => {
                const def = inB.get(o.listener);
                return def !== undefined && !def.targets.some((t) => targets[t]?.address === o.target);
              })
              .map((o) => `${key(o.listener, o.port)} ${o.target}`),
          ),
          "bridges of removed targets",
        );

        // Apply B; what runs and what closed must be what the plan said.
        const from = gate.logs.length;
        gate.write(text(b));
        const outcome = await reload();
        assert.doesNotMatch(String(outcome.msg), /rejected/, JSON.stringify(outcome));
        const serving = (await status(admin)).listeners.filter((l) => l.state === "serving");
        assert.deepEqual(
          sorted(serving.map((l) => `${l.name} ${l.listen}`)),
          sorted([
            ...plan.listeners.added.map((l) => `${l.name} ${l.listen}`),
            ...plan.listeners.moved.map((l) => `${l.name} ${l.to}`),
            ...plan.listeners.changed.map((l) => `${l.name} ${l.listen}`),
            ...plan.listeners.unchanged.map((name) => `${name} ${listen(inB.get(name) as Def)}`),
          ]),
          "serving listeners",
        );
        const ours = new Set(open.map((o) => key(o.listener, o.port)));
        const ended = gate.logs
          .slice(from)
          .filter((l) => typeof l.end === "string" && ours.has(key(String(l.listener), Number(l.clientPort))));
        const closedOnApply = plan.refused.filter((r) => r.closedOnApply).map((r) => key(r.listener, r.clientPort));
        assert.deepEqual(
          sorted(ended.map((l) => key(String(l.listener), Number(l.clientPort)))),
          sorted(closedOnApply),
          "closed",
        );
        assert.ok(
          ended.every((l) => l.end === "recheck"),
          JSON.stringify(ended),
        );
        const totals = (await status(admin)).totals;
        assert.equal(totals.openBridges, open.length - closedOnApply.length, "open bridges after the reload");
        // Every listener of B accepts on its address; nothing listens where A's moved or removed ones did.
        for (const d of b) assert.equal(await connectOutcome(portOf(d.name, d.at)), "connected", `${d.name} listens`);
        for (const d of a) {
          const now = inB.get(d.name);
          if (!now || now.at !== d.at) {
            assert.equal(await connectOutcome(portOf(d.name, d.at)), "ECONNREFUSED", `${d.name} left ${listen(d)}`);
          }
        }
      }),
      { numRuns: 15, endOnFailure: true, includeErrorInReport: true },
    );
  } finally {
    for (const bridge of open) bridge.socket.destroy();
    await gate.close();
    for (const t of targets) await t.close();
  }
  assert.equal(runs, 15);
});
