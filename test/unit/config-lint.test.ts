import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { lint, lintFindings } from "../../src/config/lint.ts";
import { parseConfig } from "../../src/config/load.ts";
import type { ListenerConfig, Rule, RuntimeConfig } from "../../src/config/runtime.ts";
import { parseClientAddress } from "../../src/policy/address-match.ts";
import { compilePolicy } from "../../src/policy/admission.ts";
import { rule } from "../support/rules.ts";

/** The warnings --check prints for a file whose listener "db" has `body` as its extra keys. */
function warningsFor(body: string, top = ""): string[] {
  const text = `version: 1
${top}listeners:
  - name: db
    listen: 127.0.0.1:15432
    targets: [127.0.0.1:5432]
${body}`;
  const loaded = parseConfig(text, "proxy.yaml");
  assert.ok(loaded.ok, loaded.ok ? "" : loaded.errors.join("\n"));
  const lines = lint(loaded.config, loaded.source);
  for (const line of lines) assert.match(line, /^proxy\.yaml:\d+:\d+: warning: /);
  return lines;
}

const ACLS = `acls:
  office: [10.20.0.0/16, "2001:db8:42::/48"]
  lab: [10.20.5.0/24]
  mixed: [10.20.5.0/24, 192.0.2.0/24]
  quarantine: [10.20.99.0/24]
`;

describe("lint: entries that change no decision", () => {
  test("a duplicated entry is flagged at its second place, with the line it is on", () => {
    assert.deepEqual(warningsFor("    allow:\n      - 10.0.0.0/8\n      - 192.0.2.0/24\n      - 10.0.0.0/8\n"), [
      'proxy.yaml:9:9: warning: listeners[0].allow[2]: "10.0.0.0/8" changes no decision: it repeats "10.0.0.0/8" (allow[0])',
    ]);
    assert.deepEqual(warningsFor("    deny: [office, office]\n", ACLS), [
      'proxy.yaml:11:20: warning: listeners[0].deny[1]: "office" changes no decision: it repeats "office" (deny[0])',
    ]);
  });

  test("not flagged: distinct entries, and the same entry in different lists", () => {
    assert.deepEqual(warningsFor("    allow: [10.0.0.0/8, 192.0.2.0/24]\n    deny: [192.0.2.0/25]\n"), []);
  });

  test("an entry inside a broader one of the same list, wherever it is written; an acl as its ranges", () => {
    assert.deepEqual(warningsFor("    allow: [10.20.5.0/24, 10.0.0.0/8]\n"), [
      'proxy.yaml:6:13: warning: listeners[0].allow[0]: "10.20.5.0/24" changes no decision: it is inside "10.0.0.0/8" (allow[1])',
    ]);
    assert.deepEqual(warningsFor("    allow: [office, lab]\n", ACLS), [
      'proxy.yaml:11:21: warning: listeners[0].allow[1]: "lab" changes no decision: it is inside "office" (allow[0])',
    ]);
    // The same range spelt differently: the later one is flagged, only it.
    assert.deepEqual(warningsFor('    deny: [10.1.2.3, "10.1.2.3/32", "::ffff:10.1.2.3"]\n'), [
      'proxy.yaml:6:22: warning: listeners[0].deny[1]: "10.1.2.3/32" changes no decision: it is inside "10.1.2.3" (deny[0])',
      'proxy.yaml:6:37: warning: listeners[0].deny[2]: "::ffff:10.1.2.3" changes no decision: it is inside "10.1.2.3" (deny[0])',
    ]);
  });

  test("not flagged: an acl only partly inside another entry, and an entry inside one of the other list", () => {
    assert.deepEqual(warningsFor("    allow: [office, mixed]\n", ACLS), []);
    assert.deepEqual(
      warningsFor(
        "    allow: [lab]\n    deny: [192.0.2.0/24]\n    schedule: {windows: [{from: '00:00', to: '24:00'}]}\n",
        ACLS,
      ),
      [
        'proxy.yaml:12:12: warning: listeners[0].deny[0]: "192.0.2.0/24" cannot match any allowed client: no allow entry overlaps it (allow already refuses them)',
      ],
    );
  });

  test("removing every entry flagged as changing no decision changes no decision", () => {
    const cidr = fc.tuple(fc.nat(0xffff), fc.integer({ min: 16, max: 32 })).map(([low, prefix]) => {
      const host = 32 - prefix;
      const base = ((low >>> host) << host) & 0xffff;
      return `10.0.${base >> 8}.${base & 255}/${prefix}`;
    });
    const entry = fc.oneof(
      cidr.map((c) => rule(c, [c])),
      fc.array(cidr, { minLength: 1, maxLength: 3 }).map((cs) => rule("acl", cs)),
    );
    // In a file, one text is one entry: an acl name stands for one list of ranges.
    const list = (prefix: string) =>
      fc
        .array(entry, { maxLength: 6 })
        .map((rules) => rules.map((r, i) => (r.source === "acl" ? { ...r, source: `${prefix}${i}` } : r)));
    fc.assert(
      fc.property(
        list("a"),
        list("d"),
        fc.array(fc.nat(0xffff), { minLength: 20, maxLength: 20 }),
        (allow, deny, clients) => {
          const before = listener(allow, deny);
          const findings = lintFindings({ listeners: [before] } as unknown as RuntimeConfig, undefined);
          const dropped = (list: string) =>
            new Set(
              findings
                .filter((f) => f.path[1] === list && f.message.includes("changes no decision"))
                .map((f) => f.path[2]),
            );
          const keep = (rules: Rule[], list: string) => rules.filter((_, i) => !dropped(list).has(i));
          const after = listener(keep(allow, "allow"), keep(deny, "deny"));
          const [a, b] = [compilePolicy(before), compilePolicy(after)];
          for (const n of clients) {
            const client = parseClientAddress(`10.0.${n >> 8}.${n & 255}`);
            assert.ok(client);
            const verdict = (p: typeof a) => {
              const d = p.decide(client, 0, { total: 0, fromClient: 0 });
              return d.admit ? "admit" : d.reason;
            };
            assert.equal(verdict(b), verdict(a));
          }
        },
      ),
      { numRuns: 500 },
    );
  });
});

