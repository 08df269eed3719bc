// A config value as an operator wrote it, for "old → new" lines: durations as "5s",
// lists as their entries, nothing as "none".
import { formatDuration } from "../config/duration.ts";

export function describeValue(key: string, value: unknown): string | string[] {
  if (value === undefined || value === null) return "none";
  if (key.endsWith("Ms") && typeof value === "number") return formatDuration(value);
  switch (key) {
    case "targets":
      return (value as { key: string; weight: number }[]).map((t) =>
        t.weight === 1 ? t.key : `${t.key} weight ${t.weight}`,
      );
    case "allow":
    case "deny":
      return (value as { source: string }[]).map((r) => r.source);
    case "schedule": {
      const s = value as { timezone?: string; windows: { days?: string[]; from: string; to: string }[] };
      const windows = s.windows.map((w) => `${w.days?.join(",") ?? "every day"} ${w.from}-${w.to}`);
      return `${windows.join("; ")}${s.timezone ? ` (${s.timezone})` : ""}`;
    }
    case "healthCheck": {
      const h = value as { intervalMs: number; timeoutMs: number; fall: number; rise: number };
      return `interval ${formatDuration(h.intervalMs)}, timeout ${formatDuration(h.timeoutMs)}, fall ${h.fall}, rise ${h.rise}`;
    }
    case "admin": {
      const a = value as { listenKey: string; allow: { source: string }[] };
      return a.allow.length > 0 ? `${a.listenKey} (allow ${a.allow.map((r) => r.source).join(", ")})` : a.listenKey;
    }
  }
  return typeof value === "object" ? JSON.stringify(value) : String(value);
}
