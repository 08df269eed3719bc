// Filters end to end: modules written by the test, the real CLI, real sockets. What a
// filter does to bytes, how it ends a bridge, what it costs in memory, and how modules
// are loaded, reloaded, refused and checked.
import assert from "node:assert/strict";
import { chownSync, mkdirSync, readFileSync } from "node:fs";
import type { Socket } from "node:net";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { FILTER_TIMEOUT_MS } from "../../src/proxy/filter-stream.ts";
import { workersUnsupported } from "../../src/workers/support.ts";
import { type Gate, type LogLine, type Running, runTcpgate, startTcpgate, tempConfig } from "../support/cli.ts";
import { type Dial, filterSetting, gateWith, MODULES, type ModuleFolder, moduleFolder } from "../support/filters.ts";
import {
  endOf,
  eventually,
  freePort,
  freePorts,
  readAll,
  startEcho,
  startServer,
  type TestServer,
} from "../support/net.ts";
import { configText, exchange, open } from "../support/reload.ts";
import { flood, receiveHash, rssBytes, sendRandom } from "../support/streams.ts";

const MiB = 1024 * 1024;

/** tcpgate on a config file of the test's own, whose folder holds its filter modules. */
async function startOn(path: string): Promise<Running> {
  const tcpgate = startTcpgate(["--config", path, "--no-watch", "--log-level", "debug"]);
  await tcpgate.started({ timeoutMs: 15_000 });
  return tcpgate;
}

