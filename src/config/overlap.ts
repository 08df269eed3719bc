import type { HostPort } from "./address.ts";

/**
 * Two listen addresses clash when they share a port and are equal, or one is a wildcard
 * covering the other: the kernel refuses the second bind (no SO_REUSEPORT on Node 20).
 */
export function listenOverlaps(a: HostPort, b: HostPort): boolean {
  if (a.port !== b.port) return false;
  if (a.host === b.host) return true;
  const everything = (x: HostPort) => x.host === "" || x.host === "::";
  if (everything(a) || everything(b)) return true;
  const anyV4 = (x: HostPort) => x.host === "0.0.0.0";
  return (anyV4(a) && b.family === 4) || (anyV4(b) && a.family === 4);
}
