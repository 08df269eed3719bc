// The gateway holds the running listeners: it starts them all or none, and shuts them
// down gracefully.
import type { RuntimeConfig } from "./config/runtime.ts";
import type { Logger } from "./log.ts";
import { Listener } from "./proxy/listener.ts";

export class StartError extends Error {}

export class Gateway {
  private listeners: Listener[] = [];

  constructor(private readonly log: Logger) {}

  get openBridges(): number {
    return this.listeners.reduce((sum, l) => sum + l.bridges.size, 0);
  }

  /** Binds every listener, or none: on any failure the ones already bound are closed again. */
  async start(config: RuntimeConfig): Promise<void> {
    const listeners = config.listeners.map((c) => new Listener(c, this.log));
    const results = await Promise.allSettled(listeners.map((l) => l.listen()));
    const failures = results.flatMap((r, i) =>
      r.status === "rejected" ? [{ listener: listeners[i] as Listener, error: r.reason }] : [],
    );
    if (failures.length > 0) {
      for (const l of listeners) l.stopAccepting();
      const { listener, error } = failures[0] as (typeof failures)[number];
      throw new StartError(
        `listener ${listener.config.name}: cannot listen on ${listener.config.listenKey}: ${describeBindError(error)}`,
      );
    }
    this.listeners = listeners;
    for (const l of listeners) {
      this.log.info(
        { listener: l.config.name, listen: l.config.listenKey, targets: l.config.targets.map((t) => t.key) },
        "listening",
      );
    }
  }

  /** Stops accepting at once, lets bridges finish for up to timeoutMs, then ends the rest. */
  async shutdown(timeoutMs: number): Promise<void> {
    for (const l of this.listeners) l.stopAccepting();
    const open = this.openBridges;
    if (open > 0) this.log.info({ openBridges: open, timeoutMs }, "waiting for open bridges to finish");
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeoutMs);
    });
    await Promise.race([Promise.all(this.listeners.map((l) => l.drained())), timedOut]);
    clearTimeout(timer);
    this.closeAllBridges();
  }

  /** Ends every open bridge now (shutdown timeout reached, or a second signal). */
  closeAllBridges(): void {
    for (const l of this.listeners) l.endAll("shutdown");
  }
}

function describeBindError(error: unknown): string {
  const code = (error as NodeJS.ErrnoException)?.code;
  const reasons: Record<string, string> = {
    EADDRINUSE: "the address is already in use",
    EACCES: "permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)",
    EADDRNOTAVAIL: "no interface of this host has that address",
  };
  return code ? `${reasons[code] ?? code} (${code})` : String(error);
}
