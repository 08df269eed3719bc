// Filter modules written by a test: a private folder of ES modules for configs to name,
// and clients dialled by listener name.
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import type { Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Gate, type LogLine, startGate } from "./cli.ts";
import { freePort } from "./net.ts";
import { configText, type ListenerDef } from "./reload.ts";

export interface ModuleFolder {
  readonly dir: string;
  /** Writes (or rewrites) a module; returns its absolute path. Mode 0644 unless given. */
  write(name: string, source: string, mode?: number): string;
  remove(): void;
}

export function moduleFolder(dir = mkdtempSync(join(tmpdir(), "tcpgate-filters-"))): ModuleFolder {
  return {
    dir,
    write(name, source, mode = 0o644) {
      const path = join(dir, name);
      writeFileSync(path, source);
      // Whatever the umask, and on a rewrite too: tcpgate checks the mode of what it loads.
      chmodSync(path, mode);
      return path;
    },
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

export type Dial = (listener: string) => Promise<{
  readonly socket: Socket;
  readonly port: number;
  /** The access-log line of this client's bridge, once it has ended. */
  accessLog(timeoutMs?: number): Promise<LogLine>;
}>;

/** Connects clients to gate's listeners by name. */
export function dialer(gate: Gate): Dial {
  return async (listener) => {
    const socket = await gate.dial(gate.port(listener));
    return {
      socket,
      port: socket.localPort ?? 0,
      accessLog: (timeoutMs) => gate.bridgeEnd(socket, undefined, timeoutMs),
    };
  };
}

/** tcpgate with these listeners, each on a free loopback port, and a dialer for them. */
export async function gateWith(listeners: readonly Omit<ListenerDef, "listen">[]): Promise<{ gate: Gate; dial: Dial }> {
  const defs = await Promise.all(listeners.map(async (l) => ({ ...l, listen: `127.0.0.1:${await freePort()}` })));
  const gate = await startGate(configText(defs, { shutdownTimeout: "2s" }));
  return { gate, dial: dialer(gate) };
}

/** A listener's `filter:` value for a config line, as a YAML flow map. */
export function filterSetting(module: string, options?: unknown): string {
  const opts = options === undefined ? "" : `, options: ${JSON.stringify(options)}`;
  return `{module: ${JSON.stringify(module)}${opts}}`;
}

/** Modules the tests share: each is the whole file's text. */
export const MODULES = {
  identity: "export default () => ({ up: (chunk) => chunk, down: (chunk) => chunk });\n",
  identityAsync: "export default () => ({ up: async (chunk) => chunk, down: (chunk) => Promise.resolve(chunk) });\n",
  /** Up: upper case. Down: ROT13 on letters. Both work byte by byte, so chunking cannot show. */
  caseAndRot13: `const rot13 = (b) => (b >= 65 && b <= 90 ? ((b - 52) % 26) + 65 : b >= 97 && b <= 122 ? ((b - 84) % 26) + 97 : b);
export default () => ({
  up: (chunk) => Buffer.from(chunk.toString("latin1").toUpperCase(), "latin1"),
  down: (chunk) => chunk.map(rot13),
});
`,
} as const;
