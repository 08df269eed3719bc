// The reload plan: diff(old, new) matches listeners by name and sorts each into exactly one
// of add, remove, rebind, update, unchanged. Unit cases for the log lines an operator
// reads, and fast-check properties over configs that went through the real loader.
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { describePlan, diff, isEmptyPlan, type ReloadPlan } from "../../src/config/diff.ts";
import { parseConfig } from "../../src/config/load.ts";
import type { ListenerConfig, RuntimeConfig } from "../../src/config/runtime.ts";

/** Loads config text (YAML or JSON) the way a reload does; fails the test if it is invalid. */
function load(text: string): RuntimeConfig {
  const result = parseConfig(text, "test.yaml");
  if (!result.ok) throw new Error(`test config is invalid:\n${result.errors.join("\n")}\n${text}`);
  return result.config;
}

const yaml = (listeners: string, top = "") => load(`version: 1\n${top}listeners:\n${listeners}`);

const web = (listen = "0.0.0.0:8080", extra = "") =>
  `  - name: web\n    listen: "${listen}"\n    targets: ["10.0.0.1:80"]\n${extra}`;
const db = (targets = `["10.0.0.5:5432"]`, extra = "") =>
  `  - name: db\n    listen: "127.0.0.1:5432"\n    targets: ${targets}\n${extra}`;

/** The listener set the plan says should run: old, minus removed, plus everything new. */
function applyPlan(old: RuntimeConfig, plan: ReloadPlan): Map<string, ListenerConfig> {
  const result = new Map(old.listeners.map((l) => [l.name, l]));
  for (const l of plan.remove) result.delete(l.name);
  for (const l of plan.add) result.set(l.name, l);
  for (const r of plan.rebind) result.set(r.config.name, r.config);
  for (const u of plan.update) result.set(u.config.name, u.config);
  return result;
}

function buckets(plan: ReloadPlan): Map<string, string[]> {
  const seen = new Map<string, string[]>();
  const put = (name: string, bucket: string) => seen.set(name, [...(seen.get(name) ?? []), bucket]);
  for (const l of plan.add) put(l.name, "add");
  for (const l of plan.remove) put(l.name, "remove");
  for (const r of plan.rebind) put(r.config.name, "rebind");
  for (const u of plan.update) put(u.config.name, "update");
  for (const name of plan.unchanged) put(name, "unchanged");
  return seen;
}

test("the log lines of a plan: added, rebound, changed, removed, settings", () => {
  const old = yaml(`${web()}${db()}  - name: old\n    listen: "127.0.0.1:9001"\n    targets: ["10.0.0.9:1"]\n`);
  const next = yaml(
    `${web("0.0.0.0:8081")}${db(`["10.0.0.6:5432"]`, "    idleTimeout: 1m\n")}` +
      `  - name: new\n    listen: "127.0.0.1:9000"\n    targets: ["10.0.0.9:1"]\n`,
    "log:\n  level: warn\nshutdownTimeout: 5s\n",
  );
  const plan = diff(old, next);
  assert.deepEqual(describePlan(plan), [
    "listener new: added on 127.0.0.1:9000",
    "listener web: rebound 0.0.0.0:8080 → 0.0.0.0:8081",
    "listener db: targets, idleTimeout changed",
    "listener old: removed (open bridges carry on)",
    "logLevel changed",
    "shutdownTimeout changed",
  ]);
  assert.deepEqual(plan.unchanged, []);
  assert.deepEqual(plan.settings, ["logLevel", "shutdownTimeoutMs"]);
});

test("a rebind that also changes other keys says so on its one line", () => {
  const plan = diff(yaml(web()), yaml(web("127.0.0.1:8080", "    connectTimeout: 1s\n    maxDuration: 1h\n")));
  assert.deepEqual(describePlan(plan), [
    "listener web: rebound 0.0.0.0:8080 → 127.0.0.1:8080; connectTimeout, maxDuration changed",
  ]);
  assert.deepEqual(plan.rebind[0]?.changed, ["connectTimeoutMs", "maxDurationMs"]);
});

