// A tcpgate filter that refuses chosen Redis commands: the client gets an error reply,
// as if Redis had answered, and the command never reaches Redis.
//
//   filter:
//     module: ./filters/redis-guard.mjs
//     options:
//       deny: [FLUSHALL, FLUSHDB, "CONFIG SET", DEBUG, SHUTDOWN]
//       message: "not through this gateway"     # optional
//
// Entries are command names, or a command and its first argument ("CONFIG SET" refuses
// CONFIG SET and lets CONFIG GET through); case does not matter. Both forms of the Redis
// protocol are read, however TCP splits them: multibulk (what client libraries send) and
// inline (what a person types into telnet, quotes included).
//
// Replies keep their order: a refused command inside a pipeline gets its error after the
// replies to the commands before it. Where Redis answers other than once per command
// (SUBSCRIBE, PSUBSCRIBE, SSUBSCRIBE, MONITOR, CLIENT REPLY), the guard stops tracking
// replies for that connection and answers refusals at once.
//
// This is a guard rail, not an access control: EVAL, FCALL or MULTI can run any command
// from inside Redis. Deny those too where that matters, and use Redis ACLs for users.

/** Redis's own limits: an inline request, and a command name or argument worth reading. */
const MAX_INLINE = 64 * 1024;
const MAX_NAME = 1024;
/** Commands after which replies no longer come once per command. */
const UNTRACKED = new Set(["SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE", "MONITOR", "CLIENT REPLY"]);

export default function create(options, bridge) {
  const normal = (entry) => String(entry).trim().toUpperCase().replace(/\s+/g, " ");
  const rules = new Set((options?.deny ?? []).map(normal));
  const firstWords = new Set([...rules].filter((r) => r.includes(" ")).map((r) => r.split(" ")[0]));
  const text = String(options?.message ?? "not allowed through this gateway").replace(/[\r\n]+/g, " ");
  const refusal = (command) => Buffer.from(`-ERR '${command}' is ${text}\r\n`);

  /**
   * What the client is owed, in order: runs of replies Redis will send, and our own errors
   * between them. [{ redis: 3 }, { error: Buffer }, { redis: 1 }]
   */
  const owed = [];
  let tracking = true;
  const expectFromRedis = () => {
    const last = owed.at(-1);
    if (last?.redis) last.redis++;
    else owed.push({ redis: 1 });
  };

  /** Decides from the first words read so far: "forward", "refuse", or undefined (read on). */
  const decide = (words, total) => {
    const name = words[0]?.toUpperCase();
    if (name === undefined) return undefined;
    if (rules.has(name)) return "refuse";
    if (!firstWords.has(name) || total < 2) return "forward";
    if (words.length < 2) return undefined;
    return rules.has(`${name} ${words[1].toUpperCase()}`) ? "refuse" : "forward";
  };

  const requests = new RequestReader(decide, MAX_NAME);
  const replies = new ReplyCounter();

  return {
    up(chunk) {
      const out = [];
      const done = requests.read(chunk, out);
      if (done === null) return null; // a protocol error: Redis would close the connection too
      for (const command of done) {
        const name = command.words[0]?.toUpperCase() ?? "";
        const withArgument = command.words.slice(0, 2).join(" ").toUpperCase();
        if (command.decision === "refuse") {
          const error = refusal(rules.has(name) ? name : withArgument);
          if (!tracking || owed.length === 0) bridge.reply(error);
          else owed.push({ error });
        } else if (command.replies && tracking) {
          expectFromRedis();
          if (UNTRACKED.has(name) || UNTRACKED.has(withArgument)) {
            // From here on replies are not one per command: what is owed, and any later
            // refusal, is answered at once.
            tracking = false;
            for (const item of owed) if (item.error) bridge.reply(item.error);
            owed.length = 0;
          }
        }
      }
      return Buffer.concat(out);
    },

    down(chunk) {
      if (!tracking || !owed.some((item) => item.error)) {
        if (tracking) for (let n = replies.count(chunk); n > 0; n--) takeReply();
        return chunk;
      }
      // Our errors go in right after the reply each one follows.
      const out = [];
      let from = 0;
      replies.count(chunk, (end) => {
        out.push(chunk.subarray(from, end));
        from = end;
        takeReply();
        while (owed[0]?.error) out.push(owed.shift().error);
      });
      out.push(chunk.subarray(from));
      return Buffer.concat(out);
    },
  };

  function takeReply() {
    const head = owed[0];
    if (!head?.redis) return;
    if (--head.redis === 0) owed.shift();
  }
}

