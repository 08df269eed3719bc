import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { ListenerConfig, Rule } from "../../src/config/runtime.ts";
import { parseClientAddress } from "../../src/policy/address-match.ts";
import { compilePolicy } from "../../src/policy/admission.ts";
import { listenerConfig, rule } from "../support/rules.ts";

/** A rule whose CIDRs default to its own name (a CIDR written in place). */
function inPlace(source: string, ...cidrs: string[]): Rule {
  return rule(source, cidrs.length ? cidrs : [source]);
}

function listener(overrides: Partial<ListenerConfig>): ListenerConfig {
  return listenerConfig({ ...overrides });
}

const client = (text: string) => {
  const parsed = parseClientAddress(text);
  assert.ok(parsed);
  return parsed;
};
const NONE_OPEN = { total: 0, fromClient: 0 };
const NOON_UTC_MONDAY = Date.UTC(2026, 10, 23, 12, 0);

describe("admission order: deny, allow, schedule, limits", () => {
  test("no rules admit everyone", () => {
    assert.deepEqual(compilePolicy(listener({})).decide(client("192.0.2.1"), NOON_UTC_MONDAY, NONE_OPEN), {
      admit: true,
      entry: undefined,
    });
  });

  test("deny wins over allow and names the rule that decided", () => {
    const policy = compilePolicy(
      listener({ allow: [inPlace("office", "10.20.0.0/16")], deny: [inPlace("quarantine", "10.20.99.0/24")] }),
    );
    assert.deepEqual(policy.decide(client("10.20.99.7"), NOON_UTC_MONDAY, NONE_OPEN), {
      admit: false,
      reason: "deny",
      detail: "quarantine (10.20.99.0/24)",
      entry: { list: "deny", rule: "quarantine", index: 0, cidr: "10.20.99.0/24" },
    });
    assert.deepEqual(policy.decide(client("10.20.1.7"), NOON_UTC_MONDAY, NONE_OPEN), {
      admit: true,
      entry: { list: "allow", rule: "office", index: 0, cidr: "10.20.0.0/16" },
    });
    assert.deepEqual(policy.decide(client("10.21.1.7"), NOON_UTC_MONDAY, NONE_OPEN), {
      admit: false,
      reason: "allow",
      detail: "no allow entry matches",
      entry: undefined,
    });
  });

  test("a CIDR written in place is reported as itself", () => {
    const policy = compilePolicy(listener({ deny: [inPlace("192.0.2.0/24")] }));
    assert.deepEqual(policy.decide(client("::ffff:192.0.2.9"), NOON_UTC_MONDAY, NONE_OPEN), {
      admit: false,
      reason: "deny",
      detail: "192.0.2.0/24",
      entry: { list: "deny", rule: "192.0.2.0/24", index: 0, cidr: "192.0.2.0/24" },
    });
  });

  test("a denied client is refused for deny even outside the schedule and over the limit", () => {
    const policy = compilePolicy(
      listener({
        deny: [inPlace("192.0.2.0/24")],
        schedule: { timezone: "UTC", windows: [{ days: ["sat"], from: "00:00", to: "01:00" }] },
        maxConnections: 1,
      }),
    );
    assert.equal(
      (policy.decide(client("192.0.2.1"), NOON_UTC_MONDAY, { total: 5, fromClient: 5 }) as { reason: string }).reason,
      "deny",
    );
    assert.equal(
      (policy.decide(client("192.0.3.1"), NOON_UTC_MONDAY, { total: 5, fromClient: 5 }) as { reason: string }).reason,
      "schedule",
    );
  });

  test("schedule refuses outside every window and admits inside", () => {
    const policy = compilePolicy(
      listener({ schedule: { timezone: "UTC", windows: [{ days: ["mon"], from: "11:00", to: "13:00" }] } }),
    );
    assert.deepEqual(policy.decide(client("192.0.2.1"), NOON_UTC_MONDAY, NONE_OPEN), { admit: true, entry: undefined });
    assert.equal(
      (policy.decide(client("192.0.2.1"), NOON_UTC_MONDAY + 3_600_000, NONE_OPEN) as { reason: string }).reason,
      "schedule",
    );
  });

  test("limits count open bridges: at the limit the next client is refused", () => {
    const policy = compilePolicy(listener({ maxConnections: 2, maxConnectionsPerClient: 1 }));
    const c = client("192.0.2.1");
    assert.deepEqual(policy.decide(c, NOON_UTC_MONDAY, { total: 1, fromClient: 0 }), { admit: true, entry: undefined });
    assert.deepEqual(policy.decide(c, NOON_UTC_MONDAY, { total: 1, fromClient: 1 }), {
      admit: false,
      reason: "limit",
      detail: "maxConnectionsPerClient 1 reached",
      entry: undefined,
    });
    assert.deepEqual(policy.decide(c, NOON_UTC_MONDAY, { total: 2, fromClient: 0 }), {
      admit: false,
      reason: "limit",
      detail: "maxConnections 2 reached",
      entry: undefined,
    });
  });

  test("the allow entry that let a client past the allow step is named even when the schedule or a limit refuses", () => {
    const policy = compilePolicy(
      listener({
        allow: [inPlace("10.0.0.0/8"), inPlace("lab", "10.9.0.0/16")],
        schedule: { timezone: "UTC", windows: [{ days: ["mon"], from: "11:00", to: "13:00" }] },
        maxConnections: 1,
      }),
    );
    const lab = { list: "allow", rule: "lab", index: 1, cidr: "10.9.0.0/16" };
    const decided = (at: number, total: number) => policy.decide(client("10.9.1.1"), at, { total, fromClient: 0 });
    assert.deepEqual(decided(NOON_UTC_MONDAY, 0), { admit: true, entry: lab });
    assert.deepEqual(decided(NOON_UTC_MONDAY + 3_600_000, 0), {
      admit: false,
      reason: "schedule",
      detail: "outside every window",
      entry: lab,
    });
    assert.deepEqual(decided(NOON_UTC_MONDAY, 1), {
      admit: false,
      reason: "limit",
      detail: "maxConnections 1 reached",
      entry: lab,
    });
  });
});

describe("behind a load balancer", () => {
  const open = { total: 0, fromClient: 0 };
  test("acceptProxy names the peers that must send a PROXY header; none without it", () => {
    const policy = compilePolicy(listener({ acceptProxy: { from: [inPlace("10.0.0.0/24")], timeoutMs: 3000 } }));
    assert.equal(policy.sendsProxyHeader(client("10.0.0.7")), true);
    assert.equal(policy.sendsProxyHeader(client("::ffff:10.0.0.7")), true);
    assert.equal(policy.sendsProxyHeader(client("10.0.1.7")), false);
    assert.equal(compilePolicy(listener({})).sendsProxyHeader(client("10.0.0.7")), false);
  });

  test("a balancer's own connection (trusted) skips deny, allow and schedule, not the limits", () => {
    const policy = compilePolicy(
      listener({
        deny: [inPlace("10.0.0.0/24")],
        allow: [inPlace("192.0.2.0/24")],
        schedule: { timezone: "UTC", windows: [{ days: undefined, from: "00:00", to: "00:00" }] },
        maxConnections: 1,
      }),
    );
    const lb = client("10.0.0.7");
    assert.equal(policy.decide(lb, Date.now(), open).admit, false);
    assert.deepEqual(policy.decide(lb, Date.now(), open, true), { admit: true, entry: undefined });
    assert.equal(policy.decide(lb, Date.now(), { total: 1, fromClient: 0 }, true).admit, false);
  });
});
