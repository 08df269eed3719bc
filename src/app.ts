// Puts the running parts together: the gateway with its listeners, the admin endpoint and
// its metrics, and (with a config file) the reloader and the file watcher.
import type { Metrics } from "./admin/metrics.ts";
import { AdminServer } from "./admin/server.ts";
import type { GatewayView } from "./admin/view.ts";
import type { RuntimeConfig } from "./config/runtime.ts";
import { type FileWatch, watchConfigFile } from "./config/watch.ts";
import { BindError } from "./endpoint.ts";
import { DescriptorBudget } from "./fd-budget.ts";
import { Gateway } from "./gateway.ts";
import type { Logger } from "./log.ts";
import { type ConfigApplier, Reloader, type ReloadOutcome, type ReloadTrigger } from "./reloader.ts";
import { WorkerPool } from "./workers/pool.ts";

export interface AppOptions {
  readonly config: RuntimeConfig;
  /** The config file and its sha256; undefined in quick mode. */
  readonly file:
    | { readonly path: string; readonly sha256: string; readonly watch: boolean; readonly insecure: boolean }
    | undefined;
  readonly version: string;
  readonly log: Logger;
  /** Called after each applied reload (the CLI applies log.level unless --log-level is given). */
  readonly onApplied: (config: RuntimeConfig) => void;
  /** --pretty: workers write their own logs, the same way. */
  readonly pretty: boolean;
}

export interface App {
  /** Runs a reload as SIGHUP does; resolves with its outcome; undefined in quick mode. */
  reload(trigger: ReloadTrigger): Promise<ReloadOutcome> | undefined;
  /** Stops accepting, waits for bridges up to shutdownTimeout, then closes everything. */
  shutdown(): Promise<void>;
  closeAllBridges(): void;
}

/** Binds everything the config names, or throws BindError having bound nothing. */
export async function startApp(options: AppOptions): Promise<App> {
  const { log, file } = options;
  const startedAt = Date.now();
  let shuttingDown = false;
  let reloader: Reloader | undefined;
  // prom-client is loaded by an instance that serves /metrics: one without an admin
  // endpoint never needs its memory. An endpoint a reload adds loads it at its first
  // scrape, and the duration histogram counts bridges from then on.
  let metrics: Metrics | undefined;
  const loadMetrics = async () => {
    metrics ??= (await import("./admin/metrics.ts")).createMetrics(view);
    return metrics;
  };
  const gateway = new Gateway(log, (end) => metrics?.bridgeEnded(end));
  // workers > 1: the listeners run in worker threads; this gateway keeps only the admin endpoint.
  const pool =
    options.config.workers > 1
      ? new WorkerPool(log, gateway, { level: () => log.level, pretty: options.pretty })
      : undefined;
  const running = pool ?? gateway;
  const view: GatewayView = {
    ...(pool && {
      refresh: () => pool.refresh(),
      workers: () => pool.workerViews(),
      bridgeEnds: () => pool.bridgeEnds(),
    }),
    listeners: () => running.views(),
    reloads: () => ({ ...(reloader?.counts ?? { applied: 0, rejected: 0, unchanged: 0 }) }),
    configAppliedAt: () => running.appliedAt,
  };
  if (options.config.admin) await loadMetrics();
  const admin = new AdminServer(
    {
      view,
      metrics: loadMetrics,
      status: {
        version: options.version,
        startedAt,
        configPath: file?.path,
        sha256: () => reloader?.runningSha256,
        reloads: () => reloader?.history ?? [],
        shuttingDown: () => shuttingDown,
      },
      reload: file && (() => (reloader as Reloader).reload("api")),
      plan: file && ((text) => (reloader as Reloader).plan(text)),
    },
    log,
  );
  gateway.attach(admin);
  await running.start(options.config);
  const budget = new DescriptorBudget(log, { quickMode: file === undefined });
  budget.check(options.config);

  let watcher: FileWatch | undefined;
  if (file) {
    const applied = (config: RuntimeConfig) => {
      budget.check(config);
      options.onApplied(config);
      pool?.setLogLevel(log.level);
    };
    reloader = new Reloader(file.path, pool ?? singleLoop(gateway), log, file.sha256, applied, {
      insecure: file.insecure,
    });
    const fromWatcher = () => {
      reloader?.reload("file").catch((error: unknown) => log.error({ error: String(error) }, "reload failed"));
    };
    if (file.watch) watcher = watchConfigFile(file.path, fromWatcher, log);
  }

  return {
    reload: (trigger) => reloader?.reload(trigger),
    async shutdown() {
      shuttingDown = true;
      reloader?.close();
      await watcher?.close();
      await running.shutdown(running.config?.shutdownTimeoutMs ?? 0);
    },
    closeAllBridges: () => running.closeAllBridges(),
  };
}

/**
 * An instance started with one event loop has its listeners on the main thread, bound
 * without SO_REUSEPORT: no worker could bind beside them without refusing clients.
 */
function singleLoop(gateway: Gateway): ConfigApplier {
  return {
    plan: (next) => gateway.plan(next),
    apply: (next) =>
      next.workers > 1
        ? Promise.reject(
            new BindError(`workers: ${next.workers} needs a restart: this instance was started with workers: 1`),
          )
        : gateway.apply(next),
  };
}
