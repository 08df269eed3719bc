// Every bridge holds two descriptors (client and target). When the configured limits could
// need more than the process may open, accepts start failing with EMFILE under load: say
// so at start-up and after a reload that changes the figure, while it is still a warning
// and not an outage.
import { readFileSync } from "node:fs";
import { count } from "./config/describe.ts";
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

export interface BudgetOptions {
  /** Reads the descriptor limit (default: the process's own, re-read at each check). */
  readonly limit?: () => number | undefined;
  /**
   * Quick mode: there is no maxConnections to set, so the note about listeners without
   * one is not news to anyone and is logged at debug only.
   */
  readonly quickMode?: boolean;
}

/**
 * The descriptor budget of one process. Each line is logged once per change of its
 * figure: at start-up, then after a reload only if the descriptors needed, the limit or
 * the listeners without maxConnections changed (a reload that changes no limit repeats
 * nothing), and once when a budget that did not fit fits again.
 */
export class DescriptorBudget {
  private last: string | undefined;

  constructor(
    private readonly log: Logger,
    private readonly options: BudgetOptions = {},
  ) {}

  check(config: RuntimeConfig): void {
    const limit = (this.options.limit ?? openFilesLimit)();
    if (limit === undefined) return;
    const bounded = config.listeners.filter((l) => l.maxConnections !== undefined);
    const unbounded = config.listeners.length - bounded.length;
    const needed = bounded.reduce((sum, l) => sum + (l.maxConnections ?? 0) * 2, 0) + OVERHEAD;
    const over = needed > limit;
    const figure = over ? `over ${needed}/${limit}` : unbounded > 0 ? `open ${unbounded}/${limit}` : `fits ${limit}`;
    const previous = this.last;
    this.last = figure;
    if (figure === previous) return;
    if (over) {
      this.log.warn(
        { descriptorLimit: limit, needed },
        `maxConnections allow ${needed - OVERHEAD} bridge descriptors but the process may open ${limit}: raise the limit (ulimit -n, or LimitNOFILE= in systemd) to at least ${needed}, or lower maxConnections`,
      );
    } else if (unbounded > 0) {
      const fit = Math.floor((limit - OVERHEAD) / 2);
      const has = unbounded === 1 ? "has" : "have";
      this.log[this.options.quickMode ? "debug" : "info"](
        { descriptorLimit: limit, listenersWithoutLimit: unbounded },
        `${count(unbounded, "listener")} ${has} no maxConnections: at most about ${fit} bridges fit in the descriptor limit`,
      );
    } else if (previous?.startsWith("over")) {
      this.log.info({ descriptorLimit: limit, needed }, "maxConnections fit in the descriptor limit now");
    }
  }
}