describe("filters on the bytes", () => {
  let echo: TestServer;
  let recorder: TestServer;
  /** What the recorder's connections received, in order of connection. */
  const recorded: Buffer[][] = [];
  let modules: ModuleFolder;
  let proxy: Gate;
  let dial: Dial;

  before(async () => {
    echo = await startEcho();
    recorder = await startServer((socket) => {
      const chunks: Buffer[] = [];
      recorded.push(chunks);
      socket.on("data", (chunk: Buffer) => chunks.push(chunk));
      socket.on("end", () => socket.end());
    });
    modules = moduleFolder();
    const at = (name: keyof typeof MODULES) => filterSetting(modules.write(`${name}.mjs`, MODULES[name]));
    const failing = modules.write(
      "failing.mjs",
      `export default () => ({
  up(chunk) {
    const text = chunk.toString();
    if (text.startsWith("THROW")) throw new Error("boom");
    if (text.startsWith("REJECT")) return Promise.reject(new RangeError("nope"));
    if (text.startsWith("STALL")) return new Promise(() => {});
    if (text.startsWith("BYE")) return null;
    return chunk;
  },
});
`,
    );
    const bracket = modules.write(
      "bracket.mjs",
      `export default () => ({ up: (chunk) => Buffer.concat([Buffer.from("["), chunk]) });\n`,
    );
    ({ gate: proxy, dial } = await gateWith([
      { name: "same", targets: [echo.address], settings: { filter: at("identity") } },
      { name: "same-async", targets: [echo.address], settings: { filter: at("identityAsync") } },
      { name: "case", targets: [recorder.address], settings: { filter: at("caseAndRot13") } },
      { name: "failing", targets: [echo.address], settings: { filter: filterSetting(failing) } },
      {
        name: "header",
        targets: [recorder.address],
        settings: { filter: filterSetting(bracket), proxyProtocol: "v1" },
      },
    ]));
  });

  after(async () => {
    await proxy?.close();
    await echo?.close();
    await recorder?.close();
    modules?.remove();
  });

  for (const listener of ["same", "same-async"]) {
    test(`a filter that returns its input changes nothing (${listener}): bulk both ways, half-close kept`, async () => {
      const { socket, accessLog } = await dial(listener);
      const received = receiveHash(socket);
      const sent = await sendRandom(socket, 8 * MiB);
      // The echo ends its half after ours: both FINs went through the filter's directions.
      const got = await received;
      assert.equal(got.bytes, 8 * MiB);
      assert.equal(got.sha256, sent);
      const line = await accessLog();
      assert.equal(line.end, "client-closed");
      assert.equal(line.bytesUp, 8 * MiB);
      assert.equal(line.bytesDown, 8 * MiB);
    });
  }

  test("up and down rewrite their direction", async () => {
    const before = recorded.length;
    const { socket, accessLog } = await dial("case");
    const reply = readAll(socket);
    socket.end("Hello, Target");
    await accessLog();
    assert.equal(Buffer.concat(recorded[before] ?? []).toString(), "HELLO, TARGET");
    // The recorder sends nothing back; a second bridge checks the down direction.
    const target = new Promise<Socket>((resolve) => recorder.server.once("connection", resolve));
    const second = await dial("case");
    (await target).end("Uryyb, Pyvrag");
    assert.equal((await readAll(second.socket)).toString(), "Hello, Client");
    assert.equal((await reply).toString(), "");
  });

  test("null closes the bridge: end reason filter", async () => {
    const { socket, accessLog } = await dial("failing");
    assert.equal(await exchange(socket, "hello", 5), "hello");
    socket.write("BYE");
    const line = await accessLog();
    assert.equal(line.end, "filter");
    assert.equal(line.level, 30);
  });

  test("a throw, a rejection and a stall end only their own bridge: filter-error with the message", {
    timeout: 60_000,
  }, async () => {
    const bystander = await dial("failing");
    assert.equal(await exchange(bystander.socket, "before", 6), "before");
    const cases: [string, string][] = [
      ["THROW", "up: boom"],
      ["REJECT", "up: RangeError: nope"],
      ["STALL", `up: no answer within ${FILTER_TIMEOUT_MS / 1000}s`],
    ];
    const started = Date.now();
    const ended = await Promise.all(
      cases.map(async ([word]) => {
        const { socket, accessLog } = await dial("failing");
        const closed = endOf(socket, FILTER_TIMEOUT_MS + 10_000);
        socket.write(word);
        const line = await accessLog(FILTER_TIMEOUT_MS + 10_000);
        return { line, after: Date.now() - started, how: await closed };
      }),
    );
    ended.forEach(({ line, how }, i) => {
      assert.equal(line.end, "filter-error");
      assert.deepEqual(line.errors, [cases[i]?.[1]]);
      assert.equal(line.level, 40, "a failing filter is a warning");
      assert.notEqual(how, "timeout", "the client was closed");
    });
    const stall = ended[2]?.after ?? 0;
    assert.ok(stall >= FILTER_TIMEOUT_MS - 500, `the stall ended after ${stall} ms, before the limit`);
    // The process and the other bridge carry on.
    assert.equal(await exchange(bystander.socket, "after", 5), "after");
    bystander.socket.end();
    assert.equal((await bystander.accessLog()).end, "client-closed");
  });

  test("a reset passes through a filtered bridge as a reset", async () => {
    const target = new Promise<Socket>((resolve) => echo.server.once("connection", resolve));
    const { socket, accessLog } = await dial("same");
    assert.equal(await exchange(socket, "x", 1), "x");
    const targetSide = await target;
    const how = endOf(targetSide, 5000);
    socket.resetAndDestroy();
    assert.equal(await how, "reset");
    assert.equal((await accessLog()).end, "client-reset");
  });

  test("our own PROXY header to the target does not pass through the filter", async () => {
    const before = recorded.length;
    const { socket, accessLog } = await dial("header");
    socket.end("hello");
    await accessLog();
    const text = Buffer.concat(recorded[before] ?? []).toString();
    assert.match(text, /^PROXY TCP4 127\.0\.0\.1 127\.0\.0\.1 \d+ \d+\r\n\[hello$/);
  });
});

describe("filter memory", () => {
  test("an async filter in front of a reader that never reads stalls the writer; memory stays bounded", {
    timeout: 90_000,
  }, async (t) => {
    const modules = moduleFolder();
    const waiting: ((socket: Socket) => void)[] = [];
    const sink = await startServer((socket) => {
      socket.pause();
      waiting.shift()?.(socket);
    });
    // Every chunk waits a timer: the slowest kind of Promise a filter returns.
    const slow = modules.write(
      "slow.mjs",
      "const later = (chunk) => new Promise((resolve) => setTimeout(() => resolve(chunk), 1));\nexport default () => ({ up: later, down: later });\n",
    );
    const { gate: proxy, dial } = await gateWith([
      { name: "mem", targets: [sink.address], settings: { filter: filterSetting(slow) } },
    ]);
    const nextTarget = () => new Promise<Socket>((resolve) => waiting.push(resolve));
    try {
      // Warm up, so the baseline is a running proxy.
      {
        const targetSide = nextTarget();
        const { socket, accessLog } = await dial("mem");
        const target = await targetSide;
        target.resume();
        target.pipe(target);
        const echoed = readAll(socket);
        socket.end(Buffer.alloc(2 * MiB));
        assert.equal((await echoed).length, 2 * MiB);
        // The baseline is taken once the warm-up bridge has ended and let go of its buffers.
        await accessLog();
      }
      const baseline = rssBytes(proxy.pid);
      const downTarget = nextTarget();
      const down = await dial("mem");
      const downSender = flood(await downTarget, 3000);
      const upTarget = nextTarget();
      const up = await dial("mem");
      const upReceiver = await upTarget;
      const upSender = flood(up.socket, 3000);
      let peak = baseline;
      const sampler = setInterval(() => {
        peak = Math.max(peak, rssBytes(proxy.pid));
      }, 100);
      let written: [number, number];
      try {
        written = await Promise.all([downSender.done, upSender.done]);
      } finally {
        clearInterval(sampler);
      }
      peak = Math.max(peak, rssBytes(proxy.pid));
      const [downWritten, upWritten] = written;
      t.diagnostic(
        `in flight: down ${(downWritten / MiB).toFixed(1)} MiB, up ${(upWritten / MiB).toFixed(1)} MiB; ` +
          `proxy RSS ${(baseline / MiB).toFixed(1)} → peak ${(peak / MiB).toFixed(1)} MiB`,
      );
      // As in bridge-memory.test.ts: kernel buffers plus a few chunks, never the flood.
      assert.ok(downWritten < 64 * MiB, `target wrote ${downWritten / MiB} MiB into a stalled client`);
      assert.ok(upWritten < 64 * MiB, `client wrote ${upWritten / MiB} MiB into a stalled target`);
      assert.ok(peak - baseline < 64 * MiB, `proxy RSS grew by ${((peak - baseline) / MiB).toFixed(1)} MiB`);
      const count = async (socket: Socket) => {
        let bytes = 0;
        for await (const chunk of socket) bytes += (chunk as Buffer).length;
        return bytes;
      };
      const [downRead, upRead] = await Promise.all([count(down.socket), count(upReceiver)]);
      assert.equal(downRead, downWritten);
      assert.equal(upRead, upWritten);
      down.socket.end();
      upReceiver.end();
      await Promise.all([down.accessLog(), up.accessLog()]);
    } finally {
      await proxy.close();
      await sink.close();
      modules.remove();
    }
  });
});

/** A module that tags what goes up with its version, for telling versions apart. */
const tagging = (tag: string) =>
  `export default () => ({ up: (chunk) => Buffer.concat([Buffer.from(${JSON.stringify(tag)}), chunk]) });\n`;

describe("filter modules across reloads", () => {
  let echo: TestServer;
  let config: ReturnType<typeof tempConfig>;
  let modules: ModuleFolder;
  let gate: Running;
  let port: number;
  let adminPort: number;

  before(async () => {
    echo = await startEcho();
    [port = 0, adminPort = 0] = await freePorts(2);
    // Relative to the config file's folder.
    const text = `${configText([
      {
        name: "tagged",
        listen: `127.0.0.1:${port}`,
        targets: [echo.address],
        settings: { filter: filterSetting("./tag.mjs") },
      },
    ])}admin:\n  listen: 127.0.0.1:${adminPort}\n`;
    config = tempConfig(text);
    modules = moduleFolder(config.dir);
    modules.write("tag.mjs", tagging("v1:"));
    gate = await startOn(config.path);
  });

  after(async () => {
    await gate?.stop();
    await echo?.close();
    config?.remove();
  });

  test("an edited module reaches new bridges after a reload; open ones keep theirs; plan names it", async () => {
    const old = await open(port);
    assert.equal(await exchange(old, "a", 4), "v1:a");
    modules.write("tag.mjs", tagging("v2:"));
    // The config file did not change: the module's content alone makes the reload.
    const plan = await fetch(`http://127.0.0.1:${adminPort}/plan`, {
      method: "POST",
      body: readFileSync(config.path, "utf8"),
      signal: AbortSignal.timeout(5000),
    });
    const body = await plan.text();
    assert.equal(plan.status, 200, body);
    const changes = (
      JSON.parse(body) as { listeners: { changed: { changes: { setting: string; from: string; to: string }[] }[] } }
    ).listeners.changed.flatMap((l) => l.changes);
    assert.equal(changes.length, 1);
    assert.equal(changes[0]?.setting, "filter");
    assert.match(changes[0]?.from ?? "", /^\.\/tag\.mjs \(sha256 [0-9a-f]{12}\)$/);
    assert.notEqual(changes[0]?.from, changes[0]?.to);

    const applied = gate.applied();
    gate.hangup();
    await gate.waitApplied(applied + 1);
    assert.ok(gate.messages("listener tagged: filter changed").length > 0);
    const fresh = await open(port);
    assert.equal(await exchange(fresh, "b", 4), "v2:b");
    assert.equal(await exchange(old, "c", 4), "v1:c", "an open bridge keeps the module it started with");
    old.destroy();
    fresh.destroy();
  });

  test("a module that fails to load rejects the reload: the running one stays", async () => {
    const mark = gate.logs.length;
    const modulePath = join(config.dir, "tag.mjs");
    modules.write("tag.mjs", "export default function create( {\n");
    gate.hangup();
    const line = await gate.waitMsg("reload rejected", { from: mark });
    const errors = (line as LogLine & { errors: string[] }).errors;
    assert.equal(errors.length, 1);
    assert.ok(errors[0]?.includes(modulePath), errors[0]);
    assert.match(errors[0] ?? "", /line 2: SyntaxError/);
    const socket = await open(port);
    assert.match(await exchange(socket, "d", 4), /^v[12]:d$/);
    socket.destroy();
  });
});

describe("filters with workers", { skip: workersUnsupported(2) }, () => {
  test("every worker runs the module, and a reload gives all of them the new version", {
    timeout: 60_000,
  }, async () => {
    const echo = await startEcho();
    const port = await freePort();
    const config = tempConfig(
      `workers: 2\n${configText([
        {
          name: "tagged",
          listen: `127.0.0.1:${port}`,
          targets: [echo.address],
          settings: { filter: filterSetting("./tag.mjs") },
        },
      ])}`,
    );
    const modules = moduleFolder(config.dir);
    modules.write("tag.mjs", tagging("v1:"));
    let gate: Running | undefined;
    try {
      gate = await startOn(config.path);
      /** 16 bridges, each its own connection: SO_REUSEPORT spreads them over both workers. */
      const answers = async () => {
        const mark = gate?.logs.length ?? 0;
        const seen = await Promise.all(
          Array.from({ length: 16 }, async () => {
            const socket = await open(port);
            try {
              return await exchange(socket, "x", 4);
            } finally {
              socket.end();
            }
          }),
        );
        await eventually(
          () => (gate?.logs.slice(mark).filter((l) => l.end !== undefined).length ?? 0) >= 16,
          10_000,
          "16 access-log lines",
        );
        const workers = new Set(
          gate?.logs
            .slice(mark)
            .filter((l) => l.end !== undefined)
            .map((l) => l.worker),
        );
        return { seen: new Set(seen), workers: workers.size };
      };
      assert.deepEqual(await answers(), { seen: new Set(["v1:x"]), workers: 2 });
      modules.write("tag.mjs", tagging("v2:"));
      const applied = gate.applied();
      gate.hangup();
      await gate.waitApplied(applied + 1, 15_000);
      assert.deepEqual(await answers(), { seen: new Set(["v2:x"]), workers: 2 });
    } finally {
      await gate?.stop();
      await echo.close();
      config.remove();
    }
  });
});

describe("filter modules at start-up and in --check", () => {
  const cases: { name: string; source: string; mode?: number; expect: RegExp }[] = [
    { name: "a syntax error", source: "export default () => ({ up: (c) => c c });\n", expect: /line 1: SyntaxError/ },
    {
      name: "no default export",
      source: "export const create = () => ({});\n",
      expect: /default export must be a function create\(options, bridge\): it has none/,
    },
    {
      name: "a default export that is no function",
      source: "export default { up: (c) => c };\n",
      expect: /default export must be a function create\(options, bridge\): not an object/,
    },
    { name: "a module writable by everyone", source: MODULES.identity, mode: 0o646, expect: /writable by everyone/ },
  ];
  for (const c of cases) {
    test(`${c.name}: --check and start-up exit 1 with one line naming the module`, async () => {
      const config = tempConfig(
        configText([
          {
            name: "f",
            listen: `127.0.0.1:${await freePort()}`,
            targets: ["127.0.0.1:9"],
            settings: { filter: filterSetting("./f.mjs") },
          },
        ]),
      );
      try {
        const path = moduleFolder(config.dir).write("f.mjs", c.source, c.mode);
        for (const args of [["--check"], ["--no-watch"]]) {
          const result = await runTcpgate(["--config", config.path, ...args]);
          assert.equal(result.code, 1, result.stderr);
          const lines = result.stderr.trim().split("\n");
          assert.equal(lines.length, 1, result.stderr);
          assert.ok(lines[0]?.startsWith(`${config.path}: filter module ${path} (listener f): `), lines[0]);
          assert.match(lines[0] ?? "", c.expect);
        }
      } finally {
        config.remove();
      }
    });
  }

  test("a group-writable module in a shared group is refused", {
    skip: process.getuid?.() !== 0 && "needs root to chown",
  }, async () => {
    const config = tempConfig(
      configText([
        {
          name: "f",
          listen: `127.0.0.1:${await freePort()}`,
          targets: ["127.0.0.1:9"],
          settings: { filter: filterSetting("./f.mjs") },
        },
      ]),
    );
    try {
      const path = moduleFolder(config.dir).write("f.mjs", MODULES.identity, 0o664);
      // gid 100 ("users" on Debian) is nobody's private group.
      chownSync(path, 0, 100);
      const result = await runTcpgate(["--config", config.path, "--check"]);
      assert.equal(result.code, 1);
      assert.match(result.stderr, /writable by its group/);
      const insecure = await runTcpgate(["--config", config.path, "--check", "--insecure-config"]);
      assert.equal(insecure.code, 0, insecure.stderr);
    } finally {
      config.remove();
    }
  });

  test("--check loads a good module and names it, relative to the config file's folder", async () => {
    const config = tempConfig(
      `${configText([{ name: "f", listen: `127.0.0.1:${await freePort()}`, targets: ["127.0.0.1:9"] }])}defaults:\n  filter: ${filterSetting("./filters/f.mjs", { deny: ["FLUSHALL"] })}\n`,
    );
    try {
      mkdirSync(join(config.dir, "filters"));
      const path = moduleFolder(join(config.dir, "filters")).write("f.mjs", MODULES.identity);
      // tcpgate runs in the repository: the path resolves from the config's folder, not the cwd.
      const result = await runTcpgate(["--config", config.path, "--check"]);
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, new RegExp(`filter: ${path.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}`));
    } finally {
      config.remove();
    }
  });
});
