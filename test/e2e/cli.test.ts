// The real CLI as a child process: quick mode, graceful shutdown, help and version, bad
// usage and bind failures, with the exit codes and stderr lines SPEC §1 promises.
import assert from "node:assert/strict";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import type { Socket } from "node:net";
import { describe, test } from "node:test";
import { ROOT, runTcpgate, startTcpgate, tempConfig } from "../support/cli.ts";
import { delay, dial, eventually, freePort, readAll, startEcho, startServer } from "../support/net.ts";

/** Every test is bounded on its own: a hang fails that test, not the run. */
const BOUNDED = { timeout: 20_000 };

const VERSION = (JSON.parse(readFileSync(`${ROOT}/package.json`, "utf8")) as { version: string }).version;

/** One readable error line: "tcpgate: ...", no stack trace. */
function assertOneErrorLine(stderr: string, pattern?: RegExp): void {
  const lines = stderr.trimEnd().split("\n");
  assert.match(lines[0] ?? "", /^tcpgate: \S/, `stderr: ${stderr}`);
  if (pattern) assert.match(lines[0] ?? "", pattern);
  assert.equal(lines.length, 1, `more than one error line on stderr: ${JSON.stringify(stderr)}`);
  assert.doesNotMatch(stderr, /^\s+at /m, "stack trace on stderr");
}

function portOf(socket: Socket): number {
  const port = socket.localPort;
  assert.ok(port, "socket has no local port");
  return port;
}

/** A connect that is refused rejects with ECONNREFUSED. */
async function refused(port: number): Promise<boolean> {
  try {
    const socket = await dial(port);
    socket.destroy();
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "ECONNREFUSED";
  }
}