function listener(allow: Rule[], deny: Rule[]): ListenerConfig {
  return { name: "db", allow, deny, schedule: undefined } as unknown as ListenerConfig;
}

describe("lint: allow and deny against each other", () => {
  test("an allow entry wholly inside deny entries can never admit anyone", () => {
    assert.deepEqual(warningsFor("    allow: [10.0.0.0/8, 10.20.99.7]\n    deny: [quarantine]\n", ACLS), [
      'proxy.yaml:11:25: warning: listeners[0].allow[1]: "10.20.99.7" changes no decision: it is inside "10.0.0.0/8" (allow[0])',
      'proxy.yaml:11:25: warning: listeners[0].allow[1]: "10.20.99.7" can never admit anyone: it is inside deny entry "quarantine" (deny[0])',
    ]);
    // Wholly inside two deny entries between them.
    assert.deepEqual(warningsFor("    allow: [office, mixed]\n    deny: [lab, 192.0.2.0/24]\n", ACLS), [
      'proxy.yaml:11:21: warning: listeners[0].allow[1]: "mixed" can never admit anyone: it is inside deny entry "lab" (deny[0]) and "192.0.2.0/24" (deny[1])',
    ]);
  });

  test("not flagged: an allow entry only partly denied", () => {
    assert.deepEqual(warningsFor("    allow: [mixed]\n    deny: [lab]\n", ACLS), []);
  });

  test("a deny entry disjoint from every allow entry cannot match any allowed client", () => {
    assert.deepEqual(warningsFor('    allow: [10.0.0.0/8]\n    deny: [10.1.0.0/16, "2001:db8::/32"]\n'), [
      'proxy.yaml:7:25: warning: listeners[0].deny[1]: "2001:db8::/32" cannot match any allowed client: no allow entry overlaps it (allow already refuses them)',
    ]);
  });

  test("not flagged: a deny entry overlapping an allow entry, or any deny without an allow list", () => {
    assert.deepEqual(warningsFor("    allow: [10.0.0.0/8]\n    deny: [10.1.2.0/24]\n"), []);
    assert.deepEqual(warningsFor("    deny: [10.0.0.0/8, 192.0.2.0/24]\n"), []);
  });
});

