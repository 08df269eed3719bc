// The admin endpoint on a Unix socket (SPEC §2, issue 11 item 7): the socket file's mode
// decides who may talk to it; a stale file is replaced at start-up and a live one is not;
// a reload moves it like a TCP address, binding the new path before giving up the old;
// and `tcpgate plan --admin unix:/path` talks over it. The real CLI, real sockets.
import assert from "node:assert/strict";
import { existsSync, lstatSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { requestFrom, type StatusDoc } from "../support/admin.ts";
import { echoes } from "../support/admission.ts";
import { runTcpgate, startGate, startTcpgate, tempConfig } from "../support/cli.ts";
import { eventually, freePorts, startEcho, type TestServer } from "../support/net.ts";
import { connectOutcome } from "../support/reload.ts";

/** Every test is bounded in time; generously, as a loaded 2-core machine starts node in seconds. */
const BOUNDED = { timeout: 90_000 };
/** A CLI run (node start-up included) may take this long. */
const CLI_MS = 30_000;

const file = (admin: string[], web: number, target: string, more: readonly string[] = []) =>
  [
    "version: 1",
    "shutdownTimeout: 1s",
    "admin:",
    ...admin.map((line) => `  ${line}`),
    "listeners:",
    "  - name: web",
    `    listen: "127.0.0.1:${web}"`,
    `    targets: ["${target}"]`,
    ...more,
    "",
  ].join("\n");

/** "connected", or the error code of a connection to a Unix socket (ECONNREFUSED: nobody listens). */
function socketOutcome(path: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({ path });
    socket.once("connect", () => {
      socket.destroy();
      resolve("connected");
    });
    socket.once("error", (error: NodeJS.ErrnoException) => resolve(error.code ?? String(error)));
  });
}

const mode = (path: string) => lstatSync(path).mode & 0o777;

async function statusOver(socketPath: string): Promise<StatusDoc> {
  const reply = await requestFrom({ socketPath }, "/status");
  assert.equal(reply.status, 200, reply.body);
  return JSON.parse(reply.body) as StatusDoc;
}

