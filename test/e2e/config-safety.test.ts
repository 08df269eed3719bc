import assert from "node:assert/strict";
import { chmodSync, chownSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import { pino } from "pino";
import { loadConfigFile, parseConfig } from "../../src/config/load.ts";
import { checkDescriptorBudget, openFilesLimit } from "../../src/fd-budget.ts";
import { runTcpgate, startTcpgate, tempConfig } from "../support/cli.ts";
import { dial, freePort } from "../support/net.ts";

const config = (port: number) =>
  `version: 1\nlisteners:\n  - name: web\n    listen: 127.0.0.1:${port}\n    targets: [127.0.0.1:9]\n`;
const files: { remove(): void }[] = [];
after(() => {
  for (const f of files) f.remove();
});

function file(text: string) {
  const f = tempConfig(text);
  files.push(f);
  return f;
}

test("a config writable by its group or by everyone is refused unless --insecure-config", async () => {
  const f = file(config(1));
  chmodSync(f.path, 0o664);
  const group = await loadConfigFile(f.path);
  assert.deepEqual(group.ok ? [] : group.errors, [
    `${f.path}: refusing a config file writable by its group (mode 664); chmod go-w it (or start with --insecure-config)`,
  ]);
  chmodSync(f.path, 0o646);
  const everyone = await loadConfigFile(f.path);
  assert.match(everyone.ok ? "" : (everyone.errors[0] ?? ""), /writable by everyone \(mode 646\)/);
  assert.ok((await loadConfigFile(f.path, { insecure: true })).ok);
  chmodSync(f.path, 0o644);
  assert.ok((await loadConfigFile(f.path)).ok);
});

test("a config owned by another non-root user is refused", {
  skip: process.getuid?.() !== 0 && "needs root to chown",
}, async () => {
  const f = file(config(1));
  chownSync(f.path, 4242, 4242);
  const result = await loadConfigFile(f.path);
  assert.deepEqual(result.ok ? [] : result.errors, [
    `${f.path}: refusing a config file owned by another user (uid 4242); it must be owned by root or by uid 0 (or start with --insecure-config)`,
  ]);
  assert.ok((await loadConfigFile(f.path, { insecure: true })).ok);
});

test("through the CLI: exit 1 at start-up, accepted with --insecure-config, and a reload keeps the old config", async () => {
  const port = await freePort();
  const f = file(config(port));
  chmodSync(f.path, 0o666);
  const refused = await runTcpgate(["--config", f.path, "--check"]);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /refusing a config file writable by everyone/);
  assert.equal((await runTcpgate(["--config", f.path, "--check", "--insecure-config"])).code, 0);

  chmodSync(f.path, 0o644);
  const proxy = startTcpgate(["--config", f.path, "--no-watch"]);
  try {
    await proxy.waitForLog((l) => l.msg === "tcpgate started");
    const other = await freePort();
    writeFileSync(f.path, config(other));
    chmodSync(f.path, 0o666);
    process.kill(proxy.pid, "SIGHUP");
    const rejected = await proxy.waitForLog((l) => String(l.msg).startsWith("reload rejected"));
    assert.match(String(rejected.msg), /writable by everyone/);
    (await dial(port)).destroy();
  } finally {
    assert.equal(await proxy.stop(), 0);
  }
});

test("the descriptor budget: a warning names what to raise when maxConnections cannot fit", () => {
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: "info" }, { write: (line: string) => lines.push(JSON.parse(line)) });
  const parsed = parseConfig(`${config(1)}    maxConnections: 600\n`, "proxy.yaml");
  assert.ok(parsed.ok);
  checkDescriptorBudget(parsed.config, log, 1024);
  assert.equal(lines.length, 1);
  assert.match(String(lines[0]?.msg), /raise the limit \(ulimit -n, or LimitNOFILE= in systemd\) to at least 1264/);
  lines.length = 0;
  checkDescriptorBudget(parsed.config, log, 4096);
  assert.equal(lines.length, 0);
});

test("the descriptor limit is read from /proc/self/limits", () => {
  const dir = file("").dir;
  const limits = join(dir, "limits");
  writeFileSync(
    limits,
    "Limit                     Soft Limit           Hard Limit           Units     \nMax open files            1024                 4096                 files     \n",
  );
  assert.equal(openFilesLimit(limits), 1024);
  assert.equal(openFilesLimit(join(dir, "missing")), undefined);
  const real = openFilesLimit();
  assert.ok(real === undefined || real > 0);
});
