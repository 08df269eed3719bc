import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import type { Day, ListenerConfig, Rule, ScheduleWindow } from "../../src/config/runtime.ts";
import { compilePolicy } from "../../src/policy/admission.ts";
import {
  describeWindow,
  explainListener,
  formatInZone,
  parseExplainedAddress,
  parseInstant,
} from "../../src/policy/explain.ts";
import { compileSchedule } from "../../src/policy/schedule.ts";
import { listenerConfig, rule } from "../support/rules.ts";

function listener(overrides: Partial<ListenerConfig>): ListenerConfig {
  return listenerConfig({ maxConnections: 1, maxConnectionsPerClient: 1, ...overrides });
}

const cidr = (text: string) => rule(text, [text]);

function address(text: string) {
  const parsed = parseExplainedAddress(text);
  assert.ok(parsed.ok, text);
  return parsed.value;
}

function instant(text: string): number {
  const parsed = parseInstant(text);
  assert.ok(parsed.ok, text);
  return parsed.value;
}

const explain = (config: ListenerConfig, client: string, at = "2026-11-30T12:00:00Z") =>
  explainListener(config, address(client).client, instant(at));

describe("explain: which entry decided", () => {
  const office = listener({
    allow: [rule("office", ["10.20.0.0/16", "2001:db8:42::/48"]), cidr("192.168.20.0/24")],
    deny: [rule("quarantine", ["10.20.99.0/24"]), cidr("10.20.99.128/25"), cidr("2001:db8:42:66::/64")],
  });

  test("IPv4: a deny entry (the acl, with the range inside it), an allow entry, or not in allow", () => {
    const denied = explain(office, "10.20.99.7");
    assert.equal(denied.admitted, false);
    assert.equal(denied.refusedBy, "deny");
    assert.deepEqual(denied.deny, { rule: "quarantine", cidr: "10.20.99.0/24" });
    const admitted = explain(office, "10.20.1.1");
    assert.equal(admitted.admitted, true);
    assert.equal(admitted.refusedBy, undefined);
    assert.equal(admitted.deny, undefined);
    assert.deepEqual(admitted.allow, { rule: "office", cidr: "10.20.0.0/16" });
    const stranger = explain(office, "8.8.8.8");
    assert.equal(stranger.refusedBy, "allow");
    assert.equal(stranger.allow, undefined);
    assert.equal(stranger.allowList, true);
  });

  test("overlapping entries: the most specific one is named, wherever it is written", () => {
    // 10.20.99.200 is in quarantine's /24, in the /25 written after it, and in office's /16.
    const denied = explain(office, "10.20.99.200");
    assert.deepEqual(denied.deny, { rule: "10.20.99.128/25", cidr: "10.20.99.128/25" });
    assert.deepEqual(denied.allow, { rule: "office", cidr: "10.20.0.0/16" }, "later steps are evaluated too");
  });

  test("IPv6: acl ranges and CIDRs of either family", () => {
    assert.deepEqual(explain(office, "2001:db8:42::1").allow, { rule: "office", cidr: "2001:db8:42::/48" });
    assert.equal(explain(office, "2001:db8:42::1").admitted, true);
    const denied = explain(office, "2001:db8:42:66::9");
    assert.equal(denied.refusedBy, "deny");
    assert.deepEqual(denied.deny, { rule: "2001:db8:42:66::/64", cidr: "2001:db8:42:66::/64" });
    assert.equal(explain(office, "2001:db8:43::1").refusedBy, "allow");
  });

  test("IPv4-mapped IPv6 is explained as the IPv4 address it carries, in either spelling", () => {
    for (const text of ["::ffff:10.20.99.7", "::ffff:a14:6307", "::FFFF:10.20.99.7"]) {
      const parsed = address(text);
      assert.equal(parsed.mapped, true, text);
      assert.equal(parsed.client.text, "10.20.99.7", text);
      assert.deepEqual(explain(office, text).deny, { rule: "quarantine", cidr: "10.20.99.0/24" }, text);
    }
    assert.equal(address("10.20.99.7").mapped, false);
    assert.equal(address("::a14:6307").mapped, false, "IPv4-compatible is not IPv4-mapped");
  });

  test("no lists: everyone is admitted, and the answer says there was no allow list", () => {
    const open = explain(listener({}), "192.0.2.1");
    assert.deepEqual(
      { ...open },
      {
        listener: "db",
        admitted: true,
        refusedBy: undefined,
        deny: undefined,
        allow: undefined,
        allowList: false,
        schedule: undefined,
      },
    );
  });
});

