// A bridge joins one client socket to one target socket: bytes flow both ways in order,
// a FIN is passed on as a FIN, a reset as a reset, and a slow reader slows the writer.
// It exists from admission on (it holds the client's slot); what happens before the
// target is joined (reading a ClientHello, dialing) is done by others, who watch signal.
import type { Socket } from "node:net";
import type { ListenerConfig } from "../config/runtime.ts";
import { type FilterEndReason, filterBridge } from "./filter-stream.ts";
import { forward } from "./forward.ts";
import type { Inspector } from "./inspect.ts";
import type { Stop } from "./stop.ts";

export type EndReason =
  | "client-closed"
  | "target-closed"
  | "client-reset"
  | "target-reset"
  | "idle-timeout"
  | "max-duration"
  | "half-close-timeout"
  | "connect-failed"
  | "shutdown"
  | "recheck"
  /** Refused after admission: no route for the client's ClientHello (refusal says why). */
  | "route"
  | FilterEndReason;

export interface BridgeEnd {
  readonly listener: string;
  readonly client: string;
  readonly clientPort: number;
  /** The target that carried the bridge; undefined when none could be reached. */
  readonly target: string | undefined;
  /** Client → target. */
  readonly bytesUp: number;
  /** Target → client. */
  readonly bytesDown: number;
  readonly durationMs: number;
  readonly reason: EndReason;
  /** Error codes behind the reason: the reset's, or each failed connect attempt's. */
  readonly errors: readonly string[];
  /** Why a "route" end was refused. */
  readonly refusal?: string;
  /** With routes: the route that took the bridge (its names joined by ","); absent for the listener's own targets. */
  readonly route?: string;
  /** With routes: the server name the ClientHello asked for; absent when it named none. */
  readonly serverName?: string;
}

/** Where a listener with routes sent the bridge, for its access-log line. */
export type Routed = Pick<BridgeEnd, "route" | "serverName">;

export type BridgeSettings = Pick<
  ListenerConfig,
  "name" | "idleTimeoutMs" | "maxDurationMs" | "halfCloseTimeoutMs" | "filter"
>;

/** The client as admission saw it: the PROXY header's source when one was read, else the peer. */
export interface BridgeClient {
  /** IPv4-mapped addresses unmapped. */
  readonly address: string;
  readonly port: number;
  /** Bytes of a PROXY header read from the client: not carried, so not counted as carried. */
  readonly headerBytes: number;
}

/** The target side, as a pool's dial hands it over. */
export interface JoinedTarget {
  readonly socket: Socket;
  readonly target: string;
  /** Gives back the pool's count for the target. */
  readonly release: () => void;
  /** Failed attempts before this target was reached (failover), for the access log. */
  readonly errors: readonly string[];
}

/** Keep-alive probes find peers that vanished without a FIN (a pulled cable, a dead NAT entry). */
const KEEP_ALIVE_DELAY_MS = 60_000;

let bridges = 0;

export class Bridge implements Stop {
  /** Unique in this process: a plan names bridges by it. */
  readonly id = ++bridges;
  /** Epoch ms, for the age a plan shows. */
  readonly openedAt = Date.now();
  readonly client: Socket;
  readonly clientAddress: string;
  readonly clientPort: number;
  private readonly headerBytes: number;
  private readonly startedAt = performance.now();
  /** Steps watching for the end while the bridge is not joined yet (see Stop). */
  private watchers: (() => void)[] | undefined;
  private target: JoinedTarget | undefined;
  private readonly errors: string[] = [];
  private firstEnd: EndReason | undefined;
  private refusal: string | undefined;
  private routing: Routed | undefined;
  private clientClosed = false;
  private targetClosed = false;
  private finished = false;
  private durationTimer: NodeJS.Timeout | undefined;
  private keepAlive = false;

