// Stage one for a peer that acceptProxy trusts: its connection must start with a PROXY
// header, read within the timeout without taking a byte past it. The header says who
// the client is for every later step; a connection from anyone else is its own client.
import type { Socket } from "node:net";
import type { ClientAddress } from "../../policy/address-match.ts";
import { parseClientAddress } from "../../policy/address-match.ts";
import { type ProxyHeader, ProxyHeaderReader } from "../proxy-header-reader.ts";
import type { Endpoints } from "../proxy-protocol.ts";
import { readPrefix } from "./read-prefix.ts";

/** Who a connection is from, as every step after the PROXY header sees it. */
export interface Arrival {
  readonly client: ClientAddress;
  readonly port: number;
  /** The PROXY header's length, 0 without one. */
  readonly headerBytes: number;
  /** What a PROXY header sent on to the target says; undefined: unknown (UNKNOWN in v1, LOCAL in v2). */
  readonly endpoints: Endpoints | undefined;
  /** A balancer's own connection (v2 LOCAL): admitted without deny, allow and schedule. */
  readonly trusted: boolean;
}

export type HeaderOutcome =
  | { readonly ok: true; readonly arrival: Arrival }
  /** No header: silent when the peer sent nothing and left (a balancer's TCP check), else a refusal. */
  | { readonly ok: false; readonly silent: boolean; readonly detail: string };

/** A connection with no PROXY header: the peer is the client. */
export function directArrival(socket: Socket, peer: ClientAddress): Arrival {
  const port = socket.remotePort ?? 0;
  return {
    client: peer,
    port,
    headerBytes: 0,
    // Asked only when a PROXY header is sent on: the local address is a getsockname(2)
    // call, which most bridges never need.
    get endpoints(): Endpoints {
      return {
        sourceAddress: peer.text,
        sourcePort: port,
        destinationAddress: socket.localAddress ?? "",
        destinationPort: socket.localPort ?? 0,
      };
    },
    trusted: false,
  };
}

/** Reads the header from a trusted peer's connection; the bytes after it stay in the socket. */
export async function readProxyHeader(socket: Socket, peer: ClientAddress, timeoutMs: number): Promise<HeaderOutcome> {
  const reader = new ProxyHeaderReader();
  let received = 0;
  return readPrefix<HeaderOutcome>(
    socket,
    timeoutMs,
    undefined,
    (chunk) => {
      received += chunk.length;
      const result = reader.push(chunk);
      if (result.state === "more") return undefined;
      if (result.state === "error") return { verdict: { ok: false, silent: false, detail: result.reason } };
      const arrival = fromHeader(socket, peer, result.header, result.length);
      if (!arrival) return { verdict: { ok: false, silent: false, detail: "PROXY header: unusable source address" } };
      return { verdict: { ok: true, arrival }, giveBack: chunk.subarray(result.used) };
    },
    (why) => ({
      ok: false,
      silent: received === 0 && why !== "timeout",
      detail: why === "timeout" ? `no PROXY header within ${timeoutMs} ms` : "closed before a complete PROXY header",
    }),
  );
}

function fromHeader(socket: Socket, peer: ClientAddress, header: ProxyHeader, length: number): Arrival | undefined {
  if (header.command !== "proxy") {
    // The peer stands for the client; what we send on says "unknown".
    return {
      client: peer,
      port: socket.remotePort ?? 0,
      headerBytes: length,
      endpoints: undefined,
      trusted: header.command === "local",
    };
  }
  const client = parseClientAddress(header.source.address);
  if (!client) return undefined;
  return {
    client,
    port: header.source.port,
    headerBytes: length,
    endpoints: {
      sourceAddress: client.text,
      sourcePort: header.source.port,
      destinationAddress: header.destination.address,
      destinationPort: header.destination.port,
    },
    trusted: false,
  };
}
