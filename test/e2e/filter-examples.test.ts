// The two example filters (examples/filters/) through the real CLI in front of a real
// redis-server: the guard refuses what it is told to and nothing else, and the line
// logger writes the conversation down without changing a byte.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { type Gate, ROOT } from "../support/cli.ts";
import { type Dial, filterSetting, gateWith, type ModuleFolder, moduleFolder } from "../support/filters.ts";
import { delay, eventually } from "../support/net.ts";
import { type RunningRedis, redisMissing, startRedis } from "../support/redis.ts";
import { exchange, open } from "../support/reload.ts";

const missing = redisMissing();
const refused = (name: string) => `-ERR '${name}' is not allowed through this gateway\r\n`;
const multibulk = (...words: string[]) =>
  `*${words.length}\r\n${words.map((w) => `$${w.length}\r\n${w}\r\n`).join("")}`;

describe("filter examples against a real redis-server", { skip: missing }, () => {
  let redis: RunningRedis;
  let modules: ModuleFolder;
  let proxy: Gate;
  let dial: Dial;
  let logFile: string;

  before(async () => {
    redis = await startRedis();
    // Copies, so the test checks the examples' code whatever the checkout's file modes.
    modules = moduleFolder();
    const copy = (name: string) => modules.write(name, readFileSync(join(ROOT, "examples", "filters", name), "utf8"));
    logFile = join(modules.dir, "lines.jsonl");
    ({ gate: proxy, dial } = await gateWith([
      {
        name: "guarded",
        targets: [redis.address],
        settings: { filter: filterSetting(copy("redis-guard.mjs"), { deny: ["FLUSHALL", "FLUSHDB", "CONFIG SET"] }) },
      },
      {
        name: "logged",
        targets: [redis.address],
        settings: { filter: filterSetting(copy("line-logger.mjs"), { file: logFile }) },
      },
    ]));
  });

  after(async () => {
    await proxy?.close();
    await redis?.stop();
    modules?.remove();
  });

  /** Calls of a command Redis has seen, from INFO commandstats (0 when never called). */
  async function callsSeenByRedis(command: string): Promise<number> {
    const direct = await open(redis.port);
    try {
      const info = await new Promise<string>((resolve, reject) => {
        let text = "";
        const timer = setTimeout(() => reject(new Error(`no INFO reply: ${text}`)), 3000);
        direct.on("data", (chunk: Buffer) => {
          text += chunk.toString();
          const header = /^\$(\d+)\r\n/.exec(text);
          if (header && Buffer.byteLength(text) >= header[0].length + Number(header[1]) + 2) {
            clearTimeout(timer);
            resolve(text);
          }
        });
        direct.write(multibulk("INFO", "commandstats"));
      });
      const match = new RegExp(`^cmdstat_${command.toLowerCase()}:calls=(\\d+)`, "m").exec(info);
      return Number(match?.[1] ?? 0);
    } finally {
      direct.destroy();
    }
  }

  test("the guard refuses FLUSHALL in both forms, split or whole, and lets the rest through in order", async () => {
    const { socket, accessLog } = await dial("guarded");
    assert.equal(await exchange(socket, multibulk("SET", "k", "v"), 5), "+OK\r\n");
    // Split inside the command name: the guard must read on before it decides.
    socket.write("*1\r\n$8\r\nFLUS");
    // Not a synchronisation: a pause that makes a separate segment likely. The answer must
    // be the same whether the two writes arrive apart or together.
    await delay(50);
    assert.equal(await exchange(socket, "HALL\r\n", refused("FLUSHALL").length), refused("FLUSHALL"));
    assert.equal(await exchange(socket, "flushall\r\n", refused("FLUSHALL").length), refused("FLUSHALL"));
    assert.equal(await exchange(socket, '"FlushAll" async\r\n', refused("FLUSHALL").length), refused("FLUSHALL"));
    // A pipeline: the refusal comes between the replies of the commands around it.
    const pipeline = `SET a 1\r\n${multibulk("FLUSHDB")}GET a\r\n`;
    const expected = `+OK\r\n${refused("FLUSHDB")}$1\r\n1\r\n`;
    assert.equal(await exchange(socket, pipeline, expected.length), expected);
    // A command and its first argument: CONFIG SET is refused, CONFIG GET is not.
    assert.equal(
      await exchange(socket, multibulk("CONFIG", "SET", "maxmemory", "1"), refused("CONFIG SET").length),
      refused("CONFIG SET"),
    );
    const get = await exchange(socket, "CONFIG GET maxmemory\r\n", 4);
    assert.ok(get.startsWith("*2\r\n"), get);
    assert.equal(await exchange(socket, "PING\r\n", 7), "+PONG\r\n");
    socket.end();
    assert.equal((await accessLog()).end, "client-closed");

    assert.equal(await callsSeenByRedis("flushall"), 0, "no FLUSHALL reached Redis");
    assert.equal(await callsSeenByRedis("flushdb"), 0, "no FLUSHDB reached Redis");
    assert.ok((await callsSeenByRedis("set")) >= 2);
  });

  test("redis-cli through the guard gets the refusal as Redis's own error", async () => {
    const output = await new Promise<string>((resolve, reject) => {
      execFile(
        "redis-cli",
        ["-h", "127.0.0.1", "-p", String(proxy.port("guarded")), "FLUSHALL"],
        { timeout: 10_000 },
        (error, stdout, stderr) => (error && !stdout ? reject(error) : resolve(`${stdout}${stderr}`)),
      );
    });
    assert.match(output, /ERR 'FLUSHALL' is not allowed through this gateway/);
    assert.equal(await callsSeenByRedis("flushall"), 0);
  });

  test("the line logger writes each line each way, and changes no byte", async () => {
    const { socket, port, accessLog } = await dial("logged");
    assert.equal(await exchange(socket, "SET greeting hello\r\n", 5), "+OK\r\n");
    // A line split across writes is logged once, whole.
    socket.write("GET gree");
    // Not a synchronisation: a separate segment, most likely; the logged line must not depend on it.
    await delay(50);
    assert.equal(await exchange(socket, "ting\r\n", 11), "$5\r\nhello\r\n");
    socket.end();
    await accessLog();
    type Entry = { listener: string; clientPort: number; direction: string; line: string; target: string };
    const entries = (): Entry[] =>
      readFileSync(logFile, "utf8")
        .split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Entry)
        .filter((e) => e.clientPort === port);
    await eventually(() => entries().length >= 5, 5000, "five log lines");
    assert.deepEqual(
      entries().map((e) => [e.direction, e.line]),
      [
        ["up", "SET greeting hello"],
        ["down", "+OK"],
        ["up", "GET greeting"],
        ["down", "$5"],
        ["down", "hello"],
      ],
    );
    assert.ok(entries().every((e) => e.listener === "logged" && e.target === redis.address));
  });
});
