// One direction of a bridge: bytes from one socket to the other with backpressure, and a
// FIN passed on as a FIN. A bare pipe() would end the destination on error too, and hide
// which side ended first.
import type { Socket } from "node:net";

const NOTHING = Buffer.alloc(0);

export function forward(from: Socket, to: Socket, onEnd: () => void): void {
  from.on("data", (chunk: Buffer) => {
    if (!to.write(chunk)) from.pause();
  });
  to.on("drain", () => from.resume());
  from.on("end", () => passOnEnd(from, to, onEnd));
}

/**
 * Passes the FIN that ended from's reading on to to, once every byte before it was
 * handed to to.write().
 */
export function passOnEnd(from: Socket, to: Socket, onEnd: () => void): void {
  // libuv reports a reset that arrives behind unread data as a plain EOF (POLLHUP after
  // a partial read), so a truncated upload would reach the other side as a clean FIN. A
  // zero-byte write asks the kernel: it fails on a reset socket (the error event then
  // ends the bridge as a reset) and sends nothing on a live one. With writes pending,
  // their own failure reports the reset; the probe would only wait behind them.
  if (from.writableEnded || from.writableLength > 0) {
    to.end();
    onEnd();
    return;
  }
  from.write(NOTHING, (error) => {
    if (error) return;
    to.end();
    onEnd();
  });
}
