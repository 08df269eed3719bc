// Warnings about a valid config: settings that do nothing, or not what they seem to.
// `--check` prints them, one line each with the file's line; `--check --strict` fails on
// any. Pure: the normalised config for what each setting means, the YAML source for
// where it is written.
import { type Cidr, ipv4Range } from "./address.ts";
import type { ListenerConfig, Rule, RuntimeConfig, ScheduleWindow } from "./runtime.ts";
import { DAYS, minutesOf } from "./schema.ts";
import { byPlace, formatPath, type KeyPath, type YamlSource } from "./yaml-source.ts";

export interface LintFinding {
  readonly path: KeyPath;
  readonly message: string;
}

/** "proxy.yaml:14:7: warning: listeners[0].allow[2]: …", in the order of the file. */
export function lint(config: RuntimeConfig, source: YamlSource): string[] {
  const lines = lintFindings(config, source.data).map((f) => {
    const where = source.position(f.path);
    return { where, text: `${where}: warning: ${formatPath(f.path)}: ${f.message}` };
  });
  lines.sort((a, b) => byPlace(a.where, b.where));
  return [...new Set(lines.map((l) => l.text))];
}

/** raw: the file's data as parsed, to tell a listener's own key from one it inherits. */
export function lintFindings(config: RuntimeConfig, raw: unknown): LintFinding[] {
  return config.listeners.flatMap((l, i) => {
    const own = rawListener(raw, i);
    const at = (key: string): KeyPath => (own && key in own ? ["listeners", i, key] : ["defaults", key]);
    // One list from defaults and the other the listener's own: the finding holds for this listener only.
    const mixed = at("allow")[0] !== at("deny")[0];
    return [
      ...listFindings(l.allow, "allow", at("allow")),
      ...listFindings(l.deny, "deny", at("deny")),
      ...allowDenyFindings(l, at("allow"), at("deny")).map((f) =>
        mixed ? { ...f, message: `listener "${l.name}": ${f.message}` } : f,
      ),
      ...(l.schedule ? windowFindings(l.schedule.windows, [...at("schedule"), "windows"]) : []),
      ...limitFindings(l, at),
    ];
  });
}

function rawListener(raw: unknown, index: number): Record<string, unknown> | undefined {
  const listeners = (raw as { listeners?: unknown } | undefined)?.listeners;
  const item = Array.isArray(listeners) ? listeners[index] : undefined;
  return item !== null && typeof item === "object" ? (item as Record<string, unknown>) : undefined;
}

// --- address ranges ------------------------------------------------------------------

/** A range as clients are matched against it: IPv4-mapped entries as the IPv4 range inside. */
interface Range {
  readonly family: 4 | 6;
  readonly network: bigint;
  readonly prefix: number;
}

function rangeOf(cidr: Cidr): Range {
  const v4 = ipv4Range(cidr);
  if (v4) return { family: 4, network: BigInt(v4.address), prefix: v4.prefix };
  const bytes = cidr.address.toByteArray();
  return { family: 6, network: bytes.reduce((n, b) => (n << 8n) | BigInt(b), 0n), prefix: cidr.prefix };
}

/** outer holds every address of inner. */
function contains(outer: Range, inner: Range): boolean {
  if (outer.family !== inner.family || outer.prefix > inner.prefix) return false;
  const shift = BigInt((outer.family === 4 ? 32 : 128) - outer.prefix);
  return outer.network >> shift === inner.network >> shift;
}

/** Two CIDR ranges share an address only when one holds the other. */
const overlaps = (a: Range, b: Range) => contains(a, b) || contains(b, a);

interface Entry {
  readonly index: number;
  readonly source: string;
  readonly ranges: readonly Range[];
}

const entriesOf = (rules: readonly Rule[]): Entry[] =>
  rules.map((r, index) => ({ index, source: r.source, ranges: r.cidrs.map(rangeOf) }));

/** `"office" (allow[2])`: the entry as written, and where in its list. */
const named = (list: string, e: Entry) => `"${e.source}" (${list}[${e.index}])`;

/**
 * The entries of `among` that hold each range of `ranges` between them, or undefined
 * when some range is in none. `counts(candidate, range)` says whether a holder counts.
 */
function coveredBy(
  ranges: readonly Range[],
  among: readonly Entry[],
  counts: (holder: Entry, outer: Range, inner: Range) => boolean,
): Entry[] | undefined {
  const holders = new Set<Entry>();
  for (const range of ranges) {
    const holder = among.find((e) => e.ranges.some((outer) => contains(outer, range) && counts(e, outer, range)));
    if (!holder) return undefined;
    holders.add(holder);
  }
  return [...holders];
}

// --- the checks ------------------------------------------------------------------------

/**
 * Entries that change no decision: each range is inside a broader entry of the same list,
 * or the same range written earlier. Equal ranges flag only the later entry, so removing
 * every flagged entry at once changes nothing either.
 */
