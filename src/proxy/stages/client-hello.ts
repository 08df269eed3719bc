// The stage for a listener with routes: peek at the client's TLS ClientHello for the
// server name it asks for. Every byte read is put back, so the target receives the
// ClientHello as the client sent it. Bounded by the listener's connectTimeout.
import type { Socket } from "node:net";
import { ClientHelloReader } from "../client-hello-reader.ts";
import type { Stop } from "../stop.ts";
import { readPrefix } from "./read-prefix.ts";

export type HelloOutcome =
  | { readonly ok: true; readonly serverName: string | undefined }
  | { readonly ok: false; readonly detail: string };

export function peekClientHello(socket: Socket, timeoutMs: number, signal?: Stop): Promise<HelloOutcome> {
  const reader = new ClientHelloReader();
  const seen: Buffer[] = [];
  return readPrefix<HelloOutcome>(
    socket,
    timeoutMs,
    signal,
    (chunk) => {
      seen.push(chunk);
      const result = reader.push(chunk);
      if (result.state === "more") return undefined;
      const verdict: HelloOutcome =
        result.state === "done" ? { ok: true, serverName: result.serverName } : { ok: false, detail: result.reason };
      return { verdict, giveBack: Buffer.concat(seen) };
    },
    (why) => ({
      ok: false,
      detail: why === "timeout" ? `no ClientHello within ${timeoutMs} ms` : "closed before a complete ClientHello",
    }),
  );
}
