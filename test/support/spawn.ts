// The real CLI as a child process under conditions a test sets, and the node flags the
// bin carries, to run it as installed.
import { readFileSync } from "node:fs";
import { CLI, type Running } from "./cli.ts";

/** startTcpgate with its options: a descriptor limit, node flags, another working directory. */
export { type SpawnOptions, startTcpgate as startCli } from "./cli.ts";

/** The node flags the bin's shebang carries (`#!/usr/bin/env -S node --flag`), to run it as installed. */
export function binNodeFlags(): string[] {
  const first = readFileSync(CLI, "utf8").split("\n", 1)[0] ?? "";
  return /^#!.*\bnode((?:\s+--\S+)*)\s*$/.exec(first)?.[1]?.trim().split(/\s+/).filter(Boolean) ?? [];
}

/** Waits for "tcpgate started"; on failure kills the child by its PID and rethrows. */
export async function started(tcpgate: Running, timeoutMs = 10_000): Promise<Running> {
  try {
    await tcpgate.waitForLog((l) => l.msg === "tcpgate started", timeoutMs);
    return tcpgate;
  } catch (error) {
    await tcpgate.stop("SIGKILL");
    throw error;
  }
}
