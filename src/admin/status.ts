// The JSON document GET /status answers with.
import { resolve } from "node:path";
import { formatDuration } from "../config/duration.ts";
import type { ListenerConfig } from "../config/runtime.ts";
import type { EntryHits, RuleHitsSnapshot } from "../proxy/rule-hits.ts";
import type { ReloadOutcome } from "../reloader.ts";
import { processStats } from "./process-stats.ts";
import type { GatewayView } from "./view.ts";

export interface StatusContext {
  readonly version: string;
  readonly startedAt: number;
  readonly configPath: string | undefined;
  readonly sha256: () => string | undefined;
  /** The last reloads, newest first. */
  readonly reloads: () => readonly ReloadOutcome[];
  readonly shuttingDown: () => boolean;
}

export function buildStatus(view: GatewayView, context: StatusContext, now = Date.now()) {
  const listeners = view.listeners().map((l) => ({
    name: l.name,
    listen: l.listen,
    state: l.state,
    openBridges: l.open,
    accepted: l.counters.accepted,
    refused: l.counters.refused,
    closed: l.counters.closed,
    closedBy: l.counters.closedBy,
    bytes: l.bytes(),
    limits: {
      maxConnections: l.config.maxConnections ?? null,
      maxConnectionsPerClient: l.config.maxConnectionsPerClient ?? null,
    },
    rules: rulesSummary(l.config, l.ruleHits()),
    balance: l.config.balance,
    targets: l.targets.map((t) => ({
      ...(t.route !== undefined && { route: t.route }),
      address: t.key,
      state: t.up ? "up" : "down",
      openBridges: t.open,
      connectFailures: t.connectFailures,
      lastError: t.lastError ?? null,
    })),
  }));
  const workers = view.workers?.().map((w) => ({
    index: w.index,
    threadId: w.threadId,
    state: w.state,
    startedAt: new Date(w.startedAt).toISOString(),
    openBridges: w.open,
    accepted: w.accepted,
    replaced: w.replaced,
  }));
  const sum = (pick: (l: (typeof listeners)[number]) => number) => listeners.reduce((n, l) => n + pick(l), 0);
  return {
    version: context.version,
    pid: process.pid,
    uptimeSeconds: Math.round((now - context.startedAt) / 1000),
    state: context.shuttingDown() ? "shutting-down" : "serving",
    // Absolute: whoever reads /status does not know the directory tcpgate was started in.
    config: {
      path: context.configPath === undefined ? null : resolve(context.configPath),
      sha256: context.sha256() ?? null,
    },
    lastReload: context.reloads()[0] ?? null,
    reloads: context.reloads(),
    process: processStats(),
    // Only with workers > 1: one event loop has nothing to break down.
    ...(workers && { workers }),
    listeners,
    totals: {
      openBridges: sum((l) => l.openBridges),
      accepted: sum((l) => l.accepted),
      refused: sum((l) => Object.values(l.refused).reduce((a, b) => a + b, 0)),
      closed: sum((l) => l.closed),
    },
  };
}

function rulesSummary(config: ListenerConfig, hits: RuleHitsSnapshot) {
  const list = (entries: readonly EntryHits[]) =>
    entries.map((e) => ({
      rule: e.rule,
      hits: e.hits,
      lastHitAt: e.lastHitAt === undefined ? null : new Date(e.lastHitAt).toISOString(),
    }));
  return {
    allow: list(hits.allow),
    deny: list(hits.deny),
    schedule: config.schedule
      ? {
          timezone: config.schedule.timezone ?? null,
          windows: config.schedule.windows.map((w) => `${w.days?.join(",") ?? "every day"} ${w.from}-${w.to}`),
        }
      : null,
    timeouts: {
      connect: formatDuration(config.connectTimeoutMs),
      idle: formatDuration(config.idleTimeoutMs),
      halfClose: formatDuration(config.halfCloseTimeoutMs),
      maxDuration: config.maxDurationMs === undefined ? null : formatDuration(config.maxDurationMs),
    },
  };
}
