// Where the admin endpoint listens: a TCP address like a listener's, or a Unix socket
// ("unix:/run/tcpgate/admin.sock") whose file mode decides who may talk to it.
import { formatHostPort, type HostPort, type Parsed, parseListenAddress } from "./address.ts";

export interface UnixSocketPath {
  readonly path: string;
}

export type EndpointAddress = HostPort | UnixSocketPath;

const UNIX = "unix:";

export function isUnixSocket(address: EndpointAddress): address is UnixSocketPath {
  return "path" in address;
}

export function parseAdminAddress(text: string): Parsed<EndpointAddress> {
  if (!text.startsWith(UNIX)) return parseListenAddress(text);
  const path = text.slice(UNIX.length);
  if (!path.startsWith("/")) return { ok: false, error: `"${text}": a Unix socket path must be absolute` };
  // sun_path holds 108 bytes with its terminating NUL on Linux.
  if (Buffer.byteLength(path) > 107) return { ok: false, error: `"${text}": a Unix socket path is 107 bytes at most` };
  return { ok: true, value: { path } };
}

export function formatEndpointAddress(address: EndpointAddress): string {
  return isUnixSocket(address) ? `${UNIX}${address.path}` : formatHostPort(address);
}
