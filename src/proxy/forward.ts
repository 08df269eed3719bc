// One direction of a bridge: bytes from one socket to the other with backpressure, and a
// FIN passed on as a FIN. A bare pipe() would end the destination on error too, and hide
// which side ended first. The handlers are shared by every bridge (each socket carries
// its peer), so a direction costs no closure of its own.
import type { Socket } from "node:net";
import { noteRead } from "./read-garbage.ts";

const NOTHING = Buffer.alloc(0);

/** Told once the FIN that ended from's reading was passed on to its peer. */
export type HalfClosed = (from: Socket) => void;

const kTo = Symbol("forwards to");
const kFrom = Symbol("is written by");
const kHalfClosed = Symbol("then tells");

type Source = Socket & { [kTo]: Socket; [kHalfClosed]: HalfClosed };
type Sink = Socket & { [kFrom]: Socket };

export function forward(from: Socket, to: Socket, onEnd: HalfClosed): void {
  const source = from as Source;
  source[kTo] = to;
  source[kHalfClosed] = onEnd;
  (to as Sink)[kFrom] = from;
  from.on("data", onData);
  to.on("drain", onDrain);
  from.on("end", onFin);
}

function onData(this: Source, chunk: Buffer): void {
  noteRead(chunk.length);
  if (!this[kTo].write(chunk)) this.pause();
}

function onDrain(this: Sink): void {
  this[kFrom].resume();
}

function onFin(this: Source): void {
  passOnEnd(this, this[kTo], this[kHalfClosed], closeOrEnd);
}

/**
 * Passes the FIN that ended from's reading on to to, once every byte before it was
 * handed to to.write().
 */
export function passOnEnd(from: Socket, to: Socket, onEnd: HalfClosed, endWriting = end): void {
  // libuv reports a reset that arrives behind unread data as a plain EOF (POLLHUP after
  // a partial read), so a truncated upload would reach the other side as a clean FIN. A
  // zero-byte write asks the kernel: it fails on a reset socket (the error event then
  // ends the bridge as a reset) and sends nothing on a live one. With writes pending,
  // their own failure reports the reset; the probe would only wait behind them.
  if (from.writableEnded || from.writableLength > 0) {
    endWriting(to);
    onEnd(from);
    return;
  }
  from.write(NOTHING, (error) => {
    if (error) return;
    endWriting(to);
    onEnd(from);
  });
}

function end(to: Socket): void {
  to.end();
}

/**
 * Sends to its FIN. When to has sent its own FIN already and has nothing left to write,
 * both directions are done: close(2) sends the FIN, so the shutdown(2) that end() makes
 * first would be one system call per bridge for nothing. Only where every byte to sent
 * was written on the spot (not behind a filter's pending Promise, which closing to would
 * cut short).
 */
function closeOrEnd(to: Socket): void {
  if (to.readableEnded && to.writableLength === 0) to.destroy();
  else to.end();
}
