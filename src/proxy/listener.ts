// A listener is a name with a config, the bridges it accepted, and the listening socket
// that currently feeds it. A reload may swap the config or the socket; bridges stay.
import { createServer, type Server, type Socket } from "node:net";
import type { HostPort } from "../config/address.ts";
import type { ListenerConfig } from "../config/runtime.ts";
import type { Logger } from "../log.ts";
import type { OpenBridge } from "../plan/plan.ts";
import { type ClientAddress, parseClientAddress } from "../policy/address-match.ts";
import {
  compilePolicy,
  limitRefusal,
  type Policy,
  REFUSAL_REASONS,
  type RefusalReason,
  UNCOUNTED,
} from "../policy/admission.ts";
import { Bridge, type BridgeEnd, type EndReason } from "./bridge.ts";
import { CLOSE_REASONS, type CloseReason } from "./close-reasons.ts";
import { createInspector } from "./inspect.ts";
import { reachTarget } from "./reach-target.ts";
import { RefusalLog } from "./refusal-log.ts";
import { Router } from "./router.ts";
import { RuleHits, type RuleHitsSnapshot } from "./rule-hits.ts";
import { LocalSlots, type Slots, type Taken } from "./slots.ts";
import { type Arrival, directArrival, readProxyHeader } from "./stages/proxy-header.ts";

/** Running totals per listener; at any quiet moment accepted = refused + closed + open. */
export interface ListenerCounters {
  accepted: number;
  refused: Record<RefusalReason, number>;
  closed: number;
  /** Bridges that ended, by how (clients gone before admission are only in closed). */
  closedBy: Record<CloseReason, number>;
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
    closedBy: Object.fromEntries(CLOSE_REASONS.map((r) => [r, sum((c) => c.closedBy[r])])) as Record<
      CloseReason,
      number
    >,
    bytesUpClosed: sum((c) => c.bytesUpClosed),
    bytesDownClosed: sum((c) => c.bytesDownClosed),
  };
}

/** Bridges younger than this get no keep-alive: they are likely to end on their own soon. */
const KEEP_ALIVE_AFTER_MS = 1_000;

export class Listener {
  readonly bridges = new Set<Bridge>();
  readonly counters: ListenerCounters = addCounters();
  private readonly refusals: RefusalLog;
  /** Connections from a trusted balancer whose PROXY header has not arrived yet. */
  private readonly awaitingHeader = new Set<Socket>();
  private server: Server | undefined;
  private readonly router: Router;
  private policy: Policy;
  private hits: RuleHits;
  private whenDrained: (() => void)[] = [];
  /** Open bridges accepted since the last keep-alive sweep. */
  private young = new Set<Bridge>();
  private sweep: NodeJS.Timeout | undefined;