describe("explain: schedule windows and the next opening", () => {
  const night = listener({
    schedule: { timezone: "Europe/Berlin", windows: [{ days: ["fri"], from: "22:00", to: "06:00" }] },
  });

  test("a window crossing midnight in a named zone admits its early morning the next day", () => {
    // Saturday 2026-11-28 05:30 in Berlin (CET, +01:00): inside Friday's 22:00-06:00.
    const inside = explain(night, "192.0.2.1", "2026-11-28T05:30:00+01:00");
    assert.equal(inside.admitted, true);
    assert.deepEqual(inside.schedule, {
      open: true,
      timezone: "Europe/Berlin",
      window: { index: 0, window: { days: ["fri"], from: "22:00", to: "06:00" } },
    });
    // 06:00 is the end (exclusive): the next opening is Friday 22:00, six days on.
    const after = explain(night, "192.0.2.1", "2026-11-28T06:00:00+01:00");
    assert.equal(after.refusedBy, "schedule");
    assert.ok(after.schedule && !after.schedule.open);
    assert.equal(formatInZone(after.schedule.nextOpen as number, "Europe/Berlin"), "2026-12-04T22:00:00+01:00");
    // The same instant written in UTC is the same answer.
    assert.deepEqual(explain(night, "192.0.2.1", "2026-11-28T05:00:00Z"), after);
  });

  test("--at around a DST change: the clock jumping into a window opens it at the jump", () => {
    // Berlin, 2026-03-29: 02:00 CET jumps to 03:00 CEST at 01:00 UTC.
    const jump = listener({
      schedule: { timezone: "Europe/Berlin", windows: [{ days: ["sun"], from: "02:30", to: "04:00" }] },
    });
    const before = explain(jump, "192.0.2.1", "2026-03-29T01:30:00+01:00");
    assert.ok(before.schedule && !before.schedule.open);
    assert.equal(formatInZone(before.schedule.nextOpen as number, "Europe/Berlin"), "2026-03-29T03:00:00+02:00");
    assert.equal(explain(jump, "192.0.2.1", "2026-03-29T03:00:00+02:00").admitted, true);
    assert.equal(explain(jump, "192.0.2.1", "2026-03-29T00:59:00Z").admitted, false);
  });

  test("--at around a DST change: a window in the skipped hour opens next week; the repeated hour twice", () => {
    // New York, 2026-03-08: 02:00 EST jumps to 03:00 EDT, so 02:00-03:00 does not happen.
    const skipped = listener({
      schedule: { timezone: "America/New_York", windows: [{ days: ["sun"], from: "02:00", to: "03:00" }] },
    });
    const answer = explain(skipped, "192.0.2.1", "2026-03-08T01:59:00-05:00");
    assert.ok(answer.schedule && !answer.schedule.open);
    assert.equal(formatInZone(answer.schedule.nextOpen as number, "America/New_York"), "2026-03-15T02:00:00-04:00");
    // 2026-11-01: 01:00-02:00 happens in EDT, then again in EST.
    const repeated = listener({
      schedule: { timezone: "America/New_York", windows: [{ days: ["sun"], from: "01:00", to: "02:00" }] },
    });
    const between = explain(repeated, "192.0.2.1", "2026-11-01T01:30:00-04:00");
    assert.equal(between.admitted, true);
    assert.equal(explain(repeated, "192.0.2.1", "2026-11-01T01:30:00-05:00").admitted, true);
    const afterBoth = explain(repeated, "192.0.2.1", "2026-11-01T02:00:00-05:00");
    assert.ok(afterBoth.schedule && !afterBoth.schedule.open);
    assert.equal(formatInZone(afterBoth.schedule.nextOpen as number, "America/New_York"), "2026-11-08T01:00:00-05:00");
  });

  test("a window that never admits anyone has no next opening", () => {
    const never = listener({
      schedule: { timezone: "UTC", windows: [{ days: undefined, from: "24:00", to: "00:00" }] },
    });
    const answer = explain(never, "192.0.2.1");
    assert.ok(answer.schedule && !answer.schedule.open);
    assert.equal(answer.schedule.nextOpen, undefined);
  });

  test("windows are described as an operator writes them", () => {
    assert.equal(
      describeWindow({ days: ["mon", "tue", "wed", "thu", "fri"], from: "07:00", to: "19:00" }),
      "mon-fri 07:00-19:00",
    );
    assert.equal(
      describeWindow({ days: ["mon", "tue", "sat"], from: "22:00", to: "06:00" }),
      "mon,tue,sat 22:00-06:00",
    );
    assert.equal(describeWindow({ days: undefined, from: "00:00", to: "24:00" }), "every day 00:00-24:00");
  });
});

