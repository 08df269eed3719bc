// One TCP connect to one address, bounded in time and abortable. Node has no connect
// timeout of its own: a SYN into a black hole would wait for minutes.
import { connect, type Socket } from "node:net";
import type { HostPort } from "../config/address.ts";
import type { Stop } from "./stop.ts";

export type Connected = { readonly socket: Socket } | { readonly error: string };

/** Resolves with the connected socket, or with the error code (ETIMEDOUT, ECONNREFUSED, aborted …). */
export function connectOnce(address: HostPort, timeoutMs: number, signal?: Stop): Promise<Connected> {
  if (signal?.aborted) return Promise.resolve({ error: "aborted" });
  return new Promise((resolve) => {
    const socket = connect({ host: address.host, port: address.port, allowHalfOpen: true, noDelay: true });
    socket.setTimeout(timeoutMs);
    // Only our own listeners go: Node keeps internal ones on the socket.
    const settled = () => {
      socket.off("timeout", onTimeout);
      socket.off("error", onError);
      socket.off("connect", onConnect);
      signal?.removeEventListener("abort", onAbort);
    };
    const giveUp = (error: string) => {
      settled();
      // Errors after giving up (a late RST) belong to nobody; swallow them.
      socket.on("error", () => {});
      socket.destroy();
      resolve({ error });
    };
    const onTimeout = () => giveUp("ETIMEDOUT");
    const onError = (error: NodeJS.ErrnoException) => giveUp(error.code ?? error.message);
    const onAbort = () => giveUp("aborted");
    const onConnect = () => {
      settled();
      socket.setTimeout(0);
      resolve({ socket });
    };
    socket.once("timeout", onTimeout);
    socket.once("error", onError);
    socket.once("connect", onConnect);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
