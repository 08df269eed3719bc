// The gateway holds the running listeners. It starts them all or none, applies a reload
// plan as one transaction, and shuts down gracefully.
import type { Server } from "node:net";
import type { HostPort } from "./config/address.ts";
import { diff, type ReloadPlan } from "./config/diff.ts";
import { listenOverlaps } from "./config/overlap.ts";
import type { RuntimeConfig } from "./config/runtime.ts";
import type { Logger } from "./log.ts";
import { Listener } from "./proxy/listener.ts";

/** A listen address could not be bound; nothing was changed. */
export class BindError extends Error {}

interface Binding {
  readonly listener: Listener;
  readonly address: HostPort;
  readonly key: string;
  server?: Server;
}

export class Gateway {
  private readonly listeners = new Map<string, Listener>();
  /** Removed listeners whose bridges are still open. */
  private readonly draining = new Set<Listener>();
  private running: RuntimeConfig | undefined;

  constructor(private readonly log: Logger) {}

  get config(): RuntimeConfig | undefined {
    return this.running;
  }

  get openBridges(): number {
    let open = 0;
    for (const l of this.allListeners()) open += l.bridges.size;
    return open;
  }

  /** Binds every listener, or none. */
  async start(config: RuntimeConfig): Promise<void> {
    await this.apply(config);
    for (const l of this.listeners.values()) {
      this.log.info(
        { listener: l.config.name, listen: l.config.listenKey, targets: l.config.targets.map((t) => t.key) },
        "listening",
      );
    }
  }

  /**
   * Turns the running config into next, all or nothing: every new address is bound
   * first, and if one fails the ones bound for this reload are closed and nothing else
   * changes. Then the swap happens in one synchronous step. Open bridges are never touched.
   */
  async apply(next: RuntimeConfig): Promise<ReloadPlan> {
    const plan = diff(this.running ?? { ...next, listeners: [] }, next);
    const added = plan.add.map((config) => new Listener(config, this.log));
    const bindings: Binding[] = [
      ...added.map((listener) => ({ listener, address: listener.config.listen, key: listener.config.listenKey })),
      ...plan.rebind.map((r) => ({ listener: this.existing(r.config.name), address: r.config.listen, key: r.to })),
    ];
    const leaving = [...plan.remove, ...plan.rebind.map((r) => r.config)].map((c) => this.existing(c.name));
    // An address that overlaps one this reload gives up (127.0.0.1:80 → 0.0.0.0:80) cannot
    // be bound while the old one is open: Node 20 has no SO_REUSEPORT. Those go last.
    const releasing = (b: Binding) => leaving.filter((l) => listenOverlaps(l.config.listen, b.address));
    const [clear, blocked] = partition(bindings, (b) => releasing(b).length === 0);

    await this.bindAll(clear, bindings);
    if (blocked.length > 0) {
      this.log.warn(
        { addresses: blocked.map((b) => b.key) },
        "rebinding an address that overlaps one being released: clients may be refused for an instant",
      );
      const released = blocked.flatMap(releasing);
      for (const l of released) l.stopAccepting();
      await this.bindAll(blocked, bindings, released);
    }

    // The commit: from here on nothing can fail, and nothing awaits.
    for (const b of bindings) b.listener.use(b.server as Server);
    for (const l of added) this.listeners.set(l.config.name, l);
    for (const r of plan.rebind) this.existing(r.config.name).update(r.config);
    for (const u of plan.update) this.existing(u.config.name).update(u.config);
    for (const config of plan.remove) this.retire(this.existing(config.name));
    this.running = next;
    return plan;
  }

  /**
   * Binds each address; on any failure closes every server bound for this reload, lets
   * listeners that released their socket for it listen again, and throws.
   */
  private async bindAll(subset: Binding[], all: Binding[], released: Listener[] = []): Promise<void> {
    const results = await Promise.allSettled(subset.map((b) => b.listener.bind(b.address)));
    results.forEach((r, i) => {
      if (r.status === "fulfilled") (subset[i] as Binding).server = r.value;
    });
    const failed = results.findIndex((r) => r.status === "rejected");
    if (failed < 0) return;
    for (const b of all) b.server?.close();
    for (const l of released) await this.listenAgain(l);
    const b = subset[failed] as Binding;
    const reason = (results[failed] as PromiseRejectedResult).reason;
    throw new BindError(`listener ${b.listener.config.name}: cannot listen on ${b.key}: ${describeBindError(reason)}`);
  }

  private async listenAgain(listener: Listener): Promise<void> {
    try {
      listener.use(await listener.bind(listener.config.listen));
    } catch (error) {
      this.log.error(
        { listener: listener.config.name, error: describeBindError(error) },
        "could not listen again after a failed reload",
      );
    }
  }

  private existing(name: string): Listener {
    const listener = this.listeners.get(name);
    if (!listener) throw new Error(`internal: no running listener named ${name}`);
    return listener;
  }

  private retire(listener: Listener): void {
    listener.stopAccepting();
    this.listeners.delete(listener.config.name);
    if (listener.bridges.size === 0) return;
    this.draining.add(listener);
    listener.drained().then(() => this.draining.delete(listener));
  }

  private allListeners(): Listener[] {
    return [...this.listeners.values(), ...this.draining];
  }

  /** Stops accepting at once, lets bridges finish for up to timeoutMs, then ends the rest. */
  async shutdown(timeoutMs: number): Promise<void> {
    const all = this.allListeners();
    for (const l of all) l.stopAccepting();
    const open = this.openBridges;
    if (open > 0) this.log.info({ openBridges: open, timeoutMs }, "waiting for open bridges to finish");
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeoutMs);
    });
    await Promise.race([Promise.all(all.map((l) => l.drained())), timedOut]);
    clearTimeout(timer);
    this.closeAllBridges();
  }

  /** Ends every open bridge now (shutdown timeout reached, or a second signal). */
  closeAllBridges(): void {
    for (const l of this.allListeners()) l.endAll("shutdown");
  }
}

function partition<T>(items: T[], test: (item: T) => boolean): [T[], T[]] {
  return [items.filter(test), items.filter((item) => !test(item))];
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
