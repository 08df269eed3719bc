// The gateway holds the running listeners. It starts them all or none, applies a reload
// plan as one transaction, and shuts down gracefully. Other endpoints that a config
// places (the admin endpoint) are attached to it and bound in the same transaction.
import type { Server } from "node:net";
import type { ListenerView } from "./admin/view.ts";
import { type EndpointAddress, isUnixSocket } from "./config/admin-address.ts";
import { listenOverlaps } from "./config/overlap.ts";
import type { ListenerConfig, RuntimeConfig } from "./config/runtime.ts";
import { BindError, describeBindError, type Endpoint } from "./endpoint.ts";
import type { Logger } from "./log.ts";
import { type Applied, type OpenBridge, type PlannedReload, planReload } from "./plan/plan.ts";
import type { BridgeEnd } from "./proxy/bridge.ts";
import { addCounters, Listener, type ListenerCounters } from "./proxy/listener.ts";
import type { Slots } from "./proxy/slots.ts";

/** An endpoint that is not a listener but lives at an address the config names. */
export interface AttachedEndpoint extends Endpoint {
  readonly label: string;
  /** Its address under config, or undefined when that config turns it off. */
  addressIn(config: RuntimeConfig): { address: EndpointAddress; key: string } | undefined;
  /** Takes the rest of its settings from a config that has just been committed. */
  configure(config: RuntimeConfig): void;
}

/** Shutdown began while a reload was binding: it gave everything back. */
export class ShutdownError extends BindError {}

interface Binding {
  readonly endpoint: Endpoint;
  readonly label: string;
  readonly address: EndpointAddress;
  readonly key: string;
  server?: Server;
}

/** How a worker's gateway differs from the single loop's (src/workers/). */
export interface GatewayOptions {
  /** Listeners bind with SO_REUSEPORT: every worker listens on the same addresses. */
  readonly reusePort?: boolean;
  /** The slots a listener counts its bridges in; by default its own (one event loop). */
  readonly slotsFor?: (listener: string) => Slots;
}

/** A reload bound and ready to commit or abort. */
export interface Prepared {
  readonly next: RuntimeConfig;
  readonly planned: PlannedReload;
  readonly added: readonly Listener[];
  readonly bindings: readonly Binding[];
  readonly released: readonly Release[];
}

