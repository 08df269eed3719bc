// A bridge joins one client socket to one target socket: bytes flow both ways in order,
// a FIN is passed on as a FIN, a reset as a reset, and a slow reader slows the writer.
import { connect, type Socket } from "node:net";
import type { ListenerConfig } from "../config/runtime.ts";
import type { Inspector } from "./inspect.ts";
import { proxyHeaderV1, proxyHeaderV2 } from "./proxy-protocol.ts";
import type { TargetPool, TargetState } from "./target-pool.ts";

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
  | "recheck";

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
}

export type BridgeSettings = Pick<
  ListenerConfig,
  "name" | "connectTimeoutMs" | "idleTimeoutMs" | "maxDurationMs" | "halfCloseTimeoutMs" | "proxyProtocol"
>;

/** Keep-alive probes find peers that vanished without a FIN (a pulled cable, a dead NAT entry). */
const KEEP_ALIVE_DELAY_MS = 60_000;

let bridges = 0;

export class Bridge {
  /** Unique in this process: a plan names bridges by it. */
  readonly id = ++bridges;
  /** Epoch ms, for the age a plan shows. */
  readonly openedAt = Date.now();
  readonly client: Socket;
  readonly clientAddress: string;
  readonly clientPort: number;
  private readonly startedAt = performance.now();
  private target: Socket | undefined;
  private targetState: TargetState | undefined;
  /** The target whose count this bridge holds: the one it is connecting to or joined. */
  private holding: TargetState | undefined;
  private readonly tried = new Set<TargetState>();
  private readonly errors: string[] = [];
  private firstEnd: EndReason | undefined;
  private clientClosed = false;
  private targetClosed = false;
  private finished = false;
  private pending: Socket | undefined;
  private durationTimer: NodeJS.Timeout | undefined;
  private keepAlive = false;

  /** clientAddress: the client as admission saw it (IPv4-mapped addresses unmapped). */
  constructor(
    client: Socket,
    clientAddress: string,
    private readonly settings: BridgeSettings,
    private readonly onEnd: (end: BridgeEnd, bridge: Bridge) => void,
    private readonly inspector?: Inspector,
  ) {
    this.client = client;
    this.clientAddress = clientAddress;
    // remotePort is gone once the socket is destroyed: read it now.
    this.clientPort = client.remotePort ?? 0;
    client.on("error", (error) => this.onSocketError("client", error));
    client.on("close", () => {
      this.clientClosed = true;
      if (this.target) this.maybeFinish();
      else this.finish(this.firstEnd ?? "client-closed");
    });
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
    this.target?.setKeepAlive(true, KEEP_ALIVE_DELAY_MS);
  }

  /** The target joined, or being connected to. */
  get targetKey(): string | undefined {
    return (this.targetState ?? this.holding)?.config.key;
  }

  /** Bytes carried so far: client → target (up) and target → client (down). */
  bytes(): { up: number; down: number } {
    return { up: this.client.bytesRead, down: this.target?.bytesRead ?? 0 };
  }

  /**
   * Opens the target side, trying each target at most once in the pool's order.
   * clientKey is the client's address, for source-hash balancing.
   */
  connect(pool: TargetPool, clientKey: string): void {
    if (this.finished) return;
    const candidate = pool.next(this.tried, clientKey);
    if (!candidate) {
      this.finish("connect-failed");
      return;
    }
    this.tried.add(candidate);
    candidate.open++;
    this.holding = candidate;
    const socket = connect({
      host: candidate.config.address.host,
      port: candidate.config.address.port,
      allowHalfOpen: true,
      noDelay: true,
    });
    // Node has no connect timeout: a SYN into a black hole would wait for minutes.
    socket.setTimeout(this.settings.connectTimeoutMs);
    const onTimeout = () => giveUp("ETIMEDOUT");
    const onError = (error: NodeJS.ErrnoException) => giveUp(error.code ?? error.message);
    const onConnect = () => {
      settled();
      socket.setTimeout(0);
      if (this.finished) {
        socket.destroy();
        return;
      }
      pool.connected(candidate);
      this.join(socket, candidate);
    };
    // Only our own listeners go: Node keeps internal ones on the socket.
    const settled = () => {
      socket.off("timeout", onTimeout);
      socket.off("error", onError);
      socket.off("connect", onConnect);
    };
    const giveUp = (code: string) => {
      settled();
      // Errors after giving up (a late RST) belong to nobody; swallow them.
      socket.on("error", () => {});
      socket.destroy();
      this.release();
      if (this.finished) return;
      this.errors.push(`${candidate.config.key} ${code}`);
      pool.connectFailed(candidate, code);
      this.connect(pool, clientKey);
    };
    socket.once("timeout", onTimeout);
    socket.once("error", onError);
    socket.once("connect", onConnect);
    this.pending = socket;
  }

