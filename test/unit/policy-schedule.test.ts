import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import type { Day, ScheduleWindow } from "../../src/config/runtime.ts";
import { minutesOf } from "../../src/config/schema.ts";
import { compileSchedule, compileWindows, wallClockReader, windowsAdmit } from "../../src/policy/schedule.ts";

const DAYS: Day[] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const WEEK = 7 * 1440;

const clock = (minute: number) =>
  minute === 1440
    ? "24:00"
    : `${String(Math.floor(minute / 60)).padStart(2, "0")}:${String(minute % 60).padStart(2, "0")}`;

/** The reference: paint every admitted minute of the week, one by one. */
function paintWeek(windows: ScheduleWindow[]): Set<number> {
  const open = new Set<number>();
  windows.forEach((w) => {
    const from = minutesOf(w.from);
    const to = minutesOf(w.to);
    const length = to > from ? to - from : 1440 - from + to;
    DAYS.forEach((d, i) => {
      if (w.days && !w.days.includes(d)) return;
      for (let m = 0; m < length; m++) open.add((i * 1440 + from + m) % WEEK);
    });
  });
  return open;
}

const windowArb = fc.record({
  days: fc.option(fc.subarray(DAYS, { minLength: 1 }), { nil: undefined }),
  from: fc.integer({ min: 0, max: 1439 }).map(clock),
  to: fc.integer({ min: 0, max: 1440 }).map(clock),
});

describe("schedule windows", () => {
  test("agree with a minute-by-minute painting of the week, midnight crossings included", () => {
    fc.assert(
      fc.property(
        fc.array(windowArb, { minLength: 1, maxLength: 4 }),
        fc.integer({ min: 0, max: WEEK - 1 }),
        (windows, at) => {
          const painted = paintWeek(windows);
          const answer = windowsAdmit(compileWindows(windows), { day: Math.floor(at / 1440), minute: at % 1440 });
          assert.equal(answer, painted.has(at));
        },
      ),
      { numRuns: 3000 },
    );
  });

  test("a Friday 22:00-06:00 window admits Saturday 05:00 and not Saturday 06:00 or Friday 05:00", () => {
    const w = compileWindows([{ days: ["fri"], from: "22:00", to: "06:00" }]);
    assert.equal(windowsAdmit(w, { day: 5, minute: 5 * 60 }), true);
    assert.equal(windowsAdmit(w, { day: 5, minute: 6 * 60 }), false);
    assert.equal(windowsAdmit(w, { day: 4, minute: 5 * 60 }), false);
    assert.equal(windowsAdmit(w, { day: 4, minute: 22 * 60 }), true);
    assert.equal(windowsAdmit(w, { day: 4, minute: 21 * 60 + 59 }), false);
  });

  test("from is inclusive, to exclusive, 24:00 ends the day", () => {
    const w = compileWindows([{ days: undefined, from: "07:00", to: "24:00" }]);
    assert.equal(windowsAdmit(w, { day: 0, minute: 7 * 60 }), true);
    assert.equal(windowsAdmit(w, { day: 0, minute: 7 * 60 - 1 }), false);
    assert.equal(windowsAdmit(w, { day: 0, minute: 1439 }), true);
    assert.equal(windowsAdmit(w, { day: 1, minute: 0 }), false);
  });
});

describe("wall clock in a zone", () => {
  test("agrees with Intl's own rendering for random instants and zones", () => {
    const zones = [
      "UTC",
      "Europe/Berlin",
      "America/New_York",
      "Asia/Kolkata",
      "Australia/Lord_Howe",
      "Pacific/Chatham",
    ];
    fc.assert(
      fc.property(fc.constantFrom(...zones), fc.integer({ min: 0, max: 4_102_444_800_000 }), (zone, ms) => {
        const read = wallClockReader(zone);
        const text = new Date(ms).toLocaleString("en-GB", {
          timeZone: zone,
          weekday: "short",
          hour: "2-digit",
          minute: "2-digit",
          hourCycle: "h23",
        });
        const [weekday, time] = text.split(" ");
        const { day, minute } = read(ms);
        assert.equal(["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"][day], weekday);
        assert.equal(clock(minute), time);
      }),
      { numRuns: 500 },
    );
  });

  test("DST days in America/New_York: the skipped hour never opens, the repeated hour opens twice", () => {
    const skipped = compileSchedule("America/New_York", [{ days: ["sun"], from: "02:00", to: "03:00" }]);
    // 2026-03-08: 02:00 EST jumps to 03:00 EDT at 07:00 UTC.
    for (let m = 5 * 60; m < 9 * 60; m++) {
      assert.equal(skipped.isOpen(Date.UTC(2026, 2, 8, 0, m)), false, `minute ${m} UTC`);
    }
    const repeated = compileSchedule("America/New_York", [{ days: ["sun"], from: "01:00", to: "02:00" }]);
    // 2026-11-01: 01:00-02:00 happens at 05:00-06:00 UTC (EDT) and again at 06:00-07:00 UTC (EST).
    assert.equal(repeated.isOpen(Date.UTC(2026, 10, 1, 5, 30)), true);
    assert.equal(repeated.isOpen(Date.UTC(2026, 10, 1, 6, 30)), true);
    assert.equal(repeated.isOpen(Date.UTC(2026, 10, 1, 7, 0)), false);
    assert.equal(repeated.isOpen(Date.UTC(2026, 10, 1, 4, 59)), false);
  });

  test("DST days in Europe/Berlin: opening hours follow the local clock", () => {
    const office = compileSchedule("Europe/Berlin", [{ days: ["sun"], from: "07:00", to: "19:00" }]);
    // 2026-03-29 (CEST from 01:00 UTC): 07:00 local is 05:00 UTC.
    assert.equal(office.isOpen(Date.UTC(2026, 2, 29, 4, 59)), false);
    assert.equal(office.isOpen(Date.UTC(2026, 2, 29, 5, 0)), true);
    // 2026-10-25 (CET from 01:00 UTC): 07:00 local is 06:00 UTC.
    assert.equal(office.isOpen(Date.UTC(2026, 9, 25, 5, 59)), false);
    assert.equal(office.isOpen(Date.UTC(2026, 9, 25, 6, 0)), true);
    assert.equal(office.isOpen(Date.UTC(2026, 9, 25, 17, 59)), true);
    assert.equal(office.isOpen(Date.UTC(2026, 9, 25, 18, 0)), false);
  });
});
