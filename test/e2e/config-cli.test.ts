// `tcpgate --check` through the real CLI (dist/cli.js, built by `npm test`).
import assert from "node:assert/strict";
import { test } from "node:test";
import { runTcpgate, tempConfig } from "../support/cli.ts";
import { startServer } from "../support/net.ts";

const GOOD = `version: 1
defaults:
  connectTimeout: 2s
listeners:
  - name: postgres
    listen: 127.0.0.1:15432
    targets:
      - 192.168.0.100:5432
      - address: db.internal:5432
        weight: 2
  - name: web
    listen: "[::1]:8443"
    targets: [127.0.0.1:443]
    idleTimeout: 1h
`;

test("--check on a good file: exit 0, a summary naming listeners, addresses and targets", async () => {
  const file = tempConfig(GOOD);
  try {
    const { code, stdout, stderr } = await runTcpgate(["--config", file.path, "--check"]);
    assert.equal(stderr, "");
    assert.equal(code, 0);
    for (const expected of [
      "postgres",
      "127.0.0.1:15432",
      "192.168.0.100:5432",
      "db.internal:5432 (weight 2)",
      "web",
      "[::1]:8443",
      "127.0.0.1:443",
    ]) {
      assert.ok(stdout.includes(expected), `${expected} missing from:\n${stdout}`);
    }
    assert.match(stdout, /OK, 2 listeners/);
  } finally {
    file.remove();
  }
});

test("--check binds nothing: the listen address may be in use", async () => {
  const busy = await startServer((socket) => socket.end());
  const file = tempConfig(
    `version: 1\nlisteners:\n  - name: busy\n    listen: ${busy.address}\n    targets: [127.0.0.1:9]\n`,
  );
  try {
    const { code, stderr } = await runTcpgate(["-c", file.path, "--check"]);
    assert.equal(stderr, "");
    assert.equal(code, 0);
  } finally {
    file.remove();
    await busy.close();
  }
});

test("--check on a bad file: exit 1, every error on stderr one per line, no stack trace", async () => {
  const file = tempConfig(`version: 1
listeners:
  - name: web
    listen: 127.0.0.1:0
    targets: [127.1:9000]
    idleTimout: 5m
  - name: web
    listen: 127.0.0.1:8081
    targets: [127.0.0.1:9000]
`);
  try {
    const { code, stdout, stderr } = await runTcpgate(["--config", file.path, "--check"]);
    assert.equal(code, 1);
    assert.equal(stdout, "");
    assert.equal(
      stderr,
      [
        `${file.path}:4:13: listeners[0].listen: "127.0.0.1:0": port must be from 1 to 65535`,
        `${file.path}:5:15: listeners[0].targets[0]: "127.1" is not an IPv4 address (it has 2 parts; write all four, a.b.c.d)`,
        `${file.path}:6:5: listeners[0].idleTimout: unknown key "idleTimout" (did you mean idleTimeout?)`,
        `${file.path}:7:11: listeners[1].name: "web" is already the name of listeners[0]`,
        "",
      ].join("\n"),
    );
    assert.doesNotMatch(stderr, /^\s+at /m);
  } finally {
    file.remove();
  }
});

test("--check on a YAML syntax error, an empty file and a missing file", async () => {
  const file = tempConfig("version: 1\nlisteners: [\n");
  try {
    let run = await runTcpgate(["-c", file.path, "--check"]);
    assert.equal(run.code, 1);
    assert.equal(
      run.stderr,
      `${file.path}:3:1: Flow sequence in block collection must be sufficiently indented and end with a ]\n`,
    );
    file.write("");
    run = await runTcpgate(["-c", file.path, "--check"]);
    assert.deepEqual([run.code, run.stderr], [1, `${file.path}: the file is empty\n`]);
    const missing = `${file.dir}/nope.yaml`;
    run = await runTcpgate(["-c", missing, "--check"]);
    assert.deepEqual([run.code, run.stderr], [1, `${missing}: cannot read the config: no such file\n`]);
  } finally {
    file.remove();
  }
});

test("--check: an IPv4-mapped listen address clashes with its IPv4 form (exit 1), instead of failing to bind", async () => {
  const port = 18080; // --check binds nothing
  const file = tempConfig(`version: 1
listeners:
  - name: plain
    listen: 127.0.0.1:${port}
    targets: [127.0.0.1:9]
  - name: mapped
    listen: "[::ffff:127.0.0.1]:${port}"
    targets: [127.0.0.1:9]
`);
  try {
    const { code, stdout, stderr } = await runTcpgate(["--config", file.path, "--check"]);
    assert.equal(code, 1);
    assert.equal(stdout, "");
    assert.equal(
      stderr,
      `${file.path}:7:13: listeners[1].listen: [::ffff:127.0.0.1]:${port} (IPv4-mapped, so 127.0.0.1:${port}) is already the address of listener "plain" (listeners[0])\n`,
    );
    // Alone, it is the IPv4 address it stands for.
    file.write(
      `version: 1\nlisteners:\n  - name: mapped\n    listen: "[::ffff:127.0.0.1]:${port}"\n    targets: [127.0.0.1:9]\n`,
    );
    const alone = await runTcpgate(["--config", file.path, "--check"]);
    assert.equal(alone.code, 0);
    assert.match(alone.stdout, new RegExp(`mapped: 127\\.0\\.0\\.1:${port} -> 127\\.0\\.0\\.1:9`));
  } finally {
    file.remove();
  }
});
