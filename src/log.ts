// pino JSON lines on stdout, or pino-pretty for people (--pretty).
import { createRequire } from "node:module";
import { type Logger, pino } from "pino";

export type { Logger };

/** Writes of at most PIPE_BUF bytes reach a pipe whole: workers sharing stdout never split a line. */
const PIPE_BUF = 4096;

export function createLogger(options: { level: string; pretty: boolean; sharedStdout?: boolean }): Logger {
  const base = { level: options.level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime };
  if (options.pretty) {
    // Loaded only for --pretty: a few MiB of memory no JSON-logging instance needs.
    const pretty = createRequire(import.meta.url)("pino-pretty") as typeof import("pino-pretty");
    return pino(base, pretty({ sync: true, colorize: process.stdout.isTTY ?? false }));
  }
  // Asynchronous writes keep the write(2) per log line off the accept and close paths.
  // minLength 1 writes each line at once, as the default 0 does, and makes log.flush(cb)
  // wait until every line logged so far is out: with 0, sonic-boom calls cb at once, the
  // process exits with a write still in flight, and the synchronous flush at exit writes
  // the later lines ("stopped") before that earlier one ("shutting down").
  return pino(
    base,
    pino.destination({ dest: 1, sync: false, minLength: 1, ...(options.sharedStdout && { maxWrite: PIPE_BUF }) }),
  );
}
