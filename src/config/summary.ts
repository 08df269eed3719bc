// The short description `tcpgate --check` prints of a valid config.
import { count } from "./describe.ts";
import { formatDuration } from "./duration.ts";
import type { ListenerConfig, Rule, RuntimeConfig, TargetConfig } from "./runtime.ts";
import { isAclReference } from "./schema.ts";

export function summarise(config: RuntimeConfig, file: string): string {
  const workers = config.workers > 1 ? `, ${count(config.workers, "worker")}` : "";
  const lines = [`${file}: OK, ${count(config.listeners.length, "listener")}${workers}`];
  for (const l of config.listeners) lines.push(...listenerLines(l));
  return lines.join("\n");
}

const targetList = (targets: readonly TargetConfig[]) =>
  targets.map((t) => (t.weight === 1 ? t.key : `${t.key} (weight ${t.weight})`)).join(", ");

function listenerLines(l: ListenerConfig): string[] {
  const targets = l.targets.length > 0 ? targetList(l.targets) : "no default targets";
  const lines = [
    `  ${l.name}: ${l.listenKey} -> ${targets} [${l.balance}]`,
    ...l.routes.map((r) => `    route ${r.sni.join(", ")} -> ${targetList(r.targets)} [${r.balance}]`),
    `    timeouts: connect ${formatDuration(l.connectTimeoutMs)}, idle ${formatDuration(l.idleTimeoutMs)}, half-close ${formatDuration(l.halfCloseTimeoutMs)}, max duration ${l.maxDurationMs === undefined ? "none" : formatDuration(l.maxDurationMs)}`,
  ];
  if (l.acceptProxy) lines.push(`    PROXY header from: ${rules(l.acceptProxy.from)}`);
  if (l.deny.length > 0) lines.push(`    deny: ${rules(l.deny)}`);
  if (l.allow.length > 0) lines.push(`    allow: ${rules(l.allow)}`);
  if (l.schedule) {
    const windows = l.schedule.windows.map((w) => `${w.days?.join(",") ?? "every day"} ${w.from}-${w.to}`);
    lines.push(`    schedule (${l.schedule.timezone ?? "host time zone"}): ${windows.join("; ")}`);
  }
  const limits = [
    l.maxConnections !== undefined && count(l.maxConnections, "bridge"),
    l.maxConnectionsPerClient !== undefined && `${l.maxConnectionsPerClient} per client`,
  ].filter(Boolean);
  if (limits.length > 0) lines.push(`    limits: ${limits.join(", ")}`);
  if (l.filter) lines.push(`    filter: ${l.filter.loaded?.path ?? l.filter.module}`);
  return lines;
}

function rules(list: readonly Rule[]): string {
  return list
    .map((r) => (!isAclReference(r.source) ? r.source : `${r.source} (${r.cidrs.map((c) => c.text).join(", ")})`))
    .join(", ");
}
