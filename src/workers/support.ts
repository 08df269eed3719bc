// Whether this Node.js can run several workers: each listens on the same address with
// SO_REUSEPORT (net's `reusePort`, Node 22.12 / 23.1 and later, on Linux and FreeBSD).
// Without it there is no way to keep every promise of `workers`, so the config is refused.
import { availableParallelism } from "node:os";
import { MAX_WORKERS } from "./shared-slots.ts";

/** `auto`: the CPUs this process may run on. */
export function resolveWorkers(setting: number | "auto" | undefined): number {
  if (setting === undefined) return 1;
  return setting === "auto" ? Math.min(availableParallelism(), MAX_WORKERS) : setting;
}

/** Why workers cannot run here, in one line; undefined when they can. */
export function workersUnsupported(
  workers: number,
  node = process.versions.node,
  platform: NodeJS.Platform = process.platform,
): string | undefined {
  if (workers <= 1) return undefined;
  const [major = 0, minor = 0] = node.split(".").map(Number);
  const reusePort = major >= 24 || (major === 23 && minor >= 1) || (major === 22 && minor >= 12);
  if (!reusePort) return `workers: ${workers} needs Node.js 22.12 or later (SO_REUSEPORT); this is Node.js ${node}`;
  if (platform !== "linux" && platform !== "freebsd") {
    return `workers: ${workers} needs SO_REUSEPORT load balancing (Linux or FreeBSD); this is ${platform}`;
  }
  return undefined;
}
