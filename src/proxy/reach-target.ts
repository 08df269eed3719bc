// What happens to an admitted client before its bridge carries bytes: with routes, its
// ClientHello picks the pool; a target is dialed from the pool, our own PROXY header goes
// first when the pool's listener or route sends one, and the bridge joins the two sockets.
import type { Bridge } from "./bridge.ts";
import { type Endpoints, proxyHeaderV1, proxyHeaderV2 } from "./proxy-protocol.ts";
import type { Router } from "./router.ts";
import { peekClientHello } from "./stages/client-hello.ts";
import type { Arrival } from "./stages/proxy-header.ts";
import type { TargetPool } from "./target-pool.ts";

export interface Onward {
  readonly pool: TargetPool;
  readonly proxyProtocol: "v1" | "v2" | undefined;
}

export interface Way {
  readonly router: Router;
  /** The listener's connectTimeout: the ClientHello must arrive within it. */
  readonly connectTimeoutMs: number;
  /** The client's address, for source-hash. */
  readonly clientKey: string;
  /** Its endpoints are what our PROXY header says; read only when one is sent. */
  readonly arrival: Pick<Arrival, "endpoints">;
}

/**
 * Routes, dials and joins; refuses the bridge (reason route) when its ClientHello finds
 * no way, and ends it as connect-failed when no target answers.
 */
export async function reachTarget(bridge: Bridge, way: Way): Promise<void> {
  let onward = way.router.default;
  if (way.router.routing) {
    const hello = await peekClientHello(bridge.client, way.connectTimeoutMs, bridge.signal);
    if (bridge.done) return;
    if (!hello.ok) {
      bridge.refuse(hello.detail);
      return;
    }
    const routed = way.router.route(hello.serverName);
    bridge.setRouting({ route: routed?.route, serverName: hello.serverName });
    onward = routed;
    if (!onward) {
      bridge.refuse(
        hello.serverName === undefined ? "no server name, no default targets" : `no route for ${hello.serverName}`,
      );
      return;
    }
  }
  if (!onward) {
    bridge.connectFailed([]);
    return;
  }
  const dialed = await onward.pool.dial(way.clientKey, bridge.signal);
  if (!dialed.socket) {
    if (!bridge.done) bridge.connectFailed(dialed.errors);
    return;
  }
  if (onward.proxyProtocol && !bridge.done)
    dialed.socket.write(proxyHeader(onward.proxyProtocol, way.arrival.endpoints));
  bridge.join(dialed);
}

function proxyHeader(version: "v1" | "v2", endpoints: Endpoints | undefined): Buffer {
  return version === "v1" ? proxyHeaderV1(endpoints) : proxyHeaderV2(endpoints);
}