  private join(target: Socket, state: TargetState): void {
    this.pending = undefined;
    this.target = target;
    this.targetState = state;
    const client = this.client;
    if (this.keepAlive) target.setKeepAlive(true, KEEP_ALIVE_DELAY_MS);
    if (this.settings.proxyProtocol) target.write(this.proxyHeader(this.settings.proxyProtocol));
    target.on("error", (error) => this.onSocketError("target", error));
    target.on("close", () => {
      this.targetClosed = true;
      this.maybeFinish();
    });
    forward(client, target, () => this.onHalfClose("client-closed"));
    forward(target, client, () => this.onHalfClose("target-closed"));
    const inspector = this.inspector;
    if (inspector) {
      client.on("data", (chunk: Buffer) => inspector("up", chunk));
      target.on("data", (chunk: Buffer) => inspector("down", chunk));
    }
    // Every byte either way passes through the client socket, so its inactivity timer
    // is the bridge's: no extra timer or per-chunk bookkeeping needed.
    client.on("timeout", () => this.finish(this.firstEnd === undefined ? "idle-timeout" : "half-close-timeout"));
    client.setTimeout(this.settings.idleTimeoutMs);
    if (this.settings.maxDurationMs !== undefined) {
      this.durationTimer = setTimeout(() => this.finish("max-duration"), this.settings.maxDurationMs);
    }
    client.resume();
  }

  /**
   * Once one side has closed its half, the bridge may sit idle for halfCloseTimeout at
   * most (HAProxy's `timeout client-fin`): an inactivity limit, so a long download after
   * the client's FIN is never cut while bytes still flow.
   */
  private onHalfClose(reason: EndReason): void {
    if (this.firstEnd !== undefined) return;
    this.firstEnd = reason;
    this.client.setTimeout(Math.min(this.settings.idleTimeoutMs, this.settings.halfCloseTimeoutMs));
  }

  private onSocketError(side: "client" | "target", error: NodeJS.ErrnoException): void {
    this.errors.push(`${side} ${error.code ?? error.message}`);
    this.finish(side === "client" ? "client-reset" : "target-reset");
  }

  private maybeFinish(): void {
    if (this.clientClosed && this.targetClosed) this.finish(this.firstEnd ?? "client-closed");
    else if (this.clientClosed && this.firstEnd === undefined) this.finish("client-closed");
    else if (this.targetClosed && this.firstEnd === undefined) this.finish("target-closed");
  }

  /** Gives back the count this bridge holds on a target, once. */
  private release(): void {
    if (this.holding) this.holding.open--;
    this.holding = undefined;
  }

  /** The PROXY header: the client's address, and the address it connected to. */
  private proxyHeader(version: "v1" | "v2"): Buffer {
    const endpoints = {
      sourceAddress: this.clientAddress,
      sourcePort: this.clientPort,
      destinationAddress: this.client.localAddress ?? "",
      destinationPort: this.client.localPort ?? 0,
    };
    return version === "v1" ? proxyHeaderV1(endpoints) : proxyHeaderV2(endpoints);
  }

  /** Ends the bridge once; a reset on one side is passed on as a reset to the other. */
  finish(reason: EndReason): void {
    if (this.finished) return;
    this.finished = true;
    this.release();
    clearTimeout(this.durationTimer);
    const resetOther = reason === "client-reset" ? this.target : reason === "target-reset" ? this.client : undefined;
    for (const socket of [this.client, this.target, this.pending]) {
      if (!socket || socket.destroyed) continue;
      if (socket === resetOther) socket.resetAndDestroy();
      else socket.destroy();
    }
    this.onEnd(
      {
        listener: this.settings.name,
        client: this.clientAddress,
        clientPort: this.clientPort,
        target: this.targetState?.config.key,
        bytesUp: this.client.bytesRead,
        bytesDown: this.target?.bytesRead ?? 0,
        durationMs: Math.round(performance.now() - this.startedAt),
        reason,
        errors: this.errors,
      },
      this,
    );
  }
}

const NOTHING = Buffer.alloc(0);

/**
 * Copies from one socket to the other with backpressure, and passes a FIN on as a FIN.
 * A bare pipe() would end the destination on error too, and hide which side ended first.
 */
function forward(from: Socket, to: Socket, onEnd: () => void): void {
  from.on("data", (chunk: Buffer) => {
    if (!to.write(chunk)) from.pause();
  });
  to.on("drain", () => from.resume());
  from.on("end", () => {
    // libuv reports a reset that arrives behind unread data as a plain EOF (POLLHUP after
    // a partial read), so a truncated upload would reach the other side as a clean FIN. A
    // zero-byte write asks the kernel: it fails on a reset socket (the error event then
    // ends the bridge as a reset) and sends nothing on a live one. With writes pending,
    // their own failure reports the reset; the probe would only wait behind them.
    if (from.writableEnded || from.writableLength > 0) {
      to.end();
      onEnd();
      return;
    }
    from.write(NOTHING, (error) => {
      if (error) return;
      to.end();
      onEnd();
    });
  });
}