test("allow and deny changes are updates in place, also when only an acl's contents change", () => {
  const plan = diff(
    yaml(db(undefined, "    allow: [10.20.0.0/16]\n")),
    yaml(db(undefined, "    allow: [10.20.0.0/16, 192.168.0.0/24]\n    deny: [10.20.99.0/24]\n")),
  );
  assert.deepEqual(describePlan(plan), ["listener db: allow, deny changed"]);
  // The rule is written the same ("office"), but it now stands for other addresses.
  const office = (cidr: string) => `acls:\n  office: [${cidr}]\n`;
  const listeners = db(undefined, "    allow: [office]\n");
  const acl = diff(yaml(listeners, office("10.20.0.0/16")), yaml(listeners, office("10.30.0.0/16")));
  assert.deepEqual(describePlan(acl), ["listener db: allow changed"]);
  assert.equal(acl.update[0]?.config.allow[0]?.cidrs[0]?.text, "10.30.0.0/16");
});

test("the same values spelled differently are unchanged: nothing to do", () => {
  const old = yaml(
    `  - name: web\n    listen: "[::1]:8080"\n    targets: ["DB.Internal:80", "[2001:db8::1]:443"]\n    idleTimeout: 15m\n`,
  );
  const next = yaml(
    `  - name: web\n    listen: "[0:0:0:0:0:0:0:1]:8080"\n` +
      `    targets: ["db.internal:80", {address: "[2001:DB8:0::1]:443", weight: 1}]\n    idleTimeout: 900s\n`,
    "shutdownTimeout: 30000ms\n",
  );
  const plan = diff(old, next);
  assert.deepEqual(plan.unchanged, ["web"]);
  assert.ok(isEmptyPlan(plan));
  assert.deepEqual(describePlan(plan), []);
});

test("a listener inherits a changed default unless it sets its own", () => {
  const both = `${web()}${db(undefined, "    idleTimeout: 1h\n")}`;
  const plan = diff(yaml(both, "defaults:\n  idleTimeout: 10m\n"), yaml(both, "defaults:\n  idleTimeout: 20m\n"));
  assert.deepEqual(describePlan(plan), ["listener web: idleTimeout changed"]);
  assert.deepEqual(plan.unchanged, ["db"]);
});

test("targets: a new order or weight is a change; the name is the identity, not the address", () => {
  const two = (targets: string) => yaml(db(targets));
  assert.deepEqual(describePlan(diff(two(`["10.0.0.5:1", "10.0.0.6:1"]`), two(`["10.0.0.6:1", "10.0.0.5:1"]`))), [
    "listener db: targets changed",
  ]);
  assert.deepEqual(describePlan(diff(two(`["10.0.0.5:1"]`), two(`[{address: "10.0.0.5:1", weight: 3}]`))), [
    "listener db: targets changed",
  ]);
  // Renaming a listener is removing one and adding another, even on the same address.
  const renamed = diff(yaml(web()), yaml(web().replace("name: web", "name: www")));
  assert.deepEqual(describePlan(renamed), [
    "listener www: added on 0.0.0.0:8080",
    "listener web: removed (open bridges carry on)",
  ]);
});

test("from nothing (start-up), every listener is added", () => {
  const config = yaml(`${web()}${db()}`);
  const plan = diff({ ...config, listeners: [] }, config);
  assert.deepEqual(
    plan.add.map((l) => l.name),
    ["web", "db"],
  );
  assert.equal(plan.remove.length + plan.rebind.length + plan.update.length + plan.unchanged.length, 0);
});

// ---- properties ----------------------------------------------------------------------
//
// Each listener name owns two ports, so no two listeners of one config can clash. A spec
// holds indices into pools of values; each value has one or more spellings that load to
// the same thing, and which spelling a file uses is drawn separately. So two specs with
// equal indices must come out unchanged however they are written, and an index that
// differs must show up as that key, and only that key, in the plan.

const NAMES = ["web", "db", "mail", "dns", "ssh", "api"] as const;
const HOSTS = [["127.0.0.1"], ["0.0.0.0"], ["[::1]", "[0:0:0:0:0:0:0:1]"], [""], ["[::]", "[0::0]"]];
const TARGETS = [
  ["10.0.0.1:80"],
  ["[2001:db8::1]:443", "[2001:DB8:0:0::1]:443"],
  ["db.internal:5432", "DB.internal:5432"],
  ["10.0.0.2:80"],
];
/** Optional keys: absent, or one of two distinct values, each with its spellings. */
const SETTINGS: Record<string, { key: string; values: readonly (readonly unknown[])[] }> = {
  idleTimeout: {
    key: "idleTimeoutMs",
    values: [
      ["30s", "30000ms"],
      ["2m", "120s"],
    ],
  },
  connectTimeout: { key: "connectTimeoutMs", values: [["1s", "1000ms"], ["3s"]] },
  maxDuration: { key: "maxDurationMs", values: [["1h", "60m"], ["8h"]] },
  halfCloseTimeout: { key: "halfCloseTimeoutMs", values: [["10s"], ["2m", "120s"]] },
  allow: { key: "allow", values: [[["10.0.0.0/8"]], [["127.0.0.1", "192.168.0.0/16"]]] },
  deny: { key: "deny", values: [[["10.9.0.0/16"]], [["::1"]]] },
  maxConnections: { key: "maxConnections", values: [[10], [100]] },
  maxConnectionsPerClient: { key: "maxConnectionsPerClient", values: [[1], [5]] },
};
type SettingName = string;
const SETTING_NAMES: SettingName[] = Object.keys(SETTINGS);

