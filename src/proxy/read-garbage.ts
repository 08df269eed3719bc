// Node reads each chunk from a socket into a buffer of its own, freed only when the
// garbage collector finds the chunk dead. V8 counts that memory but collects for it only
// once 64 MiB or more has piled up since its last collection, so a bridge moving
// gigabits per second grows the process by ~60 MiB on Node 20 and ~80 MiB on Node 26
// before anything is given back. A young-generation collection (a scavenge, well under a
// millisecond: the chunks died young) after every few MiB read keeps that pile small.
// Bridges with little traffic never reach the budget and never pay for it.
// Measured (iperf3 through one listener, 4-5 rounds, CPU per GB from /proc): on Node 26
// it cut the bulk peak RSS from 180 to 113 MiB and the CPU per GB from 3.0 to 1.2 s; on
// Node 20 it cut the peak from 112 to 89 MiB but doubled the CPU per GB (1.8 -> 3.8 s up,
// 1.4 -> 3.9 s down; with a 32 MiB budget as well), so there it is off.
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

/** Bytes read between two collections. */
export const READ_BUDGET = 8 * 1024 * 1024;

/** On for the Node versions where it was measured to pay (see above). */
export const PACING = Number(process.versions.node.split(".")[0]) >= 26;

type Collect = (options: { type: "minor" }) => void;

let collect: Collect | undefined;
let sinceCollected = 0;
let scheduled = false;

/** Counts bytes read into buffers Node allocated; past the budget, a scavenge runs next. */
export function noteRead(bytes: number): void {
  if (!PACING) return;
  sinceCollected += bytes;
  if (sinceCollected < READ_BUDGET || scheduled) return;
  scheduled = true;
  // After the chunks in hand are written, not inside the read that crossed the budget.
  setImmediate(scavenge);
}

function scavenge(): void {
  scheduled = false;
  sinceCollected = 0;
  collect ??= exposeCollector();
  collect({ type: "minor" });
}

/**
 * V8's gc() function, without --expose-gc on the command line (which a service manager's
 * `node dist/cli.js` would not pass) and without a global `gc` in tcpgate's own context:
 * the flag is set, a fresh context made to pick it up, and the flag put back.
 */
function exposeCollector(): Collect {
  setFlagsFromString("--expose-gc");
  const gc = runInNewContext("gc") as Collect;
  setFlagsFromString("--no-expose-gc");
  return gc;
}
