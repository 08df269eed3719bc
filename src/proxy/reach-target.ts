// What happens to an admitted client before its bridge carries bytes: a target is dialed
// from the pool, our own PROXY header goes first when the listener sends one, and the
// bridge joins the two sockets.
import type { Bridge } from "./bridge.ts";
import { type Endpoints, proxyHeaderV1, proxyHeaderV2 } from "./proxy-protocol.ts";
import type { TargetPool } from "./target-pool.ts";

export interface Onward {
  readonly pool: TargetPool;
  readonly proxyProtocol: "v1" | "v2" | undefined;
}

/**
 * Dials and joins; ends the bridge as connect-failed when no target answers. clientKey
 * is the client's address (source-hash); endpoints the PROXY header's, undefined when
 * unknown (sent as UNKNOWN in v1, LOCAL in v2).
 */
export async function reachTarget(
  bridge: Bridge,
  onward: Onward,
  clientKey: string,
  endpoints: Endpoints | undefined,
): Promise<void> {
  const dialed = await onward.pool.dial(clientKey, bridge.signal);
  if (!dialed.socket) {
    if (!bridge.done) bridge.connectFailed(dialed.errors);
    return;
  }
  if (onward.proxyProtocol && !bridge.done) dialed.socket.write(proxyHeader(onward.proxyProtocol, endpoints));
  bridge.join(dialed);
}

function proxyHeader(version: "v1" | "v2", endpoints: Endpoints | undefined): Buffer {
  return version === "v1" ? proxyHeaderV1(endpoints) : proxyHeaderV2(endpoints);
}