interface ListenerSpec {
  host: number;
  port: 0 | 1;
  /** Indices into TARGETS, in order, each with a weight of 1 or 2. */
  targets: { index: number; weight: 1 | 2 }[];
  /** -1 for absent, else an index into that setting's values. */
  settings: Record<SettingName, number>;
}
interface ConfigSpec {
  listeners: Partial<Record<(typeof NAMES)[number], ListenerSpec>>;
  logLevel: number;
  shutdownTimeout: number;
  order: number[];
}

const listenerSpec: fc.Arbitrary<ListenerSpec> = fc.record({
  host: fc.nat(HOSTS.length - 1),
  port: fc.constantFrom(0 as const, 1 as const),
  targets: fc
    .uniqueArray(fc.nat(TARGETS.length - 1), { minLength: 1, maxLength: TARGETS.length })
    .chain((indices) =>
      fc.tuple(...indices.map((index) => fc.constantFrom(1 as const, 2 as const).map((weight) => ({ index, weight })))),
    ),
  settings: fc.record(
    Object.fromEntries(SETTING_NAMES.map((name) => [name, fc.integer({ min: -1, max: 1 })])) as Record<
      SettingName,
      fc.Arbitrary<number>
    >,
  ),
});

/** A new spec that shares some of old's values: small, realistic edits, as well as big ones. */
function edited(old: ListenerSpec): fc.Arbitrary<ListenerSpec> {
  return fc
    .tuple(listenerSpec, fc.record({ listen: fc.boolean(), targets: fc.boolean(), settings: fc.boolean() }))
    .map(([other, take]) => ({
      host: take.listen ? other.host : old.host,
      port: take.listen ? other.port : old.port,
      targets: take.targets ? other.targets : old.targets,
      settings: take.settings ? other.settings : old.settings,
    }));
}

const LOG_LEVELS = [undefined, "debug", "warn"];
const SHUTDOWN = [undefined, ["5s", "5000ms"], ["1m"]];

const topLevel = fc.record({ logLevel: fc.nat(2), shutdownTimeout: fc.nat(2) });
const presence = fc.constantFrom("absent", "same", "edited", "other");

/** An old and a new config spec, listener by listener. */
const specPair: fc.Arbitrary<[ConfigSpec, ConfigSpec]> = fc
  .tuple(
    fc.tuple(...NAMES.map(() => fc.tuple(fc.option(listenerSpec, { nil: undefined }), presence, listenerSpec))),
    topLevel,
    topLevel,
    fc.boolean(),
  )
  .chain(([perName, top1, top2, sameTop]) =>
    fc
      .tuple(
        ...perName.map(([old, how, other]) =>
          how === "edited" && old
            ? edited(old)
            : fc.constant(how === "same" ? old : how === "other" ? other : undefined),
        ),
      )
      .chain((news) => {
        const oldListeners = Object.fromEntries(
          NAMES.flatMap((n, i) => (perName[i]?.[0] ? [[n, perName[i]?.[0]]] : [])),
        );
        const newListeners = Object.fromEntries(NAMES.flatMap((n, i) => (news[i] ? [[n, news[i]]] : [])));
        return fc
          .tuple(
            fc.shuffledSubarray([...NAMES.keys()], { minLength: NAMES.length }),
            fc.shuffledSubarray([...NAMES.keys()], { minLength: NAMES.length }),
          )
          .map(([order1, order2]): [ConfigSpec, ConfigSpec] => [
            { listeners: oldListeners, ...top1, order: order1 },
            { listeners: newListeners, ...(sameTop ? top1 : top2), order: order2 },
          ]);
      }),
  )
  // A config needs at least one listener.
  .filter(([a, b]) => Object.keys(a.listeners).length > 0 && Object.keys(b.listeners).length > 0);

/** Picks one spelling of a value, from a stream of choices drawn apart from the spec. */
type Speller = <T>(spellings: readonly T[]) => T;