/** A private folder for socket files, a target, and a free listener port; all removed after run. */
async function withSocketDir(run: (dir: string, echo: TestServer, web: number) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "tcpgate-sock-"));
  const echo = await startEcho();
  const [web = 0] = await freePorts(1);
  try {
    await run(dir, echo, web);
  } finally {
    await echo.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

test(
  "a socket with mode 0600 by default: /status, POST /plan and `tcpgate plan --admin unix:` over it; admin.mode applies on reload; gone after shutdown",
  BOUNDED,
  () =>
    withSocketDir(async (dir, echo, web) => {
      const socketPath = join(dir, "admin.sock");
      const gate = await startGate(file([`listen: "unix:${socketPath}"`], web, echo.address));
      try {
        assert.ok(lstatSync(socketPath).isSocket());
        assert.equal(mode(socketPath), 0o600);
        assert.equal((await statusOver(socketPath)).pid, gate.pid);
        assert.equal((await requestFrom({ socketPath }, "/healthz")).status, 200);

        const client = await gate.dial(web, "127.0.0.2");
        await echoes(client, "open");
        const next = tempConfig(file([`listen: "unix:${socketPath}"`], web, echo.address, ['    deny: ["127.0.0.2"]']));
        try {
          for (const args of [["--admin", `unix:${socketPath}`], []]) {
            // With no --admin, the file's own admin.listen (a unix: path) says where to ask.
            const run = await runTcpgate(["plan", "--config", next.path, ...args, "--json"], CLI_MS);
            assert.equal(run.code, 3, run.stderr);
            const plan = JSON.parse(run.stdout) as { refused: { client: string; clientPort: number }[] };
            assert.deepEqual(
              plan.refused.map((b) => [b.client, b.clientPort]),
              [["127.0.0.2", client.localPort]],
            );
          }
          const reply = await requestFrom({ socketPath }, "/plan", {
            method: "POST",
            body: readFileSync(next.path, "utf8"),
          });
          assert.equal(reply.status, 200);
        } finally {
          next.remove();
        }

        gate.write(file([`listen: "unix:${socketPath}"`, 'mode: "0660"'], web, echo.address));
        const reload = await requestFrom({ socketPath }, "/reload", { method: "POST" });
        assert.equal(reload.status, 200, reload.body);
        assert.equal(mode(socketPath), 0o660);
        client.destroy();
      } finally {
        assert.equal(await gate.close(), 0);
      }
      assert.equal(existsSync(socketPath), false, "a clean shutdown removes the socket file");
    }),
);

test("admin.mode 0660 at start-up", BOUNDED, () =>
  withSocketDir(async (dir, echo, web) => {
    const socketPath = join(dir, "admin.sock");
    const gate = await startGate(file([`listen: "unix:${socketPath}"`, "mode: 0660"], web, echo.address));
    try {
      assert.equal(mode(socketPath), 0o660);
      assert.equal((await statusOver(socketPath)).pid, gate.pid);
    } finally {
      await gate.close();
    }
  }),
);

test("a stale socket file left by a SIGKILLed instance is replaced at start-up", BOUNDED, () =>
  withSocketDir(async (dir, echo, web) => {
    const socketPath = join(dir, "admin.sock");
    const text = file([`listen: "unix:${socketPath}"`], web, echo.address);
    const first = await startGate(text);
    try {
      assert.equal(await first.stop("SIGKILL"), null);
    } finally {
      await first.close();
    }
    assert.ok(lstatSync(socketPath).isSocket(), "SIGKILL leaves the socket file behind");
    assert.equal(await socketOutcome(socketPath), "ECONNREFUSED", "nobody listens on it");

    const second = await startGate(text);
    try {
      assert.equal((await statusOver(socketPath)).pid, second.pid);
      assert.equal(mode(socketPath), 0o600);
    } finally {
      await second.close();
    }
  }),
);

test(
  "a live socket (another instance runs on it) makes start-up fail with exit 1 and one line; the first keeps it",
  BOUNDED,
  () =>
    withSocketDir(async (dir, echo, web) => {
      const socketPath = join(dir, "admin.sock");
      const first = await startGate(file([`listen: "unix:${socketPath}"`], web, echo.address));
      const [otherPort = 0] = await freePorts(1);
      const other = tempConfig(file([`listen: "unix:${socketPath}"`], otherPort, echo.address));
      try {
        const second = startTcpgate(["--config", other.path]);
        assert.equal(await second.exited, 1);
        const lines = second.stderr().split("\n").filter(Boolean);
        assert.deepEqual(lines, [
          `tcpgate: admin: cannot listen on unix:${socketPath}: the address is already in use (EADDRINUSE)`,
        ]);
        assert.equal(await connectOutcome(otherPort), "ECONNREFUSED", "the second bound nothing");
        assert.equal((await statusOver(socketPath)).pid, first.pid);
      } finally {
        other.remove();
        await first.close();
      }
    }),
);

test("a regular file where the socket should be is never touched: start-up fails with exit 1", BOUNDED, () =>
  withSocketDir(async (dir, echo, web) => {
    const path = join(dir, "admin.sock");
    writeFileSync(path, "not a socket\n");
    const config = tempConfig(file([`listen: "unix:${path}"`], web, echo.address));
    try {
      const run = await runTcpgate(["--config", config.path], CLI_MS);
      assert.equal(run.code, 1);
      assert.equal(run.stderr.split("\n").filter(Boolean).length, 1, run.stderr);
      assert.equal(readFileSync(path, "utf8"), "not a socket\n");
    } finally {
      config.remove();
    }
  }),
);

test(
  "a reload moves the socket: TCP → unix, unix → another path, all or nothing (a path that cannot be bound keeps the old one)",
  BOUNDED,
  () =>
    withSocketDir(async (dir, echo, web) => {
      const [tcp = 0] = await freePorts(1);
      const first = join(dir, "first.sock");
      const second = join(dir, "second.sock");
      const gate = await startGate(file([`listen: "127.0.0.1:${tcp}"`], web, echo.address));
      const reloaded = (trigger: string, n: number) =>
        gate.waitForLog(() => gate.logs.filter((l) => l.msg === "reload applied" && l.trigger === trigger).length >= n);
      try {
        // TCP → unix, by SIGHUP.
        gate.write(file([`listen: "unix:${first}"`], web, echo.address));
        process.kill(gate.pid, "SIGHUP");
        await reloaded("signal", 1);
        assert.equal((await statusOver(first)).pid, gate.pid);
        assert.equal(mode(first), 0o600);
        await eventually(async () => (await connectOutcome(tcp)) === "ECONNREFUSED", 3000, "the TCP port to close");

        // A path in a folder that does not exist cannot be bound: nothing changes, and the old
        // socket still answers, so the new one is bound before the old one is given up.
        gate.write(file([`listen: "unix:${join(dir, "missing", "admin.sock")}"`], web, echo.address));
        const refused = await requestFrom({ socketPath: first }, "/reload", { method: "POST" });
        assert.equal(refused.status, 422, refused.body);
        assert.match(refused.body, /admin: cannot listen on unix:/);
        assert.equal((await statusOver(first)).lastReload?.outcome, "rejected");

        // unix → another path, asked for over the old one.
        gate.write(file([`listen: "unix:${second}"`, 'mode: "0660"'], web, echo.address));
        const moved = await requestFrom({ socketPath: first }, "/reload", { method: "POST" });
        assert.equal(moved.status, 200, moved.body);
        assert.equal((await statusOver(second)).pid, gate.pid);
        assert.equal(mode(second), 0o660);
        await eventually(() => !existsSync(first), 3000, "the old socket file to go");
      } finally {
        await gate.close();
      }
    }),
);

test(
  "admin.allow with a unix: address is a config error (file mode decides), as admin.mode with a TCP one",
  BOUNDED,
  async () => {
    for (const [admin, message] of [
      [
        ['listen: "unix:/run/tcpgate/admin.sock"', 'allow: ["127.0.0.1"]'],
        /:\d+:\d+: admin\.allow: applies to a TCP listen address only/,
      ],
      [['listen: "127.0.0.1:9901"', 'mode: "0660"'], /:\d+:\d+: admin\.mode: applies to a "unix:" listen address only/],
    ] as const) {
      const config = tempConfig(file([...admin], 9, "127.0.0.1:9"));
      try {
        const run = await runTcpgate(["--config", config.path, "--check"], CLI_MS);
        assert.equal(run.code, 1);
        const lines = run.stderr.split("\n").filter(Boolean);
        assert.equal(lines.length, 1, run.stderr);
        assert.match(lines[0] ?? "", message);
      } finally {
        config.remove();
      }
    }
  },
);