/**
 * Reads Redis requests from a byte stream split anywhere, without holding more of a
 * command than its first words: the rest of an allowed command streams through.
 */
class RequestReader {
  constructor(decide, maxName) {
    this.decide = decide;
    this.maxName = maxName;
    this.reset();
  }

  reset() {
    /** "start" | "inline" | "count" | "length" | "payload" */
    this.state = "start";
    this.line = [];
    this.lineLength = 0;
    /** Bytes of the current command from earlier chunks, kept until it is decided. */
    this.held = [];
    this.decision = undefined;
    this.words = [];
    this.total = 0;
    this.argsLeft = 0;
    this.payloadLeft = 0;
    this.word = undefined;
  }

  /**
   * Appends to out the bytes to forward; returns the commands completed in this chunk
   * ({decision, words, replies}), or null on a protocol error.
   */
  read(chunk, out) {
    const done = [];
    let start = 0; // where the current command's bytes begin in this chunk
    let i = 0;
    const finish = (end, replies = true) => {
      if (this.decision === undefined) this.decision = "forward";
      if (this.decision === "forward") out.push(...this.held, chunk.subarray(start, end));
      done.push({ decision: this.decision, words: this.words, replies });
      this.reset();
      start = end;
    };
    const decided = () => {
      this.decision = this.decide(this.words, this.total);
    };
    while (i < chunk.length) {
      switch (this.state) {
        case "start":
          this.state = chunk[i] === 0x2a /* * */ ? "count" : "inline";
          if (this.state === "count") i++;
          break;
        case "inline":
        case "count":
        case "length": {
          const nl = chunk.indexOf(0x0a, i);
          const end = nl < 0 ? chunk.length : nl + 1;
          this.line.push(chunk.subarray(i, end));
          this.lineLength += end - i;
          i = end;
          if (nl < 0) {
            if (this.lineLength > MAX_INLINE) return null;
            break;
          }
          const line = Buffer.concat(this.line).toString("latin1").replace(/\r?\n$/, "");
          this.line = [];
          this.lineLength = 0;
          if (this.state === "inline") {
            const words = splitArgs(line);
            // An empty line gets no reply; unbalanced quotes get Redis's own error.
            this.words = words ?? [];
            this.total = this.words.length;
            if (words) decided();
            finish(i, line.trim() !== "");
          } else if (this.state === "count") {
            const n = Number.parseInt(line, 10);
            if (!/^-?\d+$/.test(line)) return null;
            if (n <= 0) {
              finish(i, false); // Redis ignores an empty multibulk
            } else {
              this.total = this.argsLeft = n;
              this.state = "length";
            }
          } else {
            if (line[0] !== "$" || !/^\$\d+$/.test(line)) return null;
            this.payloadLeft = Number(line.slice(1)) + 2;
            // The first two words are read (not held): they decide, and name the command.
            const short = this.payloadLeft - 2 <= this.maxName;
            this.word = this.words.length < 2 && short ? [] : undefined;
            // A word too long to be a command name is no command we refuse.
            if (this.decision === undefined && !short) this.decision = "forward";
            this.state = "payload";
          }
          break;
        }
        case "payload": {
          const end = Math.min(chunk.length, i + this.payloadLeft);
          this.word?.push(chunk.subarray(i, end));
          this.payloadLeft -= end - i;
          i = end;
          if (this.payloadLeft > 0) break;
          if (this.word) {
            this.words.push(Buffer.concat(this.word).subarray(0, -2).toString("latin1"));
            this.word = undefined;
            if (this.decision === undefined) decided();
          }
          if (--this.argsLeft === 0) finish(i);
          else this.state = "length";
          break;
        }
      }
      // Decided in the middle of a command: what was held goes (or is dropped) now.
      if (this.decision !== undefined && this.held.length > 0) {
        if (this.decision === "forward") out.push(...this.held);
        this.held = [];
      }
    }
    if (start < chunk.length) {
      const rest = chunk.subarray(start);
      if (this.decision === undefined) this.held.push(rest);
      else if (this.decision === "forward") out.push(rest);
    }
    return done;
  }
}

