// A listener owns one listening socket and the bridges it accepted.
import { createServer, type Server, type Socket } from "node:net";
import type { ListenerConfig } from "../config/runtime.ts";
import type { Logger } from "../log.ts";
import { type Balancer, RoundRobin } from "./balancer.ts";
import { Bridge, type BridgeEnd, type EndReason } from "./bridge.ts";

export class Listener {
  readonly bridges = new Set<Bridge>();
  private readonly server: Server;
  private readonly balancer: Balancer;
  private whenDrained: (() => void) | undefined;

  constructor(
    readonly config: ListenerConfig,
    private readonly log: Logger,
  ) {
    this.balancer = new RoundRobin(config.targets);
    this.server = createServer(
      {
        allowHalfOpen: true,
        // Nothing is read from a client until its target is connected.
        pauseOnConnect: true,
        noDelay: true,
        keepAlive: true,
        keepAliveInitialDelay: 60_000,
      },
      (socket) => this.accept(socket),
    );
  }

  /** Binds the listen address; rejects with the system's reason (EADDRINUSE, EACCES, ...). */
  listen(): Promise<void> {
    const { host, port } = this.config.listen;
    return new Promise((resolve, reject) => {
      const fail = (error: Error) => reject(error);
      this.server.once("error", fail);
      this.server.listen({ host: host === "" ? undefined : host, port }, () => {
        this.server.off("error", fail);
        // After bind, errors come from accept (EMFILE, ENFILE): the client is lost, the listener lives.
        this.server.on("error", (error: NodeJS.ErrnoException) =>
          this.log.error({ listener: this.config.name, code: error.code }, `accept failed: ${error.message}`),
        );
        resolve();
      });
    });
  }

  /** Stops accepting; open bridges carry on. */
  stopAccepting(): void {
    if (this.server.listening) this.server.close();
  }

  /** Resolves once every bridge of this listener has ended. */
  drained(): Promise<void> {
    if (this.bridges.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.whenDrained = resolve;
    });
  }

  endAll(reason: EndReason): void {
    for (const bridge of [...this.bridges]) bridge.finish(reason);
  }

  private accept(client: Socket): void {
    const bridge = new Bridge(client, this.config, (end, done) => this.ended(end, done));
    this.bridges.add(bridge);
    bridge.connect(this.balancer);
  }

  private ended(end: BridgeEnd, bridge: Bridge): void {
    this.bridges.delete(bridge);
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
    else this.log.info(fields, "bridge closed");
    if (this.bridges.size === 0 && this.whenDrained) {
      this.whenDrained();
      this.whenDrained = undefined;
    }
  }
}
