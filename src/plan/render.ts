// A plan for a person at a terminal: grouped by listener, the changes first, then the
// open bridges each would touch. Unchanged listeners take one line however many there are.

import { count } from "../config/describe.ts";
import type { AffectedBridge, Plan, RefusedBridge, SettingChange } from "./plan.ts";
import { summarisePlan } from "./summary.ts";

export function renderPlan(plan: Plan): string {
  const out: string[] = [];
  const refusedBy = groupBy(plan.refused, (b) => b.listener);
  const removedTargetsBy = groupBy(plan.removedTargetBridges, (b) => b.listener);
  const removedBy = groupBy(plan.removedListenerBridges, (b) => b.listener);
  const bridgesOf = (name: string) => {
    const lines: string[] = [];
    const refused = refusedBy.get(name) ?? [];
    if (refused.length > 0) {
      const closed = refused.some((b) => b.closedOnApply);
      lines.push(
        `  ${count(refused.length, "open bridge")} would no longer be admitted${closed ? " (recheck: closed on apply)" : " (they carry on: recheck is off)"}:`,
      );
      for (const b of refused) lines.push(`    ${bridgeLine(b)}: ${refusal(b)}`);
    }
    const toRemoved = removedTargetsBy.get(name) ?? [];
    if (toRemoved.length > 0) {
      lines.push(`  ${count(toRemoved.length, "open bridge")} to removed targets (they carry on):`);
      for (const b of toRemoved) lines.push(`    ${bridgeLine(b)}`);
    }
    return lines;
  };

  for (const l of plan.listeners.added) out.push(`+ listener ${l.name}: added on ${l.listen}`);
  for (const l of plan.listeners.moved) {
    out.push(`~ listener ${l.name}: moved ${l.from} → ${l.to}`);
    out.push(...l.changes.map(changeLine), ...bridgesOf(l.name));
  }
  for (const l of plan.listeners.changed) {
    out.push(`~ listener ${l.name} (${l.listen}): changed`);
    out.push(...l.changes.map(changeLine), ...bridgesOf(l.name));
  }
  for (const l of plan.listeners.removed) {
    out.push(`- listener ${l.name} (${l.listen}): removed; its open bridges carry on until they end`);
    for (const b of removedBy.get(l.name) ?? []) out.push(`    ${bridgeLine(b)}`);
  }
  // Bridges of unchanged listeners can still be refused: a time that left the schedule.
  for (const name of plan.listeners.unchanged) {
    const lines = bridgesOf(name);
    if (lines.length > 0) out.push(`= listener ${name}: unchanged`, ...lines);
  }
  const unchanged = plan.listeners.unchanged;
  if (unchanged.length > 0) {
    const names = unchanged.length <= 10 ? `: ${unchanged.join(", ")}` : "";
    out.push(`= ${count(unchanged.length, "listener")} unchanged${names}`);
  }
  for (const s of plan.settings) out.push(`~ ${s.setting}: ${s.from} → ${s.to}`);
  out.push("", summarisePlan(plan));
  if (plan.refused.length > 0) {
    out.push(`${count(plan.refused.length, "open bridge")} would no longer be admitted (exit status 3).`);
  } else {
    out.push("No open bridge would be refused by the new rules.");
  }
  return out.join("\n");
}

function changeLine(change: SettingChange): string {
  if (change.added || change.removed) {
    const parts = [...(change.added ?? []).map((e) => `+${e}`), ...(change.removed ?? []).map((e) => `-${e}`)];
    // A reorder changes a list without adding or removing an entry.
    return `    ${change.setting}: ${parts.length > 0 ? parts.join(" ") : `${change.from} → ${change.to}`}`;
  }
  return `    ${change.setting}: ${change.from} → ${change.to}`;
}

function bridgeLine(b: AffectedBridge): string {
  const client = b.client.includes(":") ? `[${b.client}]:${b.clientPort}` : `${b.client}:${b.clientPort}`;
  return `${client} → ${b.target ?? "(connecting)"}, age ${age(b.ageMs)}, ${size(b.bytesUp)} up, ${size(b.bytesDown)} down`;
}

function refusal(b: RefusedBridge): string {
  switch (b.reason) {
    case "deny":
      return `deny ${b.rule}`;
    case "allow":
      return "not in allow";
    case "schedule":
      return "outside schedule";
  }
}

function age(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

function size(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  if (bytes < 1024 ** 3) return `${(bytes / 1024 ** 2).toFixed(1)} MiB`;
  return `${(bytes / 1024 ** 3).toFixed(1)} GiB`;
}

function groupBy<T>(items: readonly T[], key: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const k = key(item);
    const group = groups.get(k) ?? [];
    group.push(item);
    groups.set(k, group);
  }
  return groups;
}
