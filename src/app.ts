// Puts the running parts together: the gateway with its listeners, the admin endpoint and
// its metrics, and (with a config file) the reloader and the file watcher.
import { createMetrics } from "./admin/metrics.ts";
import { AdminServer } from "./admin/server.ts";
import type { GatewayView } from "./admin/view.ts";
import type { RuntimeConfig } from "./config/runtime.ts";
import { type FileWatch, watchConfigFile } from "./config/watch.ts";
import { checkDescriptorBudget } from "./fd-budget.ts";
import { Gateway } from "./gateway.ts";
import type { Logger } from "./log.ts";
import { Reloader, type ReloadOutcome, type ReloadTrigger } from "./reloader.ts";

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
  const gateway = new Gateway(log, (end) => metrics.bridgeEnded(end));
  const view: GatewayView = {
    listeners: () => gateway.views(),
    reloads: () => ({ ...(reloader?.counts ?? { applied: 0, rejected: 0, unchanged: 0 }) }),
    configAppliedAt: () => gateway.appliedAt,
  };
  const metrics = createMetrics(view);
  const admin = new AdminServer(
    {
      view,
      metrics,
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
  await gateway.start(options.config);
  checkDescriptorBudget(options.config, log);

  let watcher: FileWatch | undefined;
  if (file) {
    const applied = (config: RuntimeConfig) => {
      checkDescriptorBudget(config, log);
      options.onApplied(config);
    };
    reloader = new Reloader(file.path, gateway, log, file.sha256, applied, { insecure: file.insecure });
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
      await gateway.shutdown(gateway.config?.shutdownTimeoutMs ?? 0);
    },
    closeAllBridges: () => gateway.closeAllBridges(),
  };
}
