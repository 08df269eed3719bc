// Every bridge holds two descriptors (client and target). When the configured limits could
// need more than the process may open, accepts start failing with EMFILE under load: say
// so at start-up and after each reload, while it is still a warning and not an outage.
import { readFileSync } from "node:fs";
import type { RuntimeConfig } from "./config/runtime.ts";
import type { Logger } from "./log.ts";

/** Descriptors for everything but bridges: listeners, admin, logs, the watcher, node itself. */
const OVERHEAD = 64;

/** The soft RLIMIT_NOFILE, from /proc (Node has no getrlimit); undefined where unknown. */
export function openFilesLimit(limits = "/proc/self/limits"): number | undefined {
  try {
    const line = readFileSync(limits, "utf8")
      .split("\n")
      .find((l) => l.startsWith("Max open files"));
    const soft = line?.split(/\s{2,}/)[1];
    return soft === undefined || soft === "unlimited" ? undefined : Number(soft);
  } catch {
    return undefined;
  }
}

export function checkDescriptorBudget(config: RuntimeConfig, log: Logger, limit = openFilesLimit()): void {
  if (limit === undefined) return;
  const bounded = config.listeners.filter((l) => l.maxConnections !== undefined);
  const unbounded = config.listeners.length - bounded.length;
  const needed = bounded.reduce((sum, l) => sum + (l.maxConnections ?? 0) * 2, 0) + OVERHEAD;
  if (needed > limit) {
    log.warn(
      { descriptorLimit: limit, needed },
      `maxConnections allow ${needed - OVERHEAD} bridge descriptors but the process may open ${limit}: raise the limit (ulimit -n, or LimitNOFILE= in systemd) to at least ${needed}, or lower maxConnections`,
    );
  } else if (unbounded > 0) {
    log.info(
      { descriptorLimit: limit, listenersWithoutLimit: unbounded },
      `${unbounded} listener(s) have no maxConnections: at most about ${Math.floor((limit - OVERHEAD) / 2)} bridges fit in the descriptor limit`,
    );
  }
}
