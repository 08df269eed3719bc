// Talks to a running tcpgate's admin endpoint, over TCP or its Unix socket.
import { request } from "node:http";
import { type EndpointAddress, isUnixSocket, parseAdminAddress } from "../config/admin-address.ts";

export interface AdminTarget {
  /** How it is named in messages: "http://127.0.0.1:9901" or "unix:/run/tcpgate/admin.sock". */
  readonly label: string;
  readonly options: { host?: string; port?: number; socketPath?: string };
}

/**
 * --admin as given ("http://127.0.0.1:9901", "127.0.0.1:9901", "unix:/path"), or the
 * config's admin.listen: a wildcard address is reached on the loopback of its family.
 */
export function adminTarget(text: string): AdminTarget | undefined {
  const bare = text.replace(/^http:\/\//, "").replace(/\/$/, "");
  const parsed = parseAdminAddress(bare);
  return parsed.ok ? targetOf(parsed.value) : undefined;
}

export function targetOf(address: EndpointAddress): AdminTarget {
  if (isUnixSocket(address)) return { label: `unix:${address.path}`, options: { socketPath: address.path } };
  const host =
    address.host === "" || address.host === "0.0.0.0" ? "127.0.0.1" : address.host === "::" ? "::1" : address.host;
  const shown = host.includes(":") ? `[${host}]` : host;
  return { label: `http://${shown}:${address.port}`, options: { host, port: address.port } };
}

export interface AdminResponse {
  readonly status: number;
  readonly body: string;
}

/** Rejects with a one-line reason when the endpoint cannot be reached or hangs up. */
export function post(target: AdminTarget, path: string, body: string, timeoutMs = 10_000): Promise<AdminResponse> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        ...target.options,
        path,
        method: "POST",
        headers: { "content-type": "application/yaml", "content-length": Buffer.byteLength(body) },
        timeout: timeoutMs,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }));
        res.on("error", (error) => reject(error));
      },
    );
    req.on("timeout", () => req.destroy(new Error(`no answer within ${timeoutMs / 1000} s`)));
    req.on("error", (error: NodeJS.ErrnoException) => {
      // admin.allow closes a refused peer at accept, before it reads the request.
      const refused = error.code === "ECONNRESET" || error.message === "socket hang up";
      reject(
        new Error(refused ? "it closed the connection (is this host in admin.allow?)" : (error.code ?? error.message)),
      );
    });
    req.end(body);
  });
}
