// The gateway holds the running listeners. It starts them all or none, applies a reload
// plan as one transaction, and shuts down gracefully.
import type { Server } from "node:net";
import type { AdminServer } from "./admin/server.ts";
import type { ListenerView } from "./admin/view.ts";
import type { HostPort } from "./config/address.ts";
import { diff, type ReloadPlan } from "./config/diff.ts";
import { listenOverlaps } from "./config/overlap.ts";
import type { ListenerConfig, RuntimeConfig } from "./config/runtime.ts";
import type { Logger } from "./log.ts";
import type { BridgeEnd } from "./proxy/bridge.ts";
import { addCounters, Listener, type ListenerCounters } from "./proxy/listener.ts";

/** A listen address could not be bound; nothing was changed. */
export class BindError extends Error {}

/** Anything that owns a listening socket: a listener, or the admin endpoint. */
export interface Endpoint {
  bind(address: HostPort): Promise<Server>;
  /** Serves from server from now on, closing the previous socket; undefined stops serving. */
  use(server: Server | undefined): void;
}

interface Binding {
  readonly endpoint: Endpoint;
  readonly label: string;
  readonly address: HostPort;
  readonly key: string;
  server?: Server;
}

/** A socket this reload gives up, and how to take it back if the reload fails. */
interface Release {
  readonly address: HostPort;
  release(): void;
  restore(): Promise<void>;
}

export class Gateway {
  private readonly listeners = new Map<string, Listener>();
  /** Removed listeners whose bridges are still open. */
  private readonly draining = new Set<Listener>();
  /**
   * Totals of removed listeners, by name, once their last bridge ended. A listener added
   * back under the same name continues from them, so its counters never go backwards.
   */
  private readonly retired = new Map<string, ListenerCounters>();
  private running: RuntimeConfig | undefined;
  private applied = 0;

  constructor(
    private readonly log: Logger,
    private readonly admin?: AdminServer,
    private readonly onBridgeEnd?: (end: BridgeEnd) => void,
  ) {}

  get config(): RuntimeConfig | undefined {
    return this.running;
  }

  /** Epoch ms when the running config was applied. */
  get appliedAt(): number {
    return this.applied;
  }

  get openBridges(): number {
    let open = 0;
    for (const l of this.allListeners()) open += l.bridges.size;
    return open;
  }

  /** What the admin endpoint shows of each listener, draining ones included. */
  views(): ListenerView[] {
    const view = (l: Listener, state: ListenerView["state"]): ListenerView => {
      const past = state === "serving" ? this.retired.get(l.config.name) : undefined;
      return {
        name: l.config.name,
        listen: l.config.listenKey,
        state,
        open: l.bridges.size,
        counters: past ? addCounters(l.counters, past) : l.counters,
        bytes: () => {
          const now = l.bytes();
          return { up: now.up + (past?.bytesUpClosed ?? 0), down: now.down + (past?.bytesDownClosed ?? 0) };
        },
        config: l.config,
        targets: l.pools.flatMap(({ route, targets }) =>
          targets.map((t) => ({
            route,
            key: t.config.key,
            up: t.up,
            open: t.open,
            connectFailures: t.connectFailures,
            lastError: t.lastError,
          })),
        ),
      };
    };
    return [
      ...[...this.listeners.values()].map((l) => view(l, "serving")),
      ...[...this.draining].map((l) => view(l, "draining")),
    ];
  }

  /** Binds every listener (and the admin endpoint), or none. */
  async start(config: RuntimeConfig): Promise<void> {
    await this.apply(config);
    for (const l of this.listeners.values()) {
      this.log.info(
        { listener: l.config.name, listen: l.config.listenKey, targets: l.config.targets.map((t) => t.key) },
        "listening",
      );
    }
    if (config.admin) this.log.info({ listen: config.admin.listenKey }, "admin endpoint listening");
  }

