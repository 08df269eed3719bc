// Time windows, evaluated on the local wall clock of the schedule's zone. The clock is
// an argument: this module never reads the time itself.
import type { Day, ScheduleWindow } from "../config/runtime.ts";
import { minutesOf } from "../config/schema.ts";

const WEEKDAYS: readonly Day[] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const SHORT_NAMES: Record<string, number> = { Mon: 0, Tue: 1, Wed: 2, Thu: 3, Fri: 4, Sat: 5, Sun: 6 };

export interface WallClock {
  /** 0 = Monday … 6 = Sunday. */
  readonly day: number;
  /** Minutes since local midnight, 0 … 1439. */
  readonly minute: number;
}

export interface Schedule {
  isOpen(nowMs: number): boolean;
  /** The position of the first window that admits at nowMs, if any. */
  windowAt(nowMs: number): number | undefined;
  /**
   * The first instant at or after fromMs at which a window admits (a minute boundary,
   * or fromMs itself when one admits then); undefined when none opens within a year.
   */
  nextOpening(fromMs: number): number | undefined;
}

const MINUTES_A_WEEK = 7 * 1440;

export interface CompiledWindow {
  /** days[d] is true when the window starts on weekday d. */
  readonly days: readonly boolean[];
  readonly from: number;
  readonly to: number;
}

export function compileWindows(windows: readonly ScheduleWindow[]): CompiledWindow[] {
  return windows.map((w) => ({
    days: WEEKDAYS.map((d) => w.days === undefined || w.days.includes(d)),
    from: minutesOf(w.from),
    to: minutesOf(w.to),
  }));
}

/**
 * A window admits [from, to) on each of its days. One whose end is not after its start
 * crosses midnight, and its early-morning part belongs to the day it started: a Friday
 * 22:00–06:00 window admits Saturday 05:00.
 */
export function windowsAdmit(windows: readonly CompiledWindow[], at: WallClock): boolean {
  return admittingWindow(windows, at) !== undefined;
}

/** The position of the first window that admits at this wall-clock time, if any. */
export function admittingWindow(windows: readonly CompiledWindow[], at: WallClock): number | undefined {
  const yesterday = (at.day + 6) % 7;
  const index = windows.findIndex((w) => {
    if (w.from < w.to) return (w.days[at.day] ?? false) && at.minute >= w.from && at.minute < w.to;
    return ((w.days[at.day] ?? false) && at.minute >= w.from) || ((w.days[yesterday] ?? false) && at.minute < w.to);
  });
  return index < 0 ? undefined : index;
}

/**
 * Wall-clock minutes from `at` to the next start of a window (a listed day at its
 * `from`), 1 … 10080; undefined without windows. Only a start can open a closed
 * schedule: a window's early-morning part continues an evening that was already open.
 */
export function minutesToNextStart(windows: readonly CompiledWindow[], at: WallClock): number | undefined {
  const now = at.day * 1440 + at.minute;
  let best: number | undefined;
  for (const w of windows) {
    w.days.forEach((listed, day) => {
      if (!listed) return;
      const wait = (((day * 1440 + w.from - now) % MINUTES_A_WEEK) + MINUTES_A_WEEK) % MINUTES_A_WEEK || MINUTES_A_WEEK;
      if (best === undefined || wait < best) best = wait;
    });
  }
  return best;
}

/**
 * The first epoch minute at or after `from` at which a window admits. The wall clock
 * runs with the epoch except where the zone's offset changes (DST): the search jumps to
 * the next start assuming no change, and when the offset did change on the way, goes
 * back to the first minute of the new offset (found by bisection) and looks again from
 * there, so a clock that jumps into a window opens it at the jump.
 */
export function nextOpeningMinute(
  windows: readonly CompiledWindow[],
  read: (epochMinute: number) => WallClock,
  from: number,
  limit = 53 * MINUTES_A_WEEK,
): number | undefined {
  let minute = from;
  // Each step moves to a later start (or DST change), so a year has a bounded number of them.
  for (let step = 0; step < 5000 && minute - from <= limit; step++) {
    const clock = read(minute);
    if (admittingWindow(windows, clock) !== undefined) return minute;
    const wait = minutesToNextStart(windows, clock);
    if (wait === undefined) return undefined;
    const sameOffset = (m: number) => {
      const c = read(m);
      const walked = c.day * 1440 + c.minute - (clock.day * 1440 + clock.minute);
      return (((walked - (m - minute)) % MINUTES_A_WEEK) + MINUTES_A_WEEK) % MINUTES_A_WEEK === 0;
    };
    let next = minute + wait;
    if (!sameOffset(next)) {
      let before = minute;
      while (next - before > 1) {
        const middle = Math.floor((before + next) / 2);
        if (sameOffset(middle)) before = middle;
        else next = middle;
      }
    }
    minute = next;
  }
  return undefined;
}

/** The local weekday and minute in a zone, through Intl (DST rules included), no date library. */
export function wallClockReader(timeZone: string | undefined): (nowMs: number) => WallClock {
  const format = new Intl.DateTimeFormat("en-US", {
    timeZone,
    hourCycle: "h23",
    weekday: "short",
    hour: "2-digit",
    minute: "2-digit",
  });
  return (nowMs) => {
    let day = 0;
    let hour = 0;
    let minute = 0;
    for (const part of format.formatToParts(nowMs)) {
      if (part.type === "weekday") day = SHORT_NAMES[part.value] ?? 0;
      else if (part.type === "hour") hour = Number(part.value);
      else if (part.type === "minute") minute = Number(part.value);
    }
    return { day, minute: hour * 60 + minute };
  };
}

export function compileSchedule(timezone: string | undefined, windows: readonly ScheduleWindow[]): Schedule {
  const compiled = compileWindows(windows);
  const read = wallClockReader(timezone);
  const readMinute = (epochMinute: number) => read(epochMinute * 60_000);
  // Every zone's offset is a whole number of minutes, so one answer holds for a whole
  // minute of epoch time: accepts in the same minute skip Intl entirely.
  let cachedMinute = Number.NaN;
  let cachedAnswer = false;
  return {
    isOpen(nowMs) {
      const epochMinute = Math.floor(nowMs / 60_000);
      if (epochMinute !== cachedMinute) {
        cachedMinute = epochMinute;
        cachedAnswer = windowsAdmit(compiled, read(nowMs));
      }
      return cachedAnswer;
    },
    windowAt: (nowMs) => admittingWindow(compiled, read(nowMs)),
    nextOpening(fromMs) {
      if (admittingWindow(compiled, read(fromMs)) !== undefined) return fromMs;
      // The minute of fromMs is closed: the search starts at the next one.
      const minute = nextOpeningMinute(compiled, readMinute, Math.floor(fromMs / 60_000) + 1);
      return minute === undefined ? undefined : minute * 60_000;
    },
  };
}
