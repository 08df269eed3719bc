// What a reload binds: anything that owns a listening socket (a listener, the admin
// endpoint). Binding is separate from serving so that a reload can bind everything new
// before it changes anything, and give it all back if one bind fails.
import type { Server } from "node:net";
import type { EndpointAddress } from "./config/admin-address.ts";

export interface Endpoint {
  /** Binds without serving from the socket yet; rejects with the system's reason. */
  bind(address: EndpointAddress): Promise<Server>;
  /** Serves from server from now on, closing the previous socket; undefined stops serving. */
  use(server: Server | undefined): void;
}

/** A listen address could not be bound; nothing was changed. */
export class BindError extends Error {}

export function describeBindError(error: unknown): string {
  const code = (error as NodeJS.ErrnoException)?.code;
  const reasons: Record<string, string> = {
    EADDRINUSE: "the address is already in use",
    EACCES: "permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)",
    EADDRNOTAVAIL: "no interface of this host has that address",
  };
  return code ? `${reasons[code] ?? code} (${code})` : String(error);
}
