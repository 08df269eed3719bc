// Bulk data for end-to-end tests: random bytes sent with backpressure, hashed on both ends,
// and the resident memory of the process they flow through.
import { createHash, randomFillSync } from "node:crypto";
import { readFileSync } from "node:fs";
import type { Socket } from "node:net";

const CHUNK = 256 * 1024;

/** Writes `size` random bytes (honouring backpressure), then end(); resolves with their sha256. */
export function sendRandom(socket: Socket, size: number): Promise<string> {
  const hash = createHash("sha256");
  let sent = 0;
  return new Promise((resolve, reject) => {
    socket.once("error", reject);
    const pump = () => {
      while (sent < size) {
        const chunk = randomFillSync(Buffer.allocUnsafe(Math.min(CHUNK, size - sent)));
        hash.update(chunk);
        sent += chunk.length;
        if (!socket.write(chunk)) {
          socket.once("drain", pump);
          return;
        }
      }
      socket.end(() => resolve(hash.digest("hex")));
    };
    pump();
  });
}

/** Hashes everything a socket receives until its end; resolves with sha256 and byte count. */
export function receiveHash(socket: Socket): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash("sha256");
  let bytes = 0;
  return new Promise((resolve, reject) => {
    socket.on("data", (chunk: Buffer) => {
      hash.update(chunk);
      bytes += chunk.length;
    });
    socket.once("error", reject);
    socket.once("end", () => resolve({ sha256: hash.digest("hex"), bytes }));
  });
}

/**
 * Writes as fast as the socket accepts for `ms`, waiting for 'drain' whenever write()
 * says so, then ends. `written()` is the bytes handed to write() so far: with
 * backpressure working it stays bounded by socket buffers, whatever `ms` is.
 */
export function flood(socket: Socket, ms: number): { written: () => number; done: Promise<number> } {
  const chunk = Buffer.alloc(64 * 1024, 0x5a);
  let written = 0;
  let timer: NodeJS.Timeout | undefined;
  const deadline = Date.now() + ms;
  const done = new Promise<number>((resolve) => {
    const pump = () => {
      clearTimeout(timer);
      socket.off("drain", pump);
      while (Date.now() < deadline && !socket.destroyed) {
        written += chunk.length;
        if (!socket.write(chunk)) {
          socket.once("drain", pump);
          // Recheck the deadline even when no drain ever comes.
          timer = setTimeout(pump, Math.max(0, deadline - Date.now()));
          return;
        }
      }
      socket.end();
      resolve(written);
    };
    pump();
  });
  return { written: () => written, done };
}

/** Resident memory of a process in bytes, from /proc/<pid>/status (Linux). */
export function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const match = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status);
  if (!match) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(match[1]) * 1024;
}