  constructor(
    client: Socket,
    who: BridgeClient,
    private readonly settings: BridgeSettings,
    private readonly onEnd: (end: BridgeEnd, bridge: Bridge) => void,
    private readonly inspector?: Inspector,
  ) {
    this.client = client;
    this.clientAddress = who.address;
    this.clientPort = who.port;
    this.headerBytes = who.headerBytes;
    (client as Carrier)[kBridge] = this;
    client.on("error", onClientError);
    client.on("close", onClientClose);
  }

  /** Aborted when the bridge ends before it is joined: whatever works towards joining it stops. */
  get signal(): Stop {
    return this;
  }

  get aborted(): boolean {
    return this.finished;
  }

  addEventListener(_type: "abort", listener: () => void): void {
    if (this.watchers) this.watchers.push(listener);
    else this.watchers = [listener];
  }

  removeEventListener(_type: "abort", listener: () => void): void {
    const at = this.watchers?.indexOf(listener) ?? -1;
    if (at >= 0) this.watchers?.splice(at, 1);
  }

  get done(): boolean {
    return this.finished;
  }

  /**
   * Turns on TCP keep-alive on both sockets. The listener calls it for bridges that
   * outlive their first second: keep-alive only matters to long-lived bridges, and on a
   * short one its four setsockopt calls per socket are a quarter of all its system calls.
   */
  enableKeepAlive(): void {
    if (this.finished || this.keepAlive) return;
    this.keepAlive = true;
    this.client.setKeepAlive(true, KEEP_ALIVE_DELAY_MS);
    this.target?.socket.setKeepAlive(true, KEEP_ALIVE_DELAY_MS);
  }

  /** The target joined; undefined while the bridge is still routing or dialing. */
  get targetKey(): string | undefined {
    return this.target?.target;
  }

  /** Bytes carried so far: client → target (up) and target → client (down). */
  bytes(): { up: number; down: number } {
    return { up: this.bytesUp(), down: this.target?.socket.bytesRead ?? 0 };
  }

  private bytesUp(): number {
    return Math.max(0, this.client.bytesRead - this.headerBytes);
  }

  /** Joins a connected target socket: from now on bytes flow. */
  join(joined: JoinedTarget): void {
    if (this.finished) {
      joined.socket.destroy();
      joined.release();
      return;
    }
    this.target = joined;
    this.errors.push(...joined.errors);
    const target = joined.socket;
    const client = this.client;
    if (this.keepAlive) target.setKeepAlive(true, KEEP_ALIVE_DELAY_MS);
    (target as Carrier)[kBridge] = this;
    target.on("error", onTargetError);
    target.on("close", onTargetClose);
    const filter = this.settings.filter;
    if (filter) {
      const facts = {
        listener: this.settings.name,
        client: this.clientAddress,
        clientPort: this.clientPort,
        target: joined.target,
      };
      filterBridge(filter, facts, client, target, {
        clientEnded: () => this.onHalfClose("client-closed"),
        targetEnded: () => this.onHalfClose("target-closed"),
        close: (reason, error) => {
          if (error) this.errors.push(error);
          this.finish(reason);
        },
      });
    } else {
      forward(client, target, halfClosed);
      forward(target, client, halfClosed);
    }
    const inspector = this.inspector;
    if (inspector) {
      client.on("data", (chunk: Buffer) => inspector("up", chunk));
      target.on("data", (chunk: Buffer) => inspector("down", chunk));
    }
    // Every byte either way passes through the client socket, so its inactivity timer
    // is the bridge's: no extra timer or per-chunk bookkeeping needed.
    client.on("timeout", onClientTimeout);
    client.setTimeout(this.settings.idleTimeoutMs);
    if (this.settings.maxDurationMs !== undefined) {
      this.durationTimer = setTimeout(() => this.finish("max-duration"), this.settings.maxDurationMs);
    }
    client.resume();
  }

  /** Its ClientHello was read: the access log names the route it picked and the name it asked for. */
  setRouting(routing: Routed): void {
    this.routing = routing;
  }

