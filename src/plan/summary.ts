// A plan in one line, for the reload history and the log: "1 added, 2 changed; 3 open
// bridges no longer admitted".
import { count } from "../config/describe.ts";
import type { Plan } from "./plan.ts";

export function summarisePlan(plan: Plan, closed = 0): string {
  const l = plan.listeners;
  const parts = [
    some(l.added.length, "added"),
    some(l.removed.length, "removed"),
    some(l.moved.length, "moved"),
    some(l.changed.length, "changed"),
  ].filter(Boolean);
  // Top-level settings are not listeners: "logLevel changed", not "listeners: logLevel changed".
  const changed = [
    parts.length > 0 ? `listeners: ${parts.join(", ")}` : "",
    plan.settings.length > 0 ? `${plan.settings.map((s) => s.setting).join(", ")} changed` : "",
  ].filter(Boolean);
  const listeners = changed.length > 0 ? changed.join("; ") : "no listener changed";
  const refused = plan.refused.length;
  const bridges =
    refused === 0
      ? ""
      : `; ${count(refused, "open bridge")} no longer admitted${closed > 0 ? `, ${closed} closed (recheck)` : ""}`;
  return `${listeners}${bridges}`;
}

/** "2 added", or nothing for none. */
function some(n: number, what: string): string {
  return n > 0 ? `${n} ${what}` : "";
}
