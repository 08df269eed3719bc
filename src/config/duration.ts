// Durations are written as one number and a unit: 500ms, 5s, 15m, 8h, 1d.
import type { Parsed } from "./address.ts";

const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** Node's timers overflow above 2^31-1 ms (about 24.8 days) and fire at once. */
export const MAX_DURATION_MS = 2 ** 31 - 1;

export const DURATION_PATTERN = "^[0-9]+(ms|s|m|h|d)$";

export function parseDuration(text: string): Parsed<number> {
  const match = /^([0-9]+)(ms|s|m|h|d)$/.exec(text);
  if (!match) return { ok: false, error: `"${text}" is not a duration (e.g. 500ms, 5s, 15m, 8h, 1d)` };
  const ms = Number(match[1]) * UNIT_MS[match[2] as keyof typeof UNIT_MS];
  if (ms <= 0) return { ok: false, error: `"${text}": a duration must be more than zero` };
  if (ms > MAX_DURATION_MS) return { ok: false, error: `"${text}" is too long (at most 24d)` };
  return { ok: true, value: ms };
}

export function formatDuration(ms: number): string {
  for (const [unit, size] of [
    ["d", 86_400_000],
    ["h", 3_600_000],
    ["m", 60_000],
    ["s", 1000],
  ] as const) {
    if (ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}