  /** No target could be reached: errors are each failed attempt's. */
  connectFailed(errors: readonly string[]): void {
    this.errors.push(...errors);
    this.finish("connect-failed");
  }

  /** Refused after admission (no route): closed before any byte reached a target. */
  refuse(why: string): void {
    this.refusal = why;
    this.finish("route");
  }

  /**
   * Once one side has closed its half, the bridge may sit idle for halfCloseTimeout at
   * most (HAProxy's `timeout client-fin`): an inactivity limit, so a long download after
   * the client's FIN is never cut while bytes still flow.
   */
  onHalfClose(reason: EndReason): void {
    if (this.firstEnd !== undefined) return;
    this.firstEnd = reason;
    this.client.setTimeout(Math.min(this.settings.idleTimeoutMs, this.settings.halfCloseTimeoutMs));
  }

  // The three below are called by the socket handlers every bridge shares (end of file).

  onSocketError(side: "client" | "target", error: NodeJS.ErrnoException): void {
    this.errors.push(`${side} ${error.code ?? error.message}`);
    this.finish(side === "client" ? "client-reset" : "target-reset");
  }

  onClose(side: "client" | "target"): void {
    if (side === "client") {
      this.clientClosed = true;
      // Not joined yet: nothing to wait for.
      if (!this.target) {
        this.finish(this.firstEnd ?? "client-closed");
        return;
      }
    } else this.targetClosed = true;
    this.maybeFinish();
  }

  onTimeout(): void {
    this.finish(this.firstEnd === undefined ? "idle-timeout" : "half-close-timeout");
  }

  private maybeFinish(): void {
    if (this.clientClosed && this.targetClosed) this.finish(this.firstEnd ?? "client-closed");
    else if (this.clientClosed && this.firstEnd === undefined) this.finish("client-closed");
    else if (this.targetClosed && this.firstEnd === undefined) this.finish("target-closed");
  }

  /** Ends the bridge once; a reset on one side is passed on as a reset to the other. */
  finish(reason: EndReason): void {
    if (this.finished) return;
    this.finished = true;
    this.target?.release();
    const watchers = this.watchers;
    this.watchers = undefined;
    if (watchers) for (const stop of watchers) stop();
    clearTimeout(this.durationTimer);
    const target = this.target?.socket;
    const resetOther = reason === "client-reset" ? target : reason === "target-reset" ? this.client : undefined;
    for (const socket of [this.client, target]) {
      if (!socket || socket.destroyed) continue;
      if (socket === resetOther) socket.resetAndDestroy();
      else socket.destroy();
    }
    this.onEnd(
      {
        listener: this.settings.name,
        client: this.clientAddress,
        clientPort: this.clientPort,
        target: this.target?.target,
        bytesUp: this.bytesUp(),
        bytesDown: target?.bytesRead ?? 0,
        durationMs: Math.round(performance.now() - this.startedAt),
        reason,
        errors: this.errors,
        ...(this.refusal !== undefined && { refusal: this.refusal }),
        ...this.routing,
      },
      this,
    );
  }
}

// Socket handlers shared by every bridge: each socket carries its bridge, so a bridge
// registers these instead of making a closure per event.
const kBridge = Symbol("bridge");
type Carrier = Socket & { [kBridge]: Bridge };

function onClientError(this: Carrier, error: NodeJS.ErrnoException): void {
  this[kBridge].onSocketError("client", error);
}

function onTargetError(this: Carrier, error: NodeJS.ErrnoException): void {
  this[kBridge].onSocketError("target", error);
}

function onClientClose(this: Carrier): void {
  this[kBridge].onClose("client");
}

function onTargetClose(this: Carrier): void {
  this[kBridge].onClose("target");
}

function onClientTimeout(this: Carrier): void {
  this[kBridge].onTimeout();
}

function halfClosed(from: Socket): void {
  const bridge = (from as Carrier)[kBridge];
  bridge.onHalfClose(from === bridge.client ? "client-closed" : "target-closed");
}
