// Reading the first bytes of a client connection before its bridge carries it: chunks go
// to a decider until it has a verdict, then the socket is paused and whatever bytes the
// decider did not take are put back (unshift) for the bridge to forward, in order and
// unchanged. Bounded in time; stops when the client goes or the bridge ends.
import type { Socket } from "node:net";
import type { Stop } from "../stop.ts";

export interface Verdict<T> {
  readonly verdict: T;
  /** Bytes read that are not the stage's: forwarded first, as if never read. */
  readonly giveBack?: Buffer;
}

/** Why reading stopped before a verdict: out of time, the client's FIN, the socket closed, or an abort. */
export type Stopped = "timeout" | "end" | "close" | "aborted";

export function readPrefix<T>(
  socket: Socket,
  timeoutMs: number,
  signal: Stop | undefined,
  decide: (chunk: Buffer) => Verdict<T> | undefined,
  stopped: (why: Stopped) => T,
): Promise<T> {
  if (signal?.aborted) return Promise.resolve(stopped("aborted"));
  return new Promise((resolve) => {
    const finish = (verdict: T, giveBack?: Buffer) => {
      clearTimeout(timer);
      socket.pause();
      socket.off("data", onData);
      socket.off("end", onEnd);
      socket.off("close", onClose);
      socket.off("error", onError);
      signal?.removeEventListener("abort", onAbort);
      if (giveBack && giveBack.length > 0) socket.unshift(giveBack);
      resolve(verdict);
    };
    const onData = (chunk: Buffer) => {
      const decided = decide(chunk);
      if (decided) finish(decided.verdict, decided.giveBack);
    };
    const onEnd = () => finish(stopped("end"));
    const onClose = () => finish(stopped("close"));
    // A reset is followed by close; until the bridge has its own handler, this one keeps it from throwing.
    const onError = () => {};
    const onAbort = () => finish(stopped("aborted"));
    const timer = setTimeout(() => finish(stopped("timeout")), timeoutMs);
    socket.on("data", onData);
    socket.once("end", onEnd);
    socket.once("close", onClose);
    socket.on("error", onError);
    signal?.addEventListener("abort", onAbort, { once: true });
    socket.resume();
  });
}