describe("lint: schedule windows", () => {
  const windows = (...w: string[]) =>
    `    schedule:\n      timezone: UTC\n      windows:\n${w.map((x) => `        - ${x}\n`).join("")}`;

  test("an empty window, and one whose from equals its to", () => {
    assert.deepEqual(
      warningsFor(windows("{from: '24:00', to: '00:00'}", "{days: [sun], from: '09:00', to: '09:00'}")),
      [
        "proxy.yaml:9:11: warning: listeners[0].schedule.windows[0]: the window is empty: it admits no minute",
        'proxy.yaml:10:11: warning: listeners[0].schedule.windows[1]: from and to are both "09:00": read as 24 hours from 09:00, crossing midnight; write "00:00" to "24:00" for whole days',
      ],
    );
  });

  test("not flagged: a whole day, and a window crossing midnight", () => {
    assert.deepEqual(
      warningsFor(windows("{days: [mon], from: '00:00', to: '24:00'}", "{days: [fri], from: '22:00', to: '06:00'}")),
      [],
    );
  });

  test("overlapping windows, a midnight crossing into the next day included", () => {
    assert.deepEqual(
      warningsFor(
        windows("{days: [mon-fri], from: '07:00', to: '19:00'}", "{days: [fri], from: '18:00', to: '02:00'}"),
      ),
      [
        "proxy.yaml:10:11: warning: listeners[0].schedule.windows[1]: overlaps windows[0] (both admit fri 18:00, for one)",
      ],
    );
    assert.deepEqual(
      warningsFor(windows("{days: [sun], from: '22:00', to: '06:00'}", "{days: [mon], from: '05:00', to: '08:00'}")),
      [
        "proxy.yaml:10:11: warning: listeners[0].schedule.windows[1]: overlaps windows[0] (both admit mon 05:00, for one)",
      ],
    );
  });

  test("not flagged: windows that meet end to start", () => {
    assert.deepEqual(
      warningsFor(
        windows(
          "{from: '07:00', to: '12:00'}",
          "{from: '12:00', to: '19:00'}",
          "{days: [sun], from: '22:00', to: '06:00'}",
          "{days: [mon], from: '06:00', to: '07:00'}",
        ),
      ),
      [],
    );
  });
});

describe("lint: settings inherited from defaults", () => {
  test("flagged where defaults says them, once however many listeners inherit them", () => {
    const top = `defaults:
  allow: [10.0.0.0/8, 10.1.0.0/16]
  schedule: {windows: [{from: "07:00", to: "19:00"}, {from: "18:00", to: "20:00"}]}
`;
    const second = "  - name: web\n    listen: 127.0.0.1:8080\n    targets: [127.0.0.1:9000]\n";
    assert.deepEqual(warningsFor(second, top), [
      'proxy.yaml:3:23: warning: defaults.allow[1]: "10.1.0.0/16" changes no decision: it is inside "10.0.0.0/8" (allow[0])',
      "proxy.yaml:4:54: warning: defaults.schedule.windows[1]: overlaps windows[0] (both admit mon 18:00, for one)",
    ]);
    // A listener with its own list is not judged by the default one.
    assert.deepEqual(warningsFor("    allow: [10.0.0.0/8]\n", "defaults:\n  allow: [10.0.0.0/8, 10.0.0.0/8]\n"), []);
  });

  test("a finding that needs the listener's own list too names the listener", () => {
    assert.deepEqual(warningsFor("    deny: [10.0.0.0/8]\n", "defaults:\n  allow: [10.1.0.0/16]\n"), [
      'proxy.yaml:3:11: warning: defaults.allow[0]: listener "db": "10.1.0.0/16" can never admit anyone: it is inside deny entry "10.0.0.0/8" (deny[0])',
    ]);
  });
});

describe("lint: limits", () => {
  test("maxConnectionsPerClient above maxConnections, on the listener or inherited from defaults", () => {
    assert.deepEqual(warningsFor("    maxConnections: 5\n    maxConnectionsPerClient: 6\n"), [
      'proxy.yaml:7:30: warning: listeners[0].maxConnectionsPerClient: listener "db": maxConnectionsPerClient 6 is above its maxConnections 5, so it never limits anyone',
    ]);
    assert.deepEqual(warningsFor("    maxConnections: 5\n", "defaults:\n  maxConnectionsPerClient: 50\n"), [
      'proxy.yaml:3:28: warning: defaults.maxConnectionsPerClient: listener "db": maxConnectionsPerClient 50 is above its maxConnections 5, so it never limits anyone',
    ]);
  });

  test("not flagged: equal limits, or only one of them", () => {
    assert.deepEqual(warningsFor("    maxConnections: 5\n    maxConnectionsPerClient: 5\n"), []);
    assert.deepEqual(warningsFor("    maxConnectionsPerClient: 500\n"), []);
  });
});