/**
 * Splits an inline request as Redis does (sdssplitargs): words, "double quotes" with
 * escapes, 'single quotes'. undefined for unbalanced quotes.
 */
function splitArgs(line) {
  const words = [];
  let i = 0;
  while (true) {
    while (i < line.length && /\s/.test(line[i])) i++;
    if (i >= line.length) return words;
    let word = "";
    if (line[i] === '"' || line[i] === "'") {
      const quote = line[i++];
      while (true) {
        if (i >= line.length) return undefined;
        const c = line[i];
        if (quote === '"' && c === "\\" && i + 1 < line.length) {
          const next = line[i + 1];
          const hex = line.slice(i + 2, i + 4);
          if (next === "x" && /^[0-9a-fA-F]{2}$/.test(hex)) {
            word += String.fromCharCode(Number.parseInt(hex, 16));
            i += 4;
          } else {
            word += { n: "\n", r: "\r", t: "\t", b: "\b", a: "\x07" }[next] ?? next;
            i += 2;
          }
        } else if (quote === "'" && c === "\\" && line[i + 1] === "'") {
          word += "'";
          i += 2;
        } else if (c === quote) {
          i++;
          // A closing quote must be followed by a space or the end.
          if (i < line.length && !/\s/.test(line[i])) return undefined;
          break;
        } else {
          word += c;
          i++;
        }
      }
    } else {
      while (i < line.length && !/\s/.test(line[i])) word += line[i++];
    }
    words.push(word);
  }
}

/**
 * Counts the complete replies in a stream of RESP2/RESP3 replies split anywhere: calls
 * onReply(end) with the index just past each one in the chunk; returns how many ended.
 * Push messages (RESP3 ">") are not replies to a command, and are not counted.
 */
class ReplyCounter {
  constructor() {
    /** "type" | "line" | "payload" */
    this.state = "type";
    this.type = 0;
    this.line = "";
    this.payloadLeft = 0;
    /** Open aggregates: { left, kind: "push" | "attribute" | "value" }. */
    this.stack = [];
  }

  count(chunk, onReply = () => {}) {
    let replies = 0;
    let i = 0;
    const complete = () => {
      // One value ended: close every aggregate it completes.
      while (true) {
        const top = this.stack.at(-1);
        if (!top) {
          replies++;
          onReply(i);
          return;
        }
        if (--top.left > 0) return;
        this.stack.pop();
        if (top.kind === "attribute") return; // an attribute precedes the value it describes
        if (top.kind === "push" && this.stack.length === 0) return;
      }
    };
    while (i < chunk.length) {
      if (this.state === "type") {
        this.type = chunk[i++];
        this.line = "";
        this.state = "line";
      } else if (this.state === "line") {
        const nl = chunk.indexOf(0x0a, i);
        const end = nl < 0 ? chunk.length : nl + 1;
        this.line += chunk.toString("latin1", i, end);
        i = end;
        if (nl < 0) continue;
        const n = Number.parseInt(this.line, 10);
        this.state = "type";
        switch (String.fromCharCode(this.type)) {
          case "$":
          case "!":
          case "=":
            if (n >= 0) {
              this.payloadLeft = n + 2;
              this.state = "payload";
            } else complete();
            break;
          case "*":
          case "~":
          case ">":
            if (n > 0) {
              const push = this.type === 0x3e /* > */ && this.stack.length === 0;
              this.stack.push({ left: n, kind: push ? "push" : "value" });
            }
            else complete();
            break;
          case "%":
            if (n > 0) this.stack.push({ left: 2 * n, kind: "value" });
            else complete();
            break;
          case "|":
            if (n > 0) this.stack.push({ left: 2 * n, kind: "attribute" });
            break;
          default:
            complete();
        }
      } else {
        const end = Math.min(chunk.length, i + this.payloadLeft);
        this.payloadLeft -= end - i;
        i = end;
        if (this.payloadLeft === 0) {
          this.state = "type";
          complete();
        }
      }
    }
    return replies;
  }
}