describe("explain: reading the address and the time", () => {
  test("bad addresses are refused with the reason", () => {
    for (const [text, why] of [
      ["010.1.2.3", /leading zero/],
      ["10.1.2", /3 parts/],
      ["10.0.0.0/8", /a range/],
      ["fe80::1%eth0", /zone ids/],
      ["db.example.com", /not an IP address/],
      ["", /not an IP address/],
    ] as const) {
      const parsed = parseExplainedAddress(text);
      assert.ok(!parsed.ok, text);
      assert.match(parsed.error, why, text);
    }
  });

  test("times need a UTC offset and must exist", () => {
    assert.equal(instant("2026-03-29T02:30:00+01:00"), Date.UTC(2026, 2, 29, 1, 30));
    assert.equal(instant("2026-03-29T01:30Z"), Date.UTC(2026, 2, 29, 1, 30));
    assert.equal(instant("2024-02-29T12:00:00.250-05:30"), Date.UTC(2024, 1, 29, 17, 30, 0, 250));
    for (const [text, why] of [
      ["2026-03-29T02:30", /no UTC offset/],
      ["2026-03-29T02:30:00", /no UTC offset/],
      ["2026-02-29T00:00Z", /no such day/],
      ["2026-13-01T00:00Z", /no such month/],
      ["2026-03-29T24:00Z", /no such time/],
      ["2026-03-29T12:00+19:00", /no such UTC offset/],
      ["tomorrow", /not an ISO 8601 time/],
      ["2026-03-29", /not an ISO 8601 time/],
    ] as const) {
      const parsed = parseInstant(text);
      assert.ok(!parsed.ok, text);
      assert.match(parsed.error, why, text);
    }
  });
});

// --- explain and admission agree ------------------------------------------------------

const DAYS: Day[] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"];
const clock = (minute: number) =>
  minute === 1440
    ? "24:00"
    : `${String(Math.floor(minute / 60)).padStart(2, "0")}:${String(minute % 60).padStart(2, "0")}`;