function render(spec: ConfigSpec, spell: Speller, json: boolean): string {
  const listeners = spec.order.flatMap((i) => {
    const name = NAMES[i] as (typeof NAMES)[number];
    const l = spec.listeners[name];
    if (!l) return [];
    const port = 20_000 + i * 2 + l.port;
    const settings = Object.fromEntries(
      SETTING_NAMES.flatMap((s) => {
        const spellings = SETTINGS[s]?.values[l.settings[s] ?? -1];
        return spellings ? [[s, spell(spellings)]] : [];
      }),
    );
    const targets = l.targets.map(({ index, weight }) => {
      const address = spell(TARGETS[index] ?? []);
      // weight 1 may be written as a plain string or spelled out: the same thing.
      return weight === 1 && spell(["plain", "map"]) === "plain" ? address : { address, weight };
    });
    return [{ name, listen: `${spell(HOSTS[l.host] ?? [])}:${port}`, targets, ...settings }];
  });
  const level = LOG_LEVELS[spec.logLevel];
  const shutdown = SHUTDOWN[spec.shutdownTimeout];
  const config = {
    version: 1,
    ...(level && { log: { level } }),
    ...(shutdown && { shutdownTimeout: spell(shutdown) }),
    listeners,
  };
  if (json) return JSON.stringify(config, null, 1);
  // Block-style YAML of the same data, listener by listener, to exercise that path too.
  return `version: 1\n${level ? `log:\n  level: ${level}\n` : ""}${
    shutdown ? `shutdownTimeout: ${config.shutdownTimeout}\n` : ""
  }listeners:\n${listeners.map((l) => `  - ${JSON.stringify(l)}\n`).join("")}`;
}

/** Keys of ListenerConfig whose spec index differs between a and b (listen excluded). */
function expectedChanges(a: ListenerSpec, b: ListenerSpec): string[] {
  const keys: string[] = [];
  if (JSON.stringify(a.targets) !== JSON.stringify(b.targets)) keys.push("targets");
  for (const s of SETTING_NAMES) if (a.settings[s] !== b.settings[s]) keys.push(SETTINGS[s]?.key ?? s);
  return keys.sort();
}

const loaded = fc
  .tuple(specPair, fc.infiniteStream(fc.nat(7)), fc.boolean(), fc.boolean())
  .map(([[oldSpec, newSpec], choices, json1, json2]) => {
    const next = () => choices.next().value as number;
    const spell: Speller = (spellings) => spellings[next() % spellings.length] as (typeof spellings)[number];
    return {
      oldSpec,
      newSpec,
      old: load(render(oldSpec, spell, json1)),
      next: load(render(newSpec, spell, json2)),
    };
  });

const RUNS = { numRuns: 300 };

test("property: applying the plan to the old listeners gives exactly the new ones", () => {
  fc.assert(
    fc.property(loaded, ({ old, next }) => {
      const plan = diff(old, next);
      const result = applyPlan(old, plan);
      assert.deepEqual(new Map(next.listeners.map((l) => [l.name, l])), result);
      // Unchanged listeners keep their running config, which must equal the new one.
      for (const name of plan.unchanged) {
        assert.deepEqual(
          old.listeners.find((l) => l.name === name),
          next.listeners.find((l) => l.name === name),
        );
      }
    }),
    RUNS,
  );
});

test("property: every name is in exactly one bucket, the one its spec says", () => {
  fc.assert(
    fc.property(loaded, ({ oldSpec, newSpec, old, next }) => {
      const plan = diff(old, next);
      const seen = buckets(plan);
      const names = new Set([...old.listeners, ...next.listeners].map((l) => l.name));
      assert.deepEqual(new Set(seen.keys()), names);
      for (const name of NAMES) {
        const a = oldSpec.listeners[name];
        const b = newSpec.listeners[name];
        if (!a && !b) continue;
        const expected = !a
          ? "add"
          : !b
            ? "remove"
            : a.host !== b.host || a.port !== b.port
              ? "rebind"
              : expectedChanges(a, b).length > 0
                ? "update"
                : "unchanged";
        assert.deepEqual(seen.get(name), [expected], `listener ${name}`);
      }
    }),
    RUNS,
  );
});

