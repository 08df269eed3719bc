// What applying a new config would do, as data: the listener changes (config/diff.ts)
// and, for the bridges open now, which the new rules would no longer admit. Pure: the
// gateway hands in its open bridges and the time. A reload computes exactly this plan
// and then commits it, so `tcpgate plan` and the reload cannot disagree.
import { diff, type ReloadPlan } from "../config/diff.ts";
import type { ListenerConfig, RuntimeConfig } from "../config/runtime.ts";
import { parseClientAddress } from "../policy/address-match.ts";
import { compilePolicy } from "../policy/admission.ts";
import { describeValue } from "./describe-value.ts";

/** An open bridge as the planner sees it. */
export interface OpenBridge {
  /** Unique within the running process; lets the gateway find the bridge again. */
  readonly id: number;
  readonly listener: string;
  readonly client: string;
  readonly clientPort: number;
  /** The target it is joined to (or connecting to); undefined before one was picked. */
  readonly target: string | undefined;
  /** Epoch ms. */
  readonly startedAt: number;
  readonly bytesUp: number;
  readonly bytesDown: number;
  /** Its listener was removed by an earlier reload; it carries on until it ends. */
  readonly draining: boolean;
}

export interface AffectedBridge {
  readonly id: number;
  readonly listener: string;
  readonly client: string;
  readonly clientPort: number;
  readonly target: string | null;
  readonly ageMs: number;
  readonly bytesUp: number;
  readonly bytesDown: number;
}

/** An open bridge the new rules would refuse, with the step and entry that would refuse it. */
export interface RefusedBridge extends AffectedBridge {
  readonly reason: "deny" | "allow" | "schedule";
  /** The deciding entry: a deny entry as written (and the CIDR inside an acl), or why not. */
  readonly rule: string;
  /** true when the listener has `recheck: true`: applying closes this bridge. */
  readonly closedOnApply: boolean;
}

export interface SettingChange {
  readonly setting: string;
  readonly from: string;
  readonly to: string;
  /** For lists (targets, allow, deny): the entries added and removed. */
  readonly added?: readonly string[];
  readonly removed?: readonly string[];
}

export interface Plan {
  readonly listeners: {
    readonly added: readonly { name: string; listen: string }[];
    readonly removed: readonly { name: string; listen: string; openBridges: number }[];
    readonly moved: readonly { name: string; from: string; to: string; changes: readonly SettingChange[] }[];
    readonly changed: readonly { name: string; listen: string; changes: readonly SettingChange[] }[];
    readonly unchanged: readonly string[];
  };
  /** Top-level settings (log level, shutdown timeout, admin endpoint). */
  readonly settings: readonly SettingChange[];
  /** Open bridges that deny, allow or schedule would refuse under the new file. */
  readonly refused: readonly RefusedBridge[];
  /** Open bridges of removed listeners: they carry on until they end. */
  readonly removedListenerBridges: readonly AffectedBridge[];
  /** Open bridges to targets the new file removes: they carry on until they end. */
  readonly removedTargetBridges: readonly AffectedBridge[];
}

export interface PlannedReload {
  readonly plan: Plan;
  /** The listener changes the gateway commits. */
  readonly changes: ReloadPlan;
}

/** What a reload did: the plan it followed, and how many bridges it closed (recheck). */
export interface Applied extends PlannedReload {
  readonly closed: number;
}

export function planReload(
  running: RuntimeConfig,
  next: RuntimeConfig,
  bridges: readonly OpenBridge[],
  now: number,
): PlannedReload {
  const changes = diff(running, next);
  const before = new Map(running.listeners.map((l) => [l.name, l]));
  const after = new Map(next.listeners.map((l) => [l.name, l]));
  const settingChanges = (name: string, keys: readonly string[]) => {
    const old = before.get(name) as ListenerConfig;
    const now = after.get(name) as ListenerConfig;
    return keys.map((key) => change(key, old[key as keyof ListenerConfig], now[key as keyof ListenerConfig]));
  };

  const refused: RefusedBridge[] = [];
  const removedListenerBridges: AffectedBridge[] = [];
  const removedTargetBridges: AffectedBridge[] = [];
  const policies = new Map<string, ReturnType<typeof compilePolicy>>();
  for (const bridge of bridges) {
    const config = after.get(bridge.listener);
    const affected = describeBridge(bridge, now);
    // A bridge of a listener the reload removes (or that is draining already) carries on.
    if (!config || bridge.draining) {
      removedListenerBridges.push(affected);
      continue;
    }
    const targets = [...config.targets, ...config.routes.flatMap((r) => r.targets)];
    if (bridge.target !== undefined && !targets.some((t) => t.key === bridge.target)) {
      removedTargetBridges.push(affected);
    }
    let policy = policies.get(config.name);
    if (!policy) {
      policy = compilePolicy(config);
      policies.set(config.name, policy);
    }
    const client = parseClientAddress(bridge.client);
    if (!client) continue;
    // Limits are left out: an open bridge already holds its slot, and counts toward them.
    const decision = policy.decide(client, now, { total: 0, fromClient: 0 });
    if (!decision.admit && decision.reason !== "limit") {
      refused.push({ ...affected, reason: decision.reason, rule: decision.detail, closedOnApply: config.recheck });
    }
  }

  return {
    changes,
    plan: {
      listeners: {
        added: changes.add.map((l) => ({ name: l.name, listen: l.listenKey })),
        removed: changes.remove.map((l) => ({
          name: l.name,
          listen: l.listenKey,
          openBridges: bridges.filter((b) => b.listener === l.name).length,
        })),
        moved: changes.rebind.map((r) => ({
          name: r.config.name,
          from: r.from,
          to: r.to,
          changes: settingChanges(r.config.name, r.changed),
        })),
        changed: changes.update.map((u) => ({
          name: u.config.name,
          listen: u.config.listenKey,
          changes: settingChanges(u.config.name, u.changed),
        })),
        unchanged: changes.unchanged,
      },
      settings: changes.settings.map((key) =>
        change(key, running[key as keyof RuntimeConfig], next[key as keyof RuntimeConfig]),
      ),
      refused,
      removedListenerBridges,
      removedTargetBridges,
    },
  };
}

function describeBridge(bridge: OpenBridge, now: number): AffectedBridge {
  return {
    id: bridge.id,
    listener: bridge.listener,
    client: bridge.client,
    clientPort: bridge.clientPort,
    target: bridge.target ?? null,
    ageMs: Math.max(0, now - bridge.startedAt),
    bytesUp: bridge.bytesUp,
    bytesDown: bridge.bytesDown,
  };
}

function change(key: string, from: unknown, to: unknown): SettingChange {
  const setting = key.replace(/Ms$/, "");
  const old = describeValue(key, from);
  const now = describeValue(key, to);
  if (!Array.isArray(old) || !Array.isArray(now)) return { setting, from: String(old), to: String(now) };
  return {
    setting,
    from: old.join(", ") || "none",
    to: now.join(", ") || "none",
    added: now.filter((entry) => !old.includes(entry)),
    removed: old.filter((entry) => !now.includes(entry)),
  };
}
