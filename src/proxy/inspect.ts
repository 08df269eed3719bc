// `inspect: true`: each chunk through a bridge is logged at trace level as a bounded
// preview, for debugging a protocol through the proxy. Only attached when enabled, so
// it costs nothing otherwise.
import type { Logger } from "../log.ts";

/** Bytes shown of each chunk; the length is always logged in full. */
export const PREVIEW_BYTES = 64;

export type Inspector = (direction: "up" | "down", chunk: Buffer) => void;

export function createInspector(log: Logger, listener: string, client: string, clientPort: number): Inspector {
  return (direction, chunk) => {
    if (!log.isLevelEnabled("trace")) return;
    const head = chunk.subarray(0, PREVIEW_BYTES);
    log.trace(
      {
        listener,
        client,
        clientPort,
        direction,
        length: chunk.length,
        hex: head.toString("hex"),
        // Printable ASCII as is, everything else as "." (like hexdump -C).
        ascii: head.toString("latin1").replace(/[^\x20-\x7e]/g, "."),
        truncated: chunk.length > PREVIEW_BYTES,
      },
      "data",
    );
  };
}
