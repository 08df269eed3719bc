// pino JSON lines on stdout, or pino-pretty for people (--pretty).
import { type Logger, pino } from "pino";
import pretty from "pino-pretty";

export type { Logger };

/** Writes of at most PIPE_BUF bytes reach a pipe whole: workers sharing stdout never split a line. */
const PIPE_BUF = 4096;

export function createLogger(options: { level: string; pretty: boolean; sharedStdout?: boolean }): Logger {
  const base = { level: options.level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime };
  if (options.pretty) return pino(base, pretty({ sync: true, colorize: process.stdout.isTTY ?? false }));
  // Asynchronous writes keep the write(2) per log line off the accept and close paths;
  // pino flushes what is pending synchronously when the process exits.
  return pino(base, pino.destination({ dest: 1, sync: false, ...(options.sharedStdout && { maxWrite: PIPE_BUF }) }));
}
