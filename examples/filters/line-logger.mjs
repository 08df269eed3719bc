// A tcpgate filter that logs the lines of a text protocol (SMTP, POP3, Redis inline,
// memcached, a legacy line-based app) and changes nothing: every byte is passed on.
//
//   filter:
//     module: ./filters/line-logger.mjs
//     options:
//       file: /var/log/tcpgate/lines.jsonl   # optional; default: tcpgate's stderr
//       directions: [up, down]               # optional; up = client → target
//       maxLine: 1024                        # optional; longer lines are cut, marked "cut": true
//
// Each line becomes one JSON line: {"time", "listener", "client", "clientPort", "target",
// "direction", "line"}, without its "\r\n". Bytes are read as UTF-8. A line split across
// TCP segments is put back together first; the bytes are forwarded as they come.
//
// When the log file cannot keep up, the bridge waits for it (the filter returns a Promise
// until the file has drained): logging slows the traffic down rather than filling memory.
import { createWriteStream } from "node:fs";

/** One stream per file, shared by every bridge of every listener that names it. */
const files = new Map();

function output(file) {
  if (!file) return process.stderr;
  let stream = files.get(file);
  if (!stream) {
    stream = createWriteStream(file, { flags: "a", mode: 0o640 });
    // A full disk must not crash the gateway: say so once, and drop the log.
    stream.on("error", (error) => {
      process.stderr.write(`line-logger: ${file}: ${error.message}\n`);
    });
    files.set(file, stream);
  }
  return stream;
}

export default function create(options, bridge) {
  const out = output(options?.file);
  const directions = new Set(options?.directions ?? ["up", "down"]);
  const maxLine = Number(options?.maxLine ?? 1024);
  const { listener, client, clientPort, target } = bridge;
  const facts = { listener, client, clientPort, target };

  const logger = (direction) => {
    /** The start of a line whose end has not come yet (at most maxLine bytes of it). */
    let partial = [];
    let length = 0;
    let cut = false;
    const log = (bytes) => {
      const line = bytes.toString("utf8").replace(/\r$/, "");
      const entry = { time: new Date().toISOString(), ...facts, direction, line, ...(cut && { cut: true }) };
      return out.write(`${JSON.stringify(entry)}\n`);
    };
    const keep = (bytes) => {
      const room = maxLine - length;
      if (bytes.length > room) cut = true;
      const kept = bytes.subarray(0, Math.max(0, room));
      if (kept.length > 0) {
        // Copied: the chunk is forwarded, and its memory must not be held for a slow line.
        partial.push(Buffer.from(kept));
        length += kept.length;
      }
    };
    return (chunk) => {
      let drained = true;
      let from = 0;
      for (let nl = chunk.indexOf(0x0a); nl >= 0; nl = chunk.indexOf(0x0a, from)) {
        keep(chunk.subarray(from, nl));
        drained = log(Buffer.concat(partial)) && drained;
        partial = [];
        length = 0;
        cut = false;
        from = nl + 1;
      }
      keep(chunk.subarray(from));
      // A log that failed (a full disk) is given up, not waited for.
      if (drained || out === process.stderr || out.destroyed) return chunk;
      return new Promise((resolve) => out.once("drain", () => resolve(chunk)));
    };
  };

  return {
    ...(directions.has("up") && { up: logger("up") }),
    ...(directions.has("down") && { down: logger("down") }),
  };
}