/** A socket this reload gives up, and how to take it back if the reload fails. */
interface Release {
  readonly address: EndpointAddress;
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
  private readonly attached: AttachedEndpoint[] = [];
  private running: RuntimeConfig | undefined;
  private applied = 0;
  private stopped = false;
  /** Closes the open bridges of recheck listeners once their schedule stops admitting. */
  private recheckTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly log: Logger,
    private readonly onBridgeEnd?: (end: BridgeEnd) => void,
    private readonly options: GatewayOptions = {},
  ) {}

  /** Binds endpoint with the listeners from the next start or reload on. */
  attach(endpoint: AttachedEndpoint): void {
    this.attached.push(endpoint);
  }

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
        ruleHits: () => l.ruleHits(),
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

  /** Binds every listener (and attached endpoint), or none. */
  async start(config: RuntimeConfig): Promise<void> {
    await this.apply(config);
    for (const l of this.listeners.values()) {
      this.log.info(
        { listener: l.config.name, listen: l.config.listenKey, targets: l.config.targets.map((t) => t.key) },
        "listening",
      );
    }
    for (const e of this.attached) {
      const at = e.addressIn(config);
      if (at) this.log.info({ listen: at.key }, `${e.label} endpoint listening`);
    }
  }

  /** The open bridges, as a reload plan sees them. */
  bridges(): OpenBridge[] {
    return this.allListeners().flatMap((l) => l.openBridges(this.draining.has(l)));
  }

  /**
   * What applying next would do, computed from the open bridges now; nothing changes.
   * apply() computes the very same plan and commits it.
   */
  plan(next: RuntimeConfig, now = Date.now()): PlannedReload {
    const bridges = this.bridges();
    return planReload(this.running ?? { ...next, listeners: [], admin: undefined }, next, bridges, now);
  }

  /**
   * Turns the running config into next, all or nothing: every new address is bound
   * first, and if one fails the ones bound for this reload are closed and nothing else
   * changes. Then the swap happens in one synchronous step. Open bridges are never
   * touched, except those of recheck listeners that the new rules refuse.
   */
  async apply(next: RuntimeConfig): Promise<Applied> {
    return this.commit(await this.prepare(next));
  }

  /**
   * The first half of apply: binds every new address, commits nothing. commit() or
   * abort() must follow (several workers prepare, and all commit or all abort).
   */
  async prepare(next: RuntimeConfig): Promise<Prepared> {
    if (this.stopped) throw new ShutdownError("shutting down: nothing is applied any more");
    const planned = this.plan(next);
    const plan = planned.changes;
    const added = plan.add.map((config) => this.createListener(config));
    const bindings: Binding[] = [
      ...added.map((l) => listenerBinding(l, l.config)),
      ...plan.rebind.map((r) => listenerBinding(this.existing(r.config.name), r.config)),
    ];
    const releases: Release[] = [...plan.remove, ...plan.rebind.map((r) => r.config)].map((c) => {
      const l = this.existing(c.name);
      return { address: l.config.listen, release: () => l.stopAccepting(), restore: () => this.listenAgain(l) };
    });
    for (const endpoint of this.attached) {
      const change = this.attachedChange(endpoint, next);
      if (change.binding) bindings.push(change.binding);
      if (change.release) releases.push(change.release);
    }

    // An address that overlaps one this reload gives up (127.0.0.1:80 → 0.0.0.0:80) cannot
    // be bound while the old one is open, unless listeners share ports (SO_REUSEPORT,
    // several workers). Those go last.
    const releasing = (b: Binding) =>
      this.options.reusePort && b.endpoint instanceof Listener
        ? []
        : releases.filter((r) => endpointsOverlap(r.address, b.address));
    const [clear, blocked] = partition(bindings, (b) => releasing(b).length === 0);
    const released = [...new Set(blocked.flatMap(releasing))];

    try {
      await this.bindAll(clear, bindings);
      if (blocked.length > 0) {
        this.log.warn(
          { addresses: blocked.map((b) => b.key) },
          "rebinding an address that overlaps one being released: clients may be refused for an instant",
        );
        for (const r of released) r.release();
        await this.bindAll(blocked, bindings, released);
      }
      // SIGTERM may have come while we were binding: shutdown has closed what was running,
      // and nothing this reload bound may outlive it.
      if (this.stopped) {
        for (const b of bindings) b.server?.close();
        throw new ShutdownError("shutting down: the reload was abandoned");
      }
    } catch (error) {
      // Listeners that never served still started their target pools' health checks.
      for (const l of added) l.retire();
      throw error;
    }
    return { next, planned, added, bindings, released };
  }

  /** Gives back everything prepared bound, and the sockets it released; nothing changed. */
  async abort(prepared: Prepared): Promise<void> {
    for (const b of prepared.bindings) b.server?.close();
    for (const l of prepared.added) l.retire();
    for (const r of prepared.released) await r.restore();
  }

  /** The second half of apply: the swap. From here on nothing can fail, and nothing awaits. */
  commit(prepared: Prepared): Applied {
    const { next, planned, added, bindings } = prepared;
    const plan = planned.changes;
    for (const b of bindings) b.endpoint.use(b.server);
    for (const l of added) this.listeners.set(l.config.name, l);
    for (const r of plan.rebind) this.existing(r.config.name).update(r.config);
    for (const u of plan.update) this.existing(u.config.name).update(u.config);
    for (const config of plan.remove) this.retire(this.existing(config.name));
    for (const e of this.attached) {
      if (!e.addressIn(next)) e.use(undefined);
      e.configure(next);
    }
    this.running = next;
    this.applied = Date.now();
    const closed = this.closeRechecked(planned);
    this.scheduleRecheck();
    return { ...planned, closed };
  }

  private createListener(config: ListenerConfig): Listener {
    const { slotsFor, reusePort } = this.options;
    return new Listener(config, this.log, this.onBridgeEnd, slotsFor?.(config.name), reusePort);
  }

  /** Closes exactly the bridges the plan listed as closed on apply. */
  private closeRechecked(planned: PlannedReload): number {
    const ids = new Set(planned.plan.refused.filter((b) => b.closedOnApply).map((b) => b.id));
    if (ids.size === 0) return 0;
    let closed = 0;
    for (const l of this.listeners.values()) closed += l.closeBridges(ids, "recheck");
    return closed;
  }

  /**
   * Recheck listeners with a schedule are looked at every second: once no window admits,
   * their open bridges are closed. One timer for the gateway, none without such listeners.
   */
  private scheduleRecheck(): void {
    const watched = () => [...this.listeners.values()].filter((l) => l.config.recheck && l.config.schedule);
    clearInterval(this.recheckTimer);
    this.recheckTimer = undefined;
    if (watched().length === 0) return;
    this.recheckTimer = setInterval(() => {
      const now = Date.now();
      for (const l of watched()) l.recheckSchedule(now);
    }, RECHECK_INTERVAL_MS);
    this.recheckTimer.unref();
  }

  /** An attached endpoint's part of a reload: a new address to bind, an old one to give up. */
  private attachedChange(endpoint: AttachedEndpoint, next: RuntimeConfig): { binding?: Binding; release?: Release } {
    const before = this.running && endpoint.addressIn(this.running);
    const after = endpoint.addressIn(next);
    if (before?.key === after?.key) return {};
    return {
      binding: after && { endpoint, label: endpoint.label, address: after.address, key: after.key },
      release: before && {
        address: before.address,
        release: () => endpoint.use(undefined),
        restore: async () => {
          try {
            endpoint.use(await endpoint.bind(before.address));
          } catch (error) {
            this.log.error(
              { error: describeBindError(error) },
              `${endpoint.label} endpoint could not listen again after a failed reload`,
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

  /**
   * Stops accepting at once, lets bridges finish for up to timeoutMs, then ends the rest
   * and closes the attached endpoints. Nothing binds or accepts again afterwards.
   */
  async shutdown(timeoutMs: number): Promise<void> {
    this.stopped = true;
    clearInterval(this.recheckTimer);
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
    // The admin endpoint answered /healthz with 503 while bridges drained; now it goes too.
    for (const e of this.attached) e.use(undefined);
  }

  /** Ends every open bridge now (shutdown timeout reached, or a second signal). */
  closeAllBridges(): void {
    for (const l of this.allListeners()) l.endAll("shutdown");
  }
}

const RECHECK_INTERVAL_MS = 1_000;

function listenerBinding(listener: Listener, config: ListenerConfig): Binding {
  return { endpoint: listener, label: `listener ${config.name}`, address: config.listen, key: config.listenKey };
}

function partition<T>(items: T[], test: (item: T) => boolean): [T[], T[]] {
  return [items.filter(test), items.filter((item) => !test(item))];
}

/** A Unix socket clashes only with the same path; TCP addresses as the kernel sees them. */
function endpointsOverlap(a: EndpointAddress, b: EndpointAddress): boolean {
  if (isUnixSocket(a) || isUnixSocket(b)) return isUnixSocket(a) && isUnixSocket(b) && a.path === b.path;
  return listenOverlaps(a, b);
}