  constructor(
    private current: ListenerConfig,
    private readonly log: Logger,
    /** Told of every bridge end, after its slots are released (metrics). */
    private readonly onBridgeEnd?: (end: BridgeEnd) => void,
    /** Open bridges, for maxConnections and maxConnectionsPerClient; shared by workers. */
    private readonly slots: Slots = new LocalSlots(),
    /** SO_REUSEPORT: several workers listen on the same address. */
    private readonly reusePort = false,
  ) {
    this.router = new Router(current, log);
    this.policy = compilePolicy(current);
    this.hits = RuleHits.of(current);
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
      const host = address.host === "" ? undefined : address.host;
      // reusePort is in Node's ListenOptions from 22.12 on; the config check refuses workers on older ones.
      server.listen({ host, port: address.port, ...(this.reusePort && { reusePort: true }) }, () => {
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
    this.router.update(config);
    this.policy = compilePolicy(config);
    this.hits = RuleHits.of(config, this.hits);
    this.current = config;
  }

  /** Stops accepting; open bridges carry on. */
  stopAccepting(): void {
    if (this.server?.listening) this.server.close();
    this.refusals.flush();
  }

  /** A removed listener: stops accepting, closes connections still owing a PROXY header, stops checking its targets. */
  retire(): void {
    this.stopAccepting();
    for (const socket of this.awaitingHeader) socket.destroy();
    this.awaitingHeader.clear();
    this.router.stop();
  }

  /** Hits of each allow and deny entry of the current config. */
  ruleHits(): RuleHitsSnapshot {
    return this.hits.snapshot();
  }

  /** Every pool's targets: the listener's own (route undefined), then each route's. */
  get pools() {
    return this.router.pools();
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

  /**
   * A peer that acceptProxy trusts sends its PROXY header first; anyone else is the
   * client. Then the policy is asked once, before any target is contacted.
   */
  private accept(socket: Socket): void {
    this.counters.accepted++;
    const peer = parseClientAddress(socket.remoteAddress ?? "");
    if (!peer) {
      // The client left before we saw it: nothing to admit, nothing to log.
      socket.destroy();
      this.counters.closed++;
      return;
    }
    if (this.policy.sendsProxyHeader(peer)) void this.acceptProxied(socket, peer);
    else this.admit(socket, directArrival(socket, peer));
  }

  /** A balancer's connection: admitted as the client its PROXY header names, or refused. */
  private async acceptProxied(socket: Socket, peer: ClientAddress): Promise<void> {
    const peerPort = socket.remotePort ?? 0;
    this.awaitingHeader.add(socket);
    const outcome = await readProxyHeader(socket, peer, this.current.acceptProxy?.timeoutMs ?? 0);
    if (!this.awaitingHeader.delete(socket)) {
      // retire() closed it.
      this.counters.closed++;
      return;
    }
    if (outcome.ok) {
      this.admit(socket, outcome.arrival);
      return;
    }
    socket.destroy();
    // A balancer's TCP check connects and leaves without a byte: not worth a log line.
    if (outcome.silent) {
      this.counters.closed++;
      return;
    }
    this.counters.refused["proxy-header"]++;
    const fields = { listener: this.current.name, client: peer.text, clientPort: peerPort };
    this.refusals.refused({ ...fields, reason: "proxy-header", rule: outcome.detail }, Date.now());
  }

  /** Asks the policy once, before any target is contacted; a refused client is closed at once. */
  private admit(socket: Socket, arrival: Arrival): void {
    const client = arrival.client;
    const now = Date.now();
    // Limits are counted by the slots, which check and take in one step (exact across workers).
    let decision = this.policy.decide(client, now, UNCOUNTED, arrival.trusted);
    // An allow entry counts the clients it let past the allow step, whatever limits decide.
    if (decision.entry) this.hits.record(decision.entry, now);
    const taken = decision.admit ? this.slots.take(client, this.current) : undefined;
    if (taken !== undefined && taken !== "listener" && taken !== "listener+client") {
      decision = limitRefusal(taken, this.current);
    }
    if (!decision.admit) {
      socket.destroy();
      this.counters.refused[decision.reason]++;
      this.refusals.refused(
        {
          listener: this.current.name,
          client: client.text,
          clientPort: arrival.port,
          reason: decision.reason,
          rule: decision.detail,
          ...(decision.reason === "deny" &&
            decision.entry && { entry: decision.entry.rule, cidr: decision.entry.cidr }),
        },
        now,
      );
      return;
    }
    const inspector = this.current.inspect
      ? createInspector(this.log, this.current.name, client.text, arrival.port)
      : undefined;
    const bridge = new Bridge(
      socket,
      { address: client.text, port: arrival.port, headerBytes: arrival.headerBytes },
      this.current,
      (end, done) => this.ended(end, done, client, taken as Taken),
      inspector,
    );
    this.bridges.add(bridge);
    this.scheduleKeepAlive(bridge);
    const way = {
      router: this.router,
      connectTimeoutMs: this.current.connectTimeoutMs,
      clientKey: client.text,
      arrival,
    };
    void reachTarget(bridge, way);
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
  private ended(end: BridgeEnd, bridge: Bridge, client: ClientAddress, taken: Taken): void {
    this.bridges.delete(bridge);
    // A bridge that ended holds nothing and must not be held: no keep-alive, no reference.
    this.young.delete(bridge);
    this.slots.release(client, taken);
    if (end.reason === "route") this.refusedRoute(end);
    else this.closed(end, end.reason);
    if (this.bridges.size === 0) for (const resolve of this.whenDrained.splice(0)) resolve();
  }

  /** Refused after admission: no route for its ClientHello. Nothing reached a target. */
  private refusedRoute(end: BridgeEnd): void {
    this.counters.refused.route++;
    const fields = { listener: end.listener, client: end.client, clientPort: end.clientPort };
    this.refusals.refused({ ...fields, reason: "route", rule: end.refusal ?? "" }, Date.now());
  }

  private closed(end: BridgeEnd, reason: CloseReason): void {
    this.counters.closed++;
    this.counters.closedBy[reason]++;
    this.counters.bytesUpClosed += end.bytesUp;
    this.counters.bytesDownClosed += end.bytesDown;
    this.onBridgeEnd?.(end);
    const quiet = end.reason !== "connect-failed" && end.reason !== "filter-error";
    // At warn and above (as in a busy instance) the line is not built at all.
    if (quiet && !this.log.isLevelEnabled("info")) return;
    const fields = {
      listener: end.listener,
      client: end.client,
      clientPort: end.clientPort,
      target: end.target,
      bytesUp: end.bytesUp,
      bytesDown: end.bytesDown,
      durationMs: end.durationMs,
      end: end.reason,
      route: end.route,
      serverName: end.serverName,
      ...(end.errors.length > 0 && { errors: end.errors }),
    };
    if (quiet) this.log.info(fields, "bridge closed");
    else if (end.reason === "connect-failed") this.log.warn(fields, "no target reachable");
    else this.log.warn(fields, "bridge closed: its filter failed");
  }
}