/** Small ranges inside 10.0.0.0/16 and 2001:db8::/112, so random clients often match them. */
const v4Cidr = fc.tuple(fc.nat(0xffff), fc.integer({ min: 16, max: 32 })).map(([low, prefix]) => {
  const host = 32 - prefix;
  const base = ((low >>> host) << host) & 0xffff;
  return `10.0.${base >> 8}.${base & 255}/${prefix}`;
});
const v6Cidr = fc.tuple(fc.nat(0xffff), fc.integer({ min: 112, max: 128 })).map(([low, prefix]) => {
  const kept = prefix === 128 ? low : (low >> (128 - prefix)) << (128 - prefix);
  return `2001:db8::${kept.toString(16)}/${prefix}`;
});
const entry = fc.oneof(
  fc.oneof(v4Cidr, v6Cidr).map(cidr),
  fc.array(fc.oneof(v4Cidr, v6Cidr), { minLength: 1, maxLength: 3 }).map((cidrs) => rule("acl", cidrs)),
);
const ruleList = fc.array(entry, { maxLength: 5 });
const windowArb: fc.Arbitrary<ScheduleWindow> = fc.record({
  days: fc.option(fc.subarray(DAYS, { minLength: 1 }), { nil: undefined }),
  from: fc.integer({ min: 0, max: 1439 }).map(clock),
  to: fc.integer({ min: 0, max: 1440 }).map(clock),
});
const scheduleArb = fc.option(
  fc.record({ timezone: fc.constantFrom(...ZONES), windows: fc.array(windowArb, { minLength: 1, maxLength: 3 }) }),
  { nil: undefined },
);
const clientArb = fc.oneof(
  fc.tuple(fc.nat(255), fc.nat(255)).map(([c, d]) => `10.0.${c}.${d}`),
  fc.tuple(fc.nat(255), fc.nat(255)).map(([c, d]) => `::ffff:10.0.${c}.${d}`),
  fc.nat(0xffff).map((low) => `2001:db8::${low.toString(16)}`),
);
// 2026 and 2027, DST changes included.
const atArb = fc.integer({ min: Date.UTC(2026, 0, 1), max: Date.UTC(2028, 0, 1) });

describe("explain agrees with admission", () => {
  test("same verdict and entry as compilePolicy().decide; the next opening is the first open minute", () => {
    fc.assert(
      fc.property(
        ruleList,
        ruleList,
        scheduleArb,
        clientArb,
        atArb,
        (allow: Rule[], deny: Rule[], schedule, clientText, at) => {
          const config = listener({ allow, deny, schedule });
          const client = address(clientText).client;
          const answer = explainListener(config, client, at);
          const policy = compilePolicy(config);
          const decision = policy.decide(client, at, { total: 0, fromClient: 0 });
          assert.equal(answer.admitted, decision.admit);
          assert.equal(answer.refusedBy, decision.admit ? undefined : decision.reason);
          const decided = decision.entry && { rule: decision.entry.rule, cidr: decision.entry.cidr };
          if (decision.entry?.list === "deny") assert.deepEqual(answer.deny, decided);
          if (decision.entry?.list === "allow") assert.deepEqual(answer.allow, decided);
          if (!answer.schedule) return;
          const s = compileSchedule(schedule?.timezone, schedule?.windows ?? []);
          assert.equal(answer.schedule.open, s.isOpen(at));
          if (answer.schedule.open || answer.schedule.nextOpen === undefined) return;
          const next = answer.schedule.nextOpen;
          assert.ok(next > at, "opens later");
          assert.equal(s.isOpen(next), true, "open at the next opening");
          assert.equal(s.isOpen(next - 60_000), false, "closed the minute before");
        },
      ),
      { numRuns: 1500 },
    );
  });

  test("the next opening is the first open minute, checked minute by minute across DST changes", () => {
    // Instants near the 2026 DST changes of the zones (±4 days), where a jump matters.
    const changes = [
      Date.UTC(2026, 2, 29, 1),
      Date.UTC(2026, 9, 25, 1),
      Date.UTC(2026, 2, 8, 7),
      Date.UTC(2026, 3, 5, 15),
    ];
    fc.assert(
      fc.property(
        fc.constantFrom(...ZONES),
        fc.array(windowArb, { minLength: 1, maxLength: 2 }),
        fc.constantFrom(...changes),
        fc.integer({ min: -4 * 1440, max: 1440 }),
        (zone, windows, change, offsetMinutes) => {
          const s = compileSchedule(zone, windows);
          const from = change + offsetMinutes * 60_000;
          const next = s.nextOpening(from);
          // The reference: walk minute by minute, up to eight days.
          let expected: number | undefined;
          for (let m = 0; m <= 8 * 1440 && expected === undefined; m++) {
            const t = m === 0 ? from : (Math.floor(from / 60_000) + m) * 60_000;
            if (s.isOpen(t)) expected = t;
          }
          if (expected !== undefined) assert.equal(next, expected);
          else assert.ok(next === undefined || next > from + 8 * 1440 * 60_000);
        },
      ),
      { numRuns: 60 },
    );
  });
});