describe("cli", () => {
  test("quick mode forwards listen-host:listen-port to target-host:target-port", BOUNDED, async () => {
    const echo = await startEcho();
    const port = await freePort();
    const tcpgate = startTcpgate(["127.0.0.1", String(port), "127.0.0.1", String(echo.port)]);
    try {
      await tcpgate.waitForLog((l) => l.msg === "tcpgate started", 10_000);
      const client = await dial(port);
      const clientPort = portOf(client);
      const reply = readAll(client);
      client.end("quick mode works");
      assert.equal((await reply).toString(), "quick mode works");
      const line = await tcpgate.waitForLog((l) => l.clientPort === clientPort && l.end !== undefined);
      assert.equal(line.listener, "quick");
      assert.equal(line.target, echo.address);
      assert.equal(line.end, "client-closed");
      assert.equal(await tcpgate.stop("SIGTERM"), 0);
      assert.equal(tcpgate.stderr(), "");
    } finally {
      await tcpgate.stop("SIGKILL");
      await echo.close();
    }
  });

  test("SIGINT (Ctrl-C) shuts down like SIGTERM: exit 0", BOUNDED, async () => {
    const port = await freePort();
    const tcpgate = startTcpgate(["127.0.0.1", String(port), "127.0.0.1", "9"]);
    try {
      await tcpgate.waitForLog((l) => l.msg === "tcpgate started", 10_000);
      assert.equal(await tcpgate.stop("SIGINT"), 0);
      assert.ok(tcpgate.logs.some((l) => l.msg === "shutting down" && l.signal === "SIGINT"));
      assert.equal(tcpgate.stderr(), "");
    } finally {
      await tcpgate.stop("SIGKILL");
    }
  });

  test("SIGTERM stops accepting at once, lets an open bridge finish, then exits 0", BOUNDED, async () => {
    const echo = await startEcho();
    const port = await freePort();
    const config = tempConfig(
      `version: 1\nshutdownTimeout: 20s\nlisteners:\n  - name: main\n    listen: 127.0.0.1:${port}\n    targets: ["${echo.address}"]\n`,
    );
    const tcpgate = startTcpgate(["--config", config.path, "--no-watch"]);
    try {
      await tcpgate.waitForLog((l) => l.msg === "tcpgate started", 10_000);
      const client = await dial(port);
      const clientPort = portOf(client);
      client.write("before");
      await once(client, "data");

      const signalledAt = performance.now();
      process.kill(tcpgate.pid, "SIGTERM");
      await tcpgate.waitForLog((l) => l.msg === "shutting down");
      // The log line may overtake the close by a hair; "at once" still means well under a second.
      await eventually(() => refused(port), 1000, "the listener to refuse new connections after SIGTERM");

      // The open bridge still carries bytes both ways.
      client.write("during shutdown");
      const [during] = (await once(client, "data")) as [Buffer];
      assert.equal(during.toString(), "during shutdown");
      // The wait is the test: for a while with the bridge open, tcpgate must not exit.
      await delay(300);
      assert.equal(tcpgate.child.exitCode, null, "exited while a bridge was open");

      const rest = readAll(client);
      client.end("last words");
      assert.equal((await rest).toString(), "last words");
      assert.equal(await tcpgate.exited, 0);
      const elapsed = performance.now() - signalledAt;
      assert.ok(elapsed < 10_000, `exit took ${elapsed} ms, as if it waited for shutdownTimeout`);
      const line = tcpgate.logs.find((l) => l.clientPort === clientPort && l.end !== undefined);
      assert.equal(line?.end, "client-closed");
      assert.equal(tcpgate.stderr(), "");
    } finally {
      await tcpgate.stop("SIGKILL");
      await echo.close();
      config.remove();
    }
  });

  test("shutdownTimeout expiry closes the bridges still open and exits 0", BOUNDED, async () => {
    const target = await startServer(() => {});
    const port = await freePort();
    const config = tempConfig(
      `version: 1\nshutdownTimeout: 1s\nlisteners:\n  - name: main\n    listen: 127.0.0.1:${port}\n    targets: ["${target.address}"]\n`,
    );
    const tcpgate = startTcpgate(["--config", config.path, "--no-watch"]);
    try {
      await tcpgate.waitForLog((l) => l.msg === "tcpgate started", 10_000);
      const client = await dial(port);
      const clientPort = portOf(client);
      client.resume();
      await eventually(
        () => target.sockets.size === 1,
        5000,
        "the bridge to be joined (the target has the connection)",
      );

      const signalledAt = performance.now();
      process.kill(tcpgate.pid, "SIGTERM");
      assert.equal(await tcpgate.exited, 0);
      const elapsed = performance.now() - signalledAt;
      assert.ok(elapsed >= 900, `exited after ${elapsed} ms, before shutdownTimeout`);
      assert.ok(elapsed < 1000 + 3000, `exited only after ${elapsed} ms`);
      const line = tcpgate.logs.find((l) => l.clientPort === clientPort && l.end !== undefined);
      assert.equal(line?.end, "shutdown");
      assert.equal(tcpgate.stderr(), "");
    } finally {
      await tcpgate.stop("SIGKILL");
      await target.close();
      config.remove();
    }
  });

  for (const flag of ["--help", "-h"]) {
    test(`${flag} prints the usage on stdout and exits 0`, BOUNDED, async () => {
      const { code, stdout, stderr } = await runTcpgate([flag]);
      assert.equal(code, 0);
      assert.match(stdout, /^Usage:/);
      assert.match(stdout, /--config/);
      assert.match(stdout, /<listen-host> <listen-port> <target-host> <target-port>/);
      assert.equal(stderr, "");
    });
  }

  for (const flag of ["--version", "-v"]) {
    test(`${flag} prints the version on stdout and exits 0`, BOUNDED, async () => {
      const { code, stdout, stderr } = await runTcpgate([flag]);
      assert.equal(code, 0);
      assert.equal(stdout, `tcpgate ${VERSION}\n`);
      assert.equal(stderr, "");
    });
  }

  const badUsage: [string, string[]][] = [
    ["no arguments", []],
    ["an unknown option", ["--bogus"]],
    ["too few quick-mode arguments", ["127.0.0.1", "8080"]],
    ["too many quick-mode arguments", ["127.0.0.1", "8080", "127.0.0.1", "9000", "extra"]],
    ["a port out of range", ["127.0.0.1", "70000", "127.0.0.1", "9000"]],
    ["a listen address that is not an address", ["not-an-ip", "8080", "127.0.0.1", "9000"]],
    ["--config without its file", ["--config"]],
    ["--config with quick-mode arguments", ["--config", "proxy.yaml", "127.0.0.1", "8080", "127.0.0.1", "9000"]],
    ["--check without --config", ["--check"]],
    ["an unknown log level", ["--log-level", "loud", "127.0.0.1", "8080", "127.0.0.1", "9000"]],
  ];
  for (const [what, args] of badUsage) {
    test(`bad usage (${what}) exits 2 with one error line`, BOUNDED, async () => {
      const { code, stdout, stderr } = await runTcpgate(args);
      assert.equal(code, 2, `exit ${code}; stderr: ${stderr}`);
      assert.equal(stdout, "");
      assertOneErrorLine(stderr);
    });
  }

  test("a listen port already taken at start-up exits 1 with one error line", BOUNDED, async () => {
    const squatter = await startServer(() => {});
    try {
      const { code, stdout, stderr } = await runTcpgate(["127.0.0.1", String(squatter.port), "127.0.0.1", "9"]);
      assert.equal(code, 1, `exit ${code}; stderr: ${stderr}`);
      assertOneErrorLine(stderr, new RegExp(`127\\.0\\.0\\.1:${squatter.port}.*EADDRINUSE`));
      assert.doesNotMatch(stdout, /tcpgate started/);
    } finally {
      await squatter.close();
    }
  });

  test("one listener that cannot bind fails the whole start-up (exit 1), from a config file", BOUNDED, async () => {
    const squatter = await startServer(() => {});
    const free = await freePort();
    const config = tempConfig(
      [
        "version: 1",
        "listeners:",
        "  - name: fine",
        `    listen: 127.0.0.1:${free}`,
        '    targets: ["127.0.0.1:9"]',
        "  - name: taken",
        `    listen: 127.0.0.1:${squatter.port}`,
        '    targets: ["127.0.0.1:9"]',
        "",
      ].join("\n"),
    );
    try {
      const { code, stderr } = await runTcpgate(["--config", config.path, "--no-watch"]);
      assert.equal(code, 1, `exit ${code}; stderr: ${stderr}`);
      assertOneErrorLine(stderr, /taken.*EADDRINUSE/);
    } finally {
      await squatter.close();
      config.remove();
    }
  });
});