function listFindings(rules: readonly Rule[], list: "allow" | "deny", path: KeyPath): LintFinding[] {
  const entries = entriesOf(rules);
  if (list === "allow" && entries.length > 0 && entries.every((e) => e.ranges.length === 0)) {
    return [{ path, message: "the allow list holds no address (only empty acls): every client is refused" }];
  }
  return entries.flatMap((e): LintFinding[] => {
    const at = [...path, e.index];
    if (e.ranges.length === 0) return [{ path: at, message: `"${e.source}" changes no decision: the acl is empty` }];
    const first = entries.find((other) => other.index < e.index && other.source === e.source);
    if (first) return [{ path: at, message: `"${e.source}" changes no decision: it repeats ${named(list, first)}` }];
    const broader = coveredBy(
      e.ranges,
      entries.filter((other) => other !== e),
      (holder, outer, inner) => outer.prefix < inner.prefix || holder.index < e.index,
    );
    if (!broader) return [];
    const inside = broader.map((b) => named(list, b)).join(" and ");
    return [{ path: at, message: `"${e.source}" changes no decision: it is inside ${inside}` }];
  });
}

function allowDenyFindings(l: ListenerConfig, allowPath: KeyPath, denyPath: KeyPath): LintFinding[] {
  const allow = entriesOf(l.allow);
  const deny = entriesOf(l.deny);
  const findings: LintFinding[] = [];
  for (const a of allow) {
    if (a.ranges.length === 0) continue;
    const denied = coveredBy(a.ranges, deny, () => true);
    if (denied) {
      findings.push({
        path: [...allowPath, a.index],
        message: `"${a.source}" can never admit anyone: it is inside deny entry ${denied.map((d) => named("deny", d)).join(" and ")}`,
      });
    }
  }
  const allowed = allow.flatMap((a) => a.ranges);
  if (allowed.length === 0) return findings;
  for (const d of deny) {
    if (d.ranges.length > 0 && !d.ranges.some((r) => allowed.some((a) => overlaps(r, a)))) {
      findings.push({
        path: [...denyPath, d.index],
        message: `"${d.source}" cannot match any allowed client: no allow entry overlaps it (allow already refuses them)`,
      });
    }
  }
  return findings;
}

const WEEK = 7 * 1440;

/** The minutes of the week a window admits, as [start, end) spans (end may pass the week's end). */
function spans(w: ScheduleWindow): [number, number][] {
  const from = minutesOf(w.from);
  const to = minutesOf(w.to);
  const length = from < to ? to - from : 1440 - from + to;
  return DAYS.flatMap((day, d): [number, number][] =>
    w.days === undefined || w.days.includes(day) ? [[d * 1440 + from, d * 1440 + from + length]] : [],
  );
}

/** The first minute of the week two windows both admit, if any. */
function firstShared(a: ScheduleWindow, b: ScheduleWindow): number | undefined {
  let first: number | undefined;
  for (const [s1, e1] of spans(a)) {
    for (const [s2, e2] of spans(b)) {
      // Spans past the week's end wrap to its start: compare each with the other shifted a week.
      for (const shift of [-WEEK, 0, WEEK]) {
        const start = Math.max(s1, s2 + shift);
        if (start < Math.min(e1, e2 + shift)) {
          const minute = ((start % WEEK) + WEEK) % WEEK;
          if (first === undefined || minute < first) first = minute;
        }
      }
    }
  }
  return first;
}

const clockOf = (minute: number) =>
  `${DAYS[Math.floor(minute / 1440)]} ${String(Math.floor((minute % 1440) / 60)).padStart(2, "0")}:${String(minute % 60).padStart(2, "0")}`;

function windowFindings(windows: readonly ScheduleWindow[], path: KeyPath): LintFinding[] {
  return windows.flatMap((w, k): LintFinding[] => {
    const at = [...path, k];
    if (w.from === "24:00" && w.to === "00:00")
      return [{ path: at, message: "the window is empty: it admits no minute" }];
    if (w.from === w.to) {
      return [
        {
          path: at,
          message: `from and to are both "${w.from}": read as 24 hours from ${w.from}, crossing midnight; write "00:00" to "24:00" for whole days`,
        },
      ];
    }
    for (let j = 0; j < k; j++) {
      const other = windows[j];
      const shared = other && firstShared(other, w);
      if (shared !== undefined) {
        return [{ path: at, message: `overlaps windows[${j}] (both admit ${clockOf(shared)}, for one)` }];
      }
    }
    return [];
  });
}

function limitFindings(l: ListenerConfig, at: (key: string) => KeyPath): LintFinding[] {
  const { maxConnections, maxConnectionsPerClient } = l;
  if (maxConnections === undefined || maxConnectionsPerClient === undefined) return [];
  if (maxConnectionsPerClient <= maxConnections) return [];
  return [
    {
      path: at("maxConnectionsPerClient"),
      message: `listener "${l.name}": maxConnectionsPerClient ${maxConnectionsPerClient} is above its maxConnections ${maxConnections}, so it never limits anyone`,
    },
  ];
}
