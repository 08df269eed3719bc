// A listener is a name with a config, the bridges it accepted, and the listening socket
// that currently feeds it. A reload may swap the config or the socket; bridges stay.
import { createServer, type Server, type Socket } from "node:net";
import type { HostPort } from "../config/address.ts";
import type { ListenerConfig } from "../config/runtime.ts";
import type { Logger } from "../log.ts";
import type { OpenBridge } from "../plan/plan.ts";
import { parseClientAddress } from "../policy/address-match.ts";
import { compilePolicy, type Policy, REFUSAL_REASONS, type RefusalReason } from "../policy/admission.ts";
import { Bridge, type BridgeEnd, type EndReason } from "./bridge.ts";
import { createInspector } from "./inspect.ts";
import { RefusalLog } from "./refusal-log.ts";
import { TargetPool } from "./target-pool.ts";

/** Running totals per listener; at any quiet moment accepted = refused + closed + open. */
export interface ListenerCounters {
  accepted: number;
  refused: Record<RefusalReason, number>;
  closed: number;
  /** Bytes carried by bridges that have ended; open ones are added when read. */
  bytesUpClosed: number;
  bytesDownClosed: number;
}

/** The sum of some counters; with no argument, zeroes. */
export function addCounters(...all: ListenerCounters[]): ListenerCounters {
  const sum = (pick: (c: ListenerCounters) => number) => all.reduce((n, c) => n + pick(c), 0);
  return {
    accepted: sum((c) => c.accepted),
    refused: Object.fromEntries(REFUSAL_REASONS.map((r) => [r, sum((c) => c.refused[r])])) as Record<
      RefusalReason,
      number
    >,
    closed: sum((c) => c.closed),
    bytesUpClosed: sum((c) => c.bytesUpClosed),
    bytesDownClosed: sum((c) => c.bytesDownClosed),
  };
}

/** Bridges younger than this get no keep-alive: they are likely to end on their own soon. */
const KEEP_ALIVE_AFTER_MS = 1_000;

export class Listener {
  readonly bridges = new Set<Bridge>();
  readonly counters: ListenerCounters = addCounters();
  /** Open bridges per client address, for maxConnectionsPerClient. */
  private readonly perClient = new Map<string, number>();
  private readonly refusals: RefusalLog;
  private server: Server | undefined;
  private pool: TargetPool;
  private policy: Policy;
  private whenDrained: (() => void)[] = [];
  /** Open bridges accepted since the last keep-alive sweep. */
  private young = new Set<Bridge>();
  private sweep: NodeJS.Timeout | undefined;

  constructor(
    private current: ListenerConfig,
    private readonly log: Logger,
    /** Told of every bridge end, after its slots are released (metrics). */
    private readonly onBridgeEnd?: (end: BridgeEnd) => void,
  ) {
    this.pool = new TargetPool(current, log);
    this.policy = compilePolicy(current);
    this.refusals = new RefusalLog(log, current.name);
  }

  get config(): ListenerConfig {
    return this.current;
  }

  get accepting(): boolean {
    return this.server?.listening ?? false;
  }

  /**
   * Binds an address whose clients will be served by this listener, without giving up
   * the current one: a reload binds everything new before it changes anything.
   * Rejects with the system's reason (EADDRINUSE, EACCES, ...).
   */
  bind(address: HostPort): Promise<Server> {
    const server = createServer(
      {
        allowHalfOpen: true,
        // Nothing is read from a client until its target is connected.
        pauseOnConnect: true,
        noDelay: true,
      },
      (socket) => this.accept(socket),
    );
    return new Promise((resolve, reject) => {
      server.once("error", reject);
      server.listen({ host: address.host === "" ? undefined : address.host, port: address.port }, () => {
        server.off("error", reject);
        // After bind, errors come from accept (EMFILE, ENFILE): that client is lost, the listener lives.
        server.on("error", (error: NodeJS.ErrnoException) =>
          this.log.error({ listener: this.current.name, code: error.code }, `accept failed: ${error.message}`),
        );
        resolve(server);
      });
    });
  }

  /** Serves from server from now on; the previous listening socket, if any, is closed. */
  use(server: Server | undefined): void {
    const previous = this.server;
    this.server = server;
    // close() only stops accepting: connections already handed over are bridges of ours.
    if (previous?.listening) previous.close();
  }

  /** New settings for new bridges; open bridges keep the settings they started with. */
  update(config: ListenerConfig): void {
    this.pool = this.pool.reconfigure(config);
    this.policy = compilePolicy(config);
    this.current = config;
  }

  /** Stops accepting; open bridges carry on. */
  stopAccepting(): void {
    if (this.server?.listening) this.server.close();
    this.refusals.flush();
  }

  /** A removed listener: stops accepting and stops checking its targets. */
  retire(): void {
    this.stopAccepting();
    this.pool.stop();
  }

  get targets() {
    return this.pool.targets;
  }

