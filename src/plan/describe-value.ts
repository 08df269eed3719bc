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
      // An acl's name alone would hide a change of what it holds: show its ranges too.
      return (value as { source: string; cidrs: { text: string }[] }[]).map((r) => {
        const ranges = r.cidrs.map((c) => c.text);
        return ranges.length === 1 && (ranges[0] === r.source || ranges[0]?.startsWith(`${r.source}/`))
          ? r.source
          : `${r.source} [${ranges.join(" ")}]`;
      });
    case "schedule": {
      const s = value as { timezone?: string; windows: { days?: string[]; from: string; to: string }[] };
      const windows = s.windows.map((w) => `${w.days?.join(",") ?? "every day"} ${w.from}-${w.to}`);
      return `${windows.join("; ")}${s.timezone ? ` (${s.timezone})` : ""}`;
    }
    case "healthCheck": {
      const h = value as { intervalMs: number; timeoutMs: number; fall: number; rise: number };
      return `interval ${formatDuration(h.intervalMs)}, timeout ${formatDuration(h.timeoutMs)}, fall ${h.fall}, rise ${h.rise}`;
    }
    case "filter": {
      // The module's content is part of the value: a changed file is a changed filter.
      const f = value as { module: string; options?: unknown; loaded?: { sha256: string } };
      const options = f.options === undefined ? "" : ` options ${JSON.stringify(f.options)}`;
      return `${f.module}${f.loaded ? ` (sha256 ${f.loaded.sha256.slice(0, 12)})` : ""}${options}`;
    }
    case "admin": {
      // A Unix socket's mode is who may use it: a change of mode alone must show.
      const a = value as { listenKey: string; allow: { source: string }[]; mode: number };
      const about = [
        a.listenKey.startsWith("unix:") ? `mode ${a.mode.toString(8).padStart(4, "0")}` : "",
        a.allow.length > 0 ? `allow ${a.allow.map((r) => r.source).join(", ")}` : "",
      ].filter(Boolean);
      return about.length > 0 ? `${a.listenKey} (${about.join("; ")})` : a.listenKey;
    }
  }
  return typeof value === "object" ? JSON.stringify(value) : String(value);
}
