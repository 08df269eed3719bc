// Schedule windows relative to now, for tests that need a window that is open (or not)
// while they run, in UTC or in a zone at a fixed offset from it.

const DAY_NAMES = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"] as const;

export const hhmm = (minute: number) =>
  `${String(Math.floor(minute / 60)).padStart(2, "0")}:${String(minute % 60).padStart(2, "0")}`;

/**
 * A window lengthMin long, starting startMin from now on the wall clock of a zone that is
 * always zoneOffsetMin from UTC, as a YAML list item under `windows:` (indented for a
 * listener's `schedule:`). The start is rounded down to its minute. It is listed under the
 * day it starts on; when it runs past midnight it is written as a window that crosses
 * midnight, which belongs to that day.
 */
export function windowFromNow(nowMs: number, zoneOffsetMin: number, startMin: number, lengthMin: number): string {
  const start = new Date(nowMs + (zoneOffsetMin + startMin) * 60_000);
  const from = start.getUTCHours() * 60 + start.getUTCMinutes();
  const end = from + lengthMin;
  const to = end === 1440 ? "24:00" : hhmm(end % 1440);
  return `        - days: [${DAY_NAMES[start.getUTCDay()]}]\n          from: "${hhmm(from)}"\n          to: "${to}"`;
}