  /** Bytes carried so far, open bridges included. */
  bytes(): { up: number; down: number } {
    let up = this.counters.bytesUpClosed;
    let down = this.counters.bytesDownClosed;
    for (const bridge of this.bridges) {
      const b = bridge.bytes();
      up += b.up;
      down += b.down;
    }
    return { up, down };
  }

  /** Resolves once every bridge of this listener has ended. */
  drained(): Promise<void> {
    if (this.bridges.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.whenDrained.push(resolve));
  }

  endAll(reason: EndReason): void {
    for (const bridge of [...this.bridges]) bridge.finish(reason);
  }

  /** The open bridges, as a reload plan sees them. */
  openBridges(draining: boolean): OpenBridge[] {
    return [...this.bridges].map((b) => {
      const bytes = b.bytes();
      return {
        id: b.id,
        listener: this.current.name,
        client: b.clientAddress,
        clientPort: b.clientPort,
        target: b.targetKey,
        startedAt: b.openedAt,
        bytesUp: bytes.up,
        bytesDown: bytes.down,
        draining,
      };
    });
  }

  /** Ends the bridges with these ids; returns how many it ended. */
  closeBridges(ids: ReadonlySet<number>, reason: EndReason): number {
    let closed = 0;
    for (const bridge of [...this.bridges]) {
      if (!ids.has(bridge.id)) continue;
      bridge.finish(reason);
      closed++;
    }
    return closed;
  }

  /** recheck: once the schedule admits no new client, the open bridges end too. */
  recheckSchedule(nowMs: number): void {
    for (const bridge of [...this.bridges]) {
      const client = parseClientAddress(bridge.clientAddress);
      const decision = client && this.policy.decide(client, nowMs, { total: 0, fromClient: 0 });
      if (decision && !decision.admit && decision.reason === "schedule") bridge.finish("recheck");
    }
  }

  /** Asks the policy once, before any target is contacted; a refused client is closed at once. */
  private accept(socket: Socket): void {
    this.counters.accepted++;
    const client = parseClientAddress(socket.remoteAddress ?? "");
    if (!client) {
      // The client left before we saw it: nothing to admit, nothing to log.
      socket.destroy();
      this.counters.closed++;
      return;
    }
    const fromClient = this.perClient.get(client.text) ?? 0;
    const now = Date.now();
    const decision = this.policy.decide(client, now, { total: this.bridges.size, fromClient });
    if (!decision.admit) {
      socket.destroy();
      this.counters.refused[decision.reason]++;
      this.refusals.refused(
        {
          listener: this.current.name,
          client: client.text,
          clientPort: socket.remotePort ?? 0,
          reason: decision.reason,
          rule: decision.detail,
        },
        now,
      );
      return;
    }
    this.perClient.set(client.text, fromClient + 1);
    const inspector = this.current.inspect
      ? createInspector(this.log, this.current.name, client.text, socket.remotePort ?? 0)
      : undefined;
    const bridge = new Bridge(
      socket,
      client.text,
      this.current,
      (end, done) => this.ended(end, done, client.text),
      inspector,
    );
    this.bridges.add(bridge);
    this.scheduleKeepAlive(bridge);
    bridge.connect(this.pool, client.text);
  }

  /**
   * One timer per listener, not per bridge: a second after a batch of bridges was
   * accepted, those still open get TCP keep-alive (see Bridge.enableKeepAlive).
   */
  private scheduleKeepAlive(bridge: Bridge): void {
    this.young.add(bridge);
    if (this.sweep) return;
    this.sweep = setTimeout(() => {
      this.sweep = undefined;
      const batch = this.young;
      this.young = new Set();
      for (const b of batch) b.enableKeepAlive();
    }, KEEP_ALIVE_AFTER_MS);
    this.sweep.unref();
  }

  /** Runs exactly once per bridge, however it ended: the one place its slots are released. */
  private ended(end: BridgeEnd, bridge: Bridge, clientKey: string): void {
    this.bridges.delete(bridge);
    // A bridge that ended holds nothing and must not be held: no keep-alive, no reference.
    this.young.delete(bridge);
    this.counters.closed++;
    this.counters.bytesUpClosed += end.bytesUp;
    this.counters.bytesDownClosed += end.bytesDown;
    const left = (this.perClient.get(clientKey) ?? 1) - 1;
    if (left > 0) this.perClient.set(clientKey, left);
    else this.perClient.delete(clientKey);
    this.onBridgeEnd?.(end);
    const fields = {
      listener: end.listener,
      client: end.client,
      clientPort: end.clientPort,
      target: end.target,
      bytesUp: end.bytesUp,
      bytesDown: end.bytesDown,
      durationMs: end.durationMs,
      end: end.reason,
      ...(end.errors.length > 0 && { errors: end.errors }),
    };
    if (end.reason === "connect-failed") this.log.warn(fields, "no target reachable");
    else if (end.reason === "filter-error") this.log.warn(fields, "bridge closed: its filter failed");
    else this.log.info(fields, "bridge closed");
    if (this.bridges.size === 0) for (const resolve of this.whenDrained.splice(0)) resolve();
  }
}
