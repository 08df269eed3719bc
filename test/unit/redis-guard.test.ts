// The Redis guard example's protocol logic, in process: pipelines of allowed and refused
// commands in both RESP forms, split at random places, against a simulated Redis whose
// replies (RESP2 and RESP3, pushes included) are split at random places too.
import assert from "node:assert/strict";
import { join } from "node:path";
import { describe, test } from "node:test";
import fc from "fast-check";
import { ROOT } from "../support/cli.ts";

type Step = (chunk: Buffer) => Buffer | null;
type Create = (options: unknown, bridge: { reply(data: Buffer | string): boolean }) => { up: Step; down: Step };

const { default: create } = (await import(join(ROOT, "examples", "filters", "redis-guard.mjs"))) as {
  default: Create;
};

const DENY = ["FLUSHALL", "config set"];

interface Command {
  readonly bytes: Buffer;
  readonly refused: string | undefined;
  /** What Redis answers; undefined: no answer (an empty inline line). */
  readonly reply: Buffer | undefined;
}

const multibulk = (words: readonly string[]) =>
  Buffer.from(`*${words.length}\r\n${words.map((w) => `$${Buffer.byteLength(w)}\r\n${w}\r\n`).join("")}`);
const inline = (words: readonly string[]) => Buffer.from(`${words.join(" ")}\r\n`);

const REPLIES = [
  "+OK\r\n",
  ":5\r\n",
  "$3\r\nabc\r\n",
  "$-1\r\n",
  "*2\r\n$1\r\na\r\n*1\r\n:1\r\n",
  "*0\r\n",
  "%1\r\n+k\r\n$1\r\nv\r\n",
  "|1\r\n+key\r\n+popularity\r\n:7\r\n",
  "_\r\n",
  "-ERR wrong type\r\n",
];
const PUSH = ">2\r\n+invalidate\r\n*1\r\n$1\r\nk\r\n";

const allowed = fc.record({
  words: fc.constantFrom(
    ["SET", "k", "v"],
    ["get", "k"],
    ["PING"],
    ["CONFIG", "GET", "maxmemory"],
    ["config", "get", "*"],
  ),
  form: fc.constantFrom(multibulk, inline),
  reply: fc.constantFrom(...REPLIES),
  push: fc.boolean(),
});
const refused = fc.record({
  words: fc.constantFrom(["FLUSHALL"], ["flushall", "ASYNC"], ["Config", "Set", "save", ""], ['"flushall"']),
  form: fc.constantFrom(multibulk, inline),
});

const command = fc.oneof(
  allowed.map(
    (a): Command => ({
      bytes: a.form(a.words),
      refused: undefined,
      reply: Buffer.from((a.push ? PUSH : "") + a.reply),
    }),
  ),
  refused
    // A quoted name is what an inline request may say; a multibulk word is taken as is.
    .filter((r) => r.form === inline || !r.words[0]?.startsWith('"'))
    .map(
      (r): Command => ({
        bytes: r.form(r.words),
        refused: r.words[0]?.replace(/"/g, "").toUpperCase() === "FLUSHALL" ? "FLUSHALL" : "CONFIG SET",
        reply: undefined,
      }),
    ),
  fc.constant<Command>({ bytes: Buffer.from("\r\n"), refused: undefined, reply: undefined }),
);

/** Splits bytes at the given cut points (sorted, deduplicated, inside the buffer). */
function split(bytes: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const pieces: Buffer[] = [];
  let from = 0;
  for (const p of points) {
    pieces.push(bytes.subarray(from, p));
    from = p;
  }
  pieces.push(bytes.subarray(from));
  return pieces.filter((p) => p.length > 0);
}

const errorFor = (name: string) => `-ERR '${name}' is not allowed through this gateway\r\n`;

describe("the redis guard example", () => {
  test("refused commands never reach Redis; every reply and error reaches the client in order", () => {
    fc.assert(
      fc.property(
        fc.array(command, { minLength: 1, maxLength: 12 }),
        fc.array(fc.nat(), { maxLength: 30 }),
        fc.array(fc.nat(), { maxLength: 30 }),
        fc.array(fc.boolean(), { maxLength: 60 }),
        (commands, upCuts, downCuts, turns) => {
          const toClient: Buffer[] = [];
          const guard = create(
            { deny: DENY },
            {
              reply: (data) => {
                toClient.push(Buffer.from(data));
                return true;
              },
            },
          );
          const requestChunks = split(Buffer.concat(commands.map((c) => c.bytes)), upCuts);
          const forwarded: Buffer[] = [];
          let forwardedLength = 0;
          // Redis answers each command once it has all of it.
          const answerable = commands.filter((c) => !c.refused);
          let answered = 0;
          let serverBytes = Buffer.alloc(0);
          const serverCatchUp = () => {
            let end = 0;
            let count = 0;
            for (const c of answerable) {
              end += c.bytes.length;
              if (end > forwardedLength) break;
              count++;
            }
            for (; answered < count; answered++) {
              const reply = answerable[answered]?.reply;
              if (reply) serverBytes = Buffer.concat([serverBytes, reply]);
            }
          };
          const cutsLeft = [...downCuts];
          const serverSends = (all: boolean) => {
            if (serverBytes.length === 0) return;
            const n = all ? serverBytes.length : 1 + ((cutsLeft.shift() ?? 0) % serverBytes.length);
            const out = guard.down(serverBytes.subarray(0, n));
            serverBytes = serverBytes.subarray(n);
            assert.ok(out);
            toClient.push(out);
          };
          let turn = 0;
          for (const chunk of requestChunks) {
            while (turns[turn++ % Math.max(1, turns.length)] && serverBytes.length > 0 && turn < 200)
              serverSends(false);
            const out = guard.up(chunk);
            assert.ok(out, "no protocol error");
            forwarded.push(out);
            forwardedLength += out.length;
            serverCatchUp();
          }
          while (serverBytes.length > 0) serverSends(false);

          assert.deepEqual(
            Buffer.concat(forwarded).toString("latin1"),
            Buffer.concat(answerable.map((c) => c.bytes)).toString("latin1"),
          );
          const expected = commands
            .map((c) => (c.refused ? errorFor(c.refused) : (c.reply?.toString() ?? "")))
            .join("");
          assert.equal(Buffer.concat(toClient).toString("latin1"), expected);
        },
      ),
      { numRuns: 500 },
    );
  });

  test("after SUBSCRIBE replies are no longer counted: a refusal is answered at once", () => {
    const toClient: string[] = [];
    const guard = create({ deny: DENY }, { reply: (data) => toClient.push(String(data)) > 0 });
    assert.equal(guard.up(multibulk(["SUBSCRIBE", "news"]))?.toString(), multibulk(["SUBSCRIBE", "news"]).toString());
    assert.equal(guard.up(inline(["FLUSHALL"]))?.length, 0);
    assert.deepEqual(toClient, [errorFor("FLUSHALL")]);
    const message = ">3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$2\r\nhi\r\n";
    assert.equal(guard.down(Buffer.from(message))?.toString(), message);
  });

  test("a request that is not RESP closes the connection, as Redis would", () => {
    const guard = create({ deny: DENY }, { reply: () => true });
    assert.equal(guard.up(Buffer.from("*1\r\n+PING\r\n")), null);
    const long = create({ deny: DENY }, { reply: () => true });
    assert.equal(long.up(Buffer.alloc(70 * 1024, 0x61)), null);
  });
});
