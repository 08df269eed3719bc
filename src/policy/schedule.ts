// Time windows, evaluated on the local wall clock of the schedule's zone. The clock is
// an argument: this module never reads the time itself.
import type { Day, ScheduleWindow } from "../config/runtime.ts";

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
}

interface CompiledWindow {
  /** days[d] is true when the window starts on weekday d. */
  readonly days: readonly boolean[];
  readonly from: number;
  readonly to: number;
}

export function minutesOf(clock: string): number {
  const [h, m] = clock.split(":").map(Number);
  return (h ?? 0) * 60 + (m ?? 0);
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
  const yesterday = (at.day + 6) % 7;
  return windows.some((w) => {
    if (w.from < w.to) return (w.days[at.day] ?? false) && at.minute >= w.from && at.minute < w.to;
    return ((w.days[at.day] ?? false) && at.minute >= w.from) || ((w.days[yesterday] ?? false) && at.minute < w.to);
  });
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
  };
}