  /**
   * Turns the running config into next, all or nothing: every new address is bound
   * first, and if one fails the ones bound for this reload are closed and nothing else
   * changes. Then the swap happens in one synchronous step. Open bridges are never touched.
   */
  async apply(next: RuntimeConfig): Promise<ReloadPlan> {
    const plan = diff(this.running ?? { ...next, listeners: [], admin: undefined }, next);
    const added = plan.add.map((config) => new Listener(config, this.log, this.onBridgeEnd));
    const bindings: Binding[] = [
      ...added.map((l) => listenerBinding(l, l.config)),
      ...plan.rebind.map((r) => listenerBinding(this.existing(r.config.name), r.config)),
    ];
    const releases: Release[] = [...plan.remove, ...plan.rebind.map((r) => r.config)].map((c) => {
      const l = this.existing(c.name);
      return { address: l.config.listen, release: () => l.stopAccepting(), restore: () => this.listenAgain(l) };
    });
    const adminChange = this.adminChange(next);
    if (adminChange.binding) bindings.push(adminChange.binding);
    if (adminChange.release) releases.push(adminChange.release);

    // An address that overlaps one this reload gives up (127.0.0.1:80 → 0.0.0.0:80) cannot
    // be bound while the old one is open: Node 20 has no SO_REUSEPORT. Those go last.
    const releasing = (b: Binding) => releases.filter((r) => listenOverlaps(r.address, b.address));
    const [clear, blocked] = partition(bindings, (b) => releasing(b).length === 0);

    await this.bindAll(clear, bindings);
    if (blocked.length > 0) {
      this.log.warn(
        { addresses: blocked.map((b) => b.key) },
        "rebinding an address that overlaps one being released: clients may be refused for an instant",
      );
      const released = [...new Set(blocked.flatMap(releasing))];
      for (const r of released) r.release();
      await this.bindAll(blocked, bindings, released);
    }

    // The commit: from here on nothing can fail, and nothing awaits.
    for (const b of bindings) b.endpoint.use(b.server);
    for (const l of added) this.listeners.set(l.config.name, l);
    for (const r of plan.rebind) this.existing(r.config.name).update(r.config);
    for (const u of plan.update) this.existing(u.config.name).update(u.config);
    for (const config of plan.remove) this.retire(this.existing(config.name));
    if (this.admin) {
      if (!next.admin) this.admin.use(undefined);
      this.admin.restrict(next.admin?.allow ?? []);
    }
    this.running = next;
    this.applied = Date.now();
    return plan;
  }

  /** The admin endpoint's part of a reload: a new address to bind, an old one to give up. */
  private adminChange(next: RuntimeConfig): { binding?: Binding; release?: Release } {
    const before = this.running?.admin;
    const after = next.admin;
    const admin = this.admin;
    if (!admin || before?.listenKey === after?.listenKey) return {};
    return {
      binding: after && { endpoint: admin, label: "admin", address: after.listen, key: after.listenKey },
      release: before && {
        address: before.listen,
        release: () => admin.use(undefined),
        restore: async () => {
          try {
            admin.use(await admin.bind(before.listen));
          } catch (error) {
            this.log.error(
              { error: describeBindError(error) },
              "admin endpoint could not listen again after a failed reload",
            );
          }
        },
      },
    };
  }

  /**
   * Binds each address; on any failure closes every server bound for this reload, gives
   * back the sockets released for it, and throws.
   */
  private async bindAll(subset: Binding[], all: Binding[], released: Release[] = []): Promise<void> {
    const results = await Promise.allSettled(subset.map((b) => b.endpoint.bind(b.address)));
    results.forEach((r, i) => {
      if (r.status === "fulfilled") (subset[i] as Binding).server = r.value;
    });
    const failed = results.findIndex((r) => r.status === "rejected");
    if (failed < 0) return;
    for (const b of all) b.server?.close();
    for (const r of released) await r.restore();
    const b = subset[failed] as Binding;
    const reason = (results[failed] as PromiseRejectedResult).reason;
    throw new BindError(`${b.label}: cannot listen on ${b.key}: ${describeBindError(reason)}`);
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
    listener.retire();
    this.listeners.delete(listener.config.name);
    this.draining.add(listener);
    listener.drained().then(() => {
      this.draining.delete(listener);
      const name = listener.config.name;
      const past = this.retired.get(name);
      this.retired.set(name, past ? addCounters(past, listener.counters) : listener.counters);
    });
  }

  private allListeners(): Listener[] {
    return [...this.listeners.values(), ...this.draining];
  }

  /** Stops accepting at once, lets bridges finish for up to timeoutMs, then ends the rest. */
  async shutdown(timeoutMs: number): Promise<void> {
    const all = this.allListeners();
    for (const l of all) l.retire();
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

function listenerBinding(listener: Listener, config: ListenerConfig): Binding {
  return { endpoint: listener, label: `listener ${config.name}`, address: config.listen, key: config.listenKey };
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
