// pino JSON lines on stdout, or pino-pretty for people (--pretty).
import { type Logger, pino } from "pino";
import pretty from "pino-pretty";

export type { Logger };

export function createLogger(options: { level: string; pretty: boolean }): Logger {
  const base = { level: options.level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime };
  if (options.pretty) return pino(base, pretty({ sync: true, colorize: process.stdout.isTTY ?? false }));
  // Synchronous writes: a line is on stdout before the process can exit or crash.
  return pino(base, pino.destination({ dest: 1, sync: true }));
}