test("property: rebind iff the listen key differs; changed names exactly the keys that differ", () => {
  fc.assert(
    fc.property(loaded, ({ oldSpec, newSpec, old, next }) => {
      const plan = diff(old, next);
      const before = new Map(old.listeners.map((l) => [l.name, l]));
      for (const l of next.listeners) {
        const was = before.get(l.name);
        if (!was) continue;
        const rebind = plan.rebind.find((r) => r.config.name === l.name);
        assert.equal(rebind !== undefined, was.listenKey !== l.listenKey, `listener ${l.name}`);
        if (rebind) assert.deepEqual([rebind.from, rebind.to], [was.listenKey, l.listenKey]);
        const a = oldSpec.listeners[l.name as (typeof NAMES)[number]] as ListenerSpec;
        const b = newSpec.listeners[l.name as (typeof NAMES)[number]] as ListenerSpec;
        const changed = rebind?.changed ?? plan.update.find((u) => u.config.name === l.name)?.changed ?? [];
        assert.deepEqual([...changed].sort(), expectedChanges(a, b), `listener ${l.name}`);
      }
    }),
    RUNS,
  );
});

test("property: describePlan gives one line per change, naming its listener", () => {
  fc.assert(
    fc.property(loaded, ({ old, next }) => {
      const plan = diff(old, next);
      const lines = describePlan(plan);
      const listenerChanges = plan.add.length + plan.remove.length + plan.rebind.length + plan.update.length;
      assert.equal(lines.length, listenerChanges + plan.settings.length);
      const named = lines.flatMap((line) => /^listener (\w+): /.exec(line)?.[1] ?? []);
      const changedNames = [
        ...plan.add,
        ...plan.remove,
        ...plan.rebind.map((r) => r.config),
        ...plan.update.map((u) => u.config),
      ]
        .map((l) => l.name)
        .sort();
      assert.deepEqual([...named].sort(), changedNames);
      for (const name of plan.unchanged) assert.ok(!named.includes(name), `unchanged ${name} has a line`);
      assert.equal(isEmptyPlan(plan), lines.length === 0);
    }),
    RUNS,
  );
});

test("property: top-level settings are reported iff they differ", () => {
  fc.assert(
    fc.property(loaded, ({ oldSpec, newSpec, old, next }) => {
      const expected = [
        ...(oldSpec.logLevel !== newSpec.logLevel ? ["logLevel"] : []),
        ...(oldSpec.shutdownTimeout !== newSpec.shutdownTimeout ? ["shutdownTimeoutMs"] : []),
      ];
      assert.deepEqual(diff(old, next).settings, expected);
    }),
    RUNS,
  );
});

test("property: diff(x, x) is empty, diff is deterministic, and reversing it swaps add and remove", () => {
  fc.assert(
    fc.property(loaded, ({ old, next }) => {
      const same = diff(next, next);
      assert.ok(isEmptyPlan(same));
      assert.deepEqual(same.unchanged.slice().sort(), next.listeners.map((l) => l.name).sort());
      assert.deepEqual(diff(old, next), diff(old, next));
      const forward = diff(old, next);
      const back = diff(next, old);
      assert.deepEqual(back.add.map((l) => l.name).sort(), forward.remove.map((l) => l.name).sort());
      assert.deepEqual(
        back.rebind.map((r) => [r.config.name, r.to, r.from]).sort(),
        forward.rebind.map((r) => [r.config.name, r.from, r.to]).sort(),
      );
      assert.deepEqual(back.unchanged.slice().sort(), forward.unchanged.slice().sort());
    }),
    RUNS,
  );
});

test("acceptProxy and routes are changed keys like any other; a changed default acceptProxy reaches its listeners", () => {
  const routes = (target: string) => `    routes:\n      - sni: [db.example.com]\n        targets: ["${target}"]\n`;
  assert.deepEqual(describePlan(diff(yaml(web()), yaml(web(undefined, routes("10.0.0.9:443"))))), [
    "listener web: routes changed",
  ]);
  assert.deepEqual(
    describePlan(diff(yaml(web(undefined, routes("10.0.0.9:443"))), yaml(web(undefined, routes("10.0.0.8:443"))))),
    ["listener web: routes changed"],
  );
  const trusting = (from: string) => yaml(web(), `defaults:\n  acceptProxy: {from: [${from}]}\n`);
  assert.deepEqual(describePlan(diff(yaml(web()), trusting("10.0.0.0/24"))), ["listener web: acceptProxy changed"]);
  assert.deepEqual(describePlan(diff(trusting("10.0.0.0/24"), trusting("10.0.1.0/24"))), [
    "listener web: acceptProxy changed",
  ]);
  assert.ok(isEmptyPlan(diff(trusting("10.0.0.0/24"), trusting("10.0.0.0/24"))));
});
