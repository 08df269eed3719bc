// What a reload must do to turn the running config into the new one, as data: listeners
// are matched by name, and each change is named so it can be logged and checked.
import type { ListenerConfig, RuntimeConfig } from "./runtime.ts";

export interface Rebind {
  readonly config: ListenerConfig;
  readonly from: string;
  readonly to: string;
  /** Other keys that changed along with the address. */
  readonly changed: readonly string[];
}

export interface Update {
  readonly config: ListenerConfig;
  /** Keys of the listener whose value changed, e.g. ["targets", "idleTimeoutMs"]. */
  readonly changed: readonly string[];
}

export interface ReloadPlan {
  readonly add: readonly ListenerConfig[];
  readonly remove: readonly ListenerConfig[];
  /** Listen address changed; may also carry other changes. */
  readonly rebind: readonly Rebind[];
  /** Same address, other settings changed: applied in place. */
  readonly update: readonly Update[];
  readonly unchanged: readonly string[];
  /** Top-level settings that changed (logLevel, shutdownTimeoutMs, admin). */
  readonly settings: readonly string[];
}

export function diff(current: RuntimeConfig, next: RuntimeConfig): ReloadPlan {
  const before = new Map(current.listeners.map((l) => [l.name, l]));
  const after = new Set(next.listeners.map((l) => l.name));
  const add: ListenerConfig[] = [];
  const rebind: Rebind[] = [];
  const update: Update[] = [];
  const unchanged: string[] = [];
  for (const config of next.listeners) {
    const old = before.get(config.name);
    if (!old) {
      add.push(config);
    } else if (old.listenKey !== config.listenKey) {
      rebind.push({ config, from: old.listenKey, to: config.listenKey, changed: changedKeys(old, config) });
    } else {
      const changed = changedKeys(old, config);
      if (changed.length > 0) update.push({ config, changed });
      else unchanged.push(config.name);
    }
  }
  const remove = current.listeners.filter((l) => !after.has(l.name));
  const settings = (["logLevel", "shutdownTimeoutMs", "admin", "workers"] as const).filter(
    (k) => !sameValue(current[k], next[k]),
  );
  return { add, remove, rebind, update, unchanged, settings };
}

export function isEmptyPlan(plan: ReloadPlan): boolean {
  return plan.add.length + plan.remove.length + plan.rebind.length + plan.update.length + plan.settings.length === 0;
}

function changedKeys(a: ListenerConfig, b: ListenerConfig): string[] {
  return (Object.keys(b) as (keyof ListenerConfig)[]).filter(
    (key) => key !== "listen" && key !== "listenKey" && !sameValue(a[key], b[key]),
  );
}

/** Normalised configs hold plain data (and ipaddr.js objects, which serialise by value). */
function sameValue(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** One line per change, for the log: "listener db: allow changed". */
export function describePlan(plan: ReloadPlan): string[] {
  const key = (k: string) => k.replace(/Ms$/, "");
  const changes = (keys: readonly string[]) => `${keys.map(key).join(", ")} changed`;
  return [
    ...plan.add.map((l) => `listener ${l.name}: added on ${l.listenKey}`),
    ...plan.rebind.map(
      (r) =>
        `listener ${r.config.name}: rebound ${r.from} → ${r.to}${r.changed.length ? `; ${changes(r.changed)}` : ""}`,
    ),
    ...plan.update.map((u) => `listener ${u.config.name}: ${changes(u.changed)}`),
    ...plan.remove.map((l) => `listener ${l.name}: removed (open bridges carry on)`),
    ...plan.settings.map((s) => `${key(s)} changed`),
  ];
}
