import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import {
  chmodSync,
  chownSync,
  mkdirSync,
  realpathSync,
  renameSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import { loadConfigFile } from "../../src/config/load.ts";
import { runTcpgate, startTcpgate, tempConfig } from "../support/cli.ts";
import { dial, freePort, freePorts } from "../support/net.ts";

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

test("a config writable by everyone is refused unless --insecure-config", async () => {
  const f = file(config(1));
  chmodSync(f.path, 0o646);
  const everyone = await loadConfigFile(f.path);
  assert.deepEqual(everyone.ok ? [] : everyone.errors, [
    `${f.path}: refusing a config file writable by everyone (mode 646); chmod go-w it (or start with --insecure-config)`,
  ]);
  assert.ok((await loadConfigFile(f.path, { insecure: true })).ok);
  chmodSync(f.path, 0o644);
  assert.ok((await loadConfigFile(f.path)).ok);
});

test("a folder on the way to the config that others may write is refused, unless it is sticky like /tmp", async () => {
  const top = realpathSync(file("").dir);
  const conf = join(top, "conf");
  mkdirSync(conf, { mode: 0o755 });
  const path = join(conf, "proxy.yaml");
  writeFileSync(path, config(1), { mode: 0o644 });
  const refused = (folder: string, mode: string) =>
    `${path}: refusing a config file in ${folder}: whoever may write a folder can replace the files in it, and this folder is writable by everyone (mode ${mode}); chmod go-w ${folder} (or chmod +t it, as /tmp is) (or start with --insecure-config)`;
  const errors = async (p = path) => {
    const result = await loadConfigFile(p);
    return result.ok ? [] : result.errors;
  };
  assert.deepEqual(await errors(), []);
  chmodSync(conf, 0o777);
  assert.deepEqual(await errors(), [refused(conf, "777")]);
  assert.ok((await loadConfigFile(path, { insecure: true })).ok);
  chmodSync(conf, 0o1777);
  assert.deepEqual(await errors(), []);
  // Every folder above counts: renaming conf away and putting another in its place swaps the file.
  chmodSync(conf, 0o755);
  chmodSync(top, 0o777);
  assert.deepEqual(await errors(), [refused(top, "777")]);
  chmodSync(top, 0o700);
  // A symlink is replaced through its folder: a safe file behind a link in an open folder is refused,
  // and so is a link in a safe folder to a file in an open one.
  const open = join(top, "open");
  mkdirSync(open, { mode: 0o755 });
  chmodSync(open, 0o777);
  symlinkSync(path, join(open, "link.yaml"));
  assert.deepEqual(await errors(join(open, "link.yaml")), [
    refused(open, "777").replace(path, join(open, "link.yaml")),
  ]);
  renameSync(path, join(open, "proxy.yaml"));
  symlinkSync(join(open, "proxy.yaml"), path);
  assert.deepEqual(await errors(), [refused(open, "777")]);
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

const needsRoot = process.getuid?.() !== 0 && "needs root: makes groups with groupadd and chowns files to them";
const groups: string[] = [];
after(() => {
  for (const name of groups) execFileSync("groupdel", [name]);
});

/** A new group with these members (root only); deleted when the file's tests end. */
function makeGroup(suffix: string, members: string[]): { name: string; gid: number } {
  const name = `tcpgate-${process.pid}-${suffix}`;
  execFileSync("groupadd", members.length > 0 ? ["--users", members.join(","), name] : [name]);
  groups.push(name);
  return { name, gid: Number(execFileSync("getent", ["group", name], { encoding: "utf8" }).split(":")[2]) };
}

/** A folder and a config file in it made under umask mask, as a clone or an editor would make them. */
function madeUnder(mask: number): { folder: string; path: string } {
  const folder = join(realpathSync(file("").dir), "conf");
  const path = join(folder, "proxy.yaml");
  const previous = process.umask(mask);
  try {
    mkdirSync(folder);
    writeFileSync(path, config(1));
  } finally {
    process.umask(previous);
  }
  return { folder, path };
}

test("under umask 022 and umask 002 a config loads: group write is fine in the owner's private group", {
  skip: needsRoot,
}, async () => {
  // What Debian and Ubuntu give each user: a group of their own, with nobody else in it.
  const own = makeGroup("own", ["root"]);
  for (const [mask, folderMode, fileMode] of [
    [0o022, 0o755, 0o644],
    [0o002, 0o775, 0o664],
  ] as const) {
    const { folder, path } = madeUnder(mask);
    chownSync(folder, 0, own.gid);
    chownSync(path, 0, own.gid);
    assert.equal(statSync(folder).mode & 0o777, folderMode);
    assert.equal(statSync(path).mode & 0o777, fileMode);
    const loaded = await loadConfigFile(path);
    assert.deepEqual(loaded.ok ? [] : loaded.errors, [], `umask ${mask.toString(8)}`);
  }
});

test("group write is refused when anyone else is in the group, or no one is", { skip: needsRoot }, async () => {
  const shared = makeGroup("shared", ["root", "nobody"]);
  const empty = makeGroup("empty", []);
  const own = makeGroup("own2", ["root"]);
  const { folder, path } = madeUnder(0o002);
  const errors = async () => {
    const result = await loadConfigFile(path);
    return result.ok ? [] : result.errors;
  };
  chownSync(folder, 0, own.gid);
  chownSync(path, 0, shared.gid);
  assert.deepEqual(await errors(), [
    `${path}: refusing a config file writable by its group (mode 664): group "${shared.name}" has other members (nobody); chmod go-w it (or start with --insecure-config)`,
  ]);
  chownSync(path, 0, empty.gid);
  assert.deepEqual(await errors(), [
    `${path}: refusing a config file writable by its group (mode 664): group "${empty.name}" has no members; chmod go-w it (or start with --insecure-config)`,
  ]);
  chmodSync(path, 0o644);
  assert.deepEqual(await errors(), []);
  // The folder: the same rule, since its group could swap the file.
  chownSync(folder, 0, shared.gid);
  assert.deepEqual(await errors(), [
    `${path}: refusing a config file in ${folder}: whoever may write a folder can replace the files in it, and this folder is writable by its group (mode 775): group "${shared.name}" has other members (nobody); chmod go-w ${folder} (or chmod +t it, as /tmp is) (or start with --insecure-config)`,
  ]);
  chmodSync(folder, 0o1775);
  assert.deepEqual(await errors(), []);
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

/** Node takes seconds to start on a 2-core machine under load: bound the wait, generously. */
const STARTUP_MS = 15_000;

test("the descriptor budget through the CLI: quiet in quick mode, logged once across reloads that keep its figure", async () => {
  const lines = (run: { logs: { msg?: string }[] }) =>
    run.logs.filter((l) => String(l.msg).includes("no maxConnections")).map((l) => l.msg);
  const [quickPort = 0, target = 0] = await freePorts(2);
  const quick = startTcpgate(["127.0.0.1", String(quickPort), "127.0.0.1", String(target)], { nofile: 4096 });
  try {
    await quick.waitForLog((l) => l.msg === "tcpgate started", STARTUP_MS);
  } finally {
    assert.equal(await quick.stop(), 0);
  }
  assert.deepEqual(lines(quick), []);

  const port = await freePort();
  const f = file(config(port));
  const proxy = startTcpgate(["--config", f.path, "--no-watch"], { nofile: 4096 });
  try {
    await proxy.waitForLog((l) => l.msg === "tcpgate started", STARTUP_MS);
    assert.deepEqual(lines(proxy), [
      "1 listener has no maxConnections: at most about 2016 bridges fit in the descriptor limit",
    ]);
    // Another target: the figure stays, so nothing is repeated.
    f.write(config(port).replace("127.0.0.1:9]", "127.0.0.1:10]"));
    process.kill(proxy.pid, "SIGHUP");
    await proxy.waitForLog((l) => l.msg === "reload applied");
    // A second listener without a limit changes it.
    f.write(`${config(port)}  - name: api\n    listen: 127.0.0.1:${await freePort()}\n    targets: [127.0.0.1:9]\n`);
    process.kill(proxy.pid, "SIGHUP");
    await proxy.waitForLog(() => proxy.logs.filter((l) => l.msg === "reload applied").length === 2);
    assert.deepEqual(lines(proxy), [
      "1 listener has no maxConnections: at most about 2016 bridges fit in the descriptor limit",
      "2 listeners have no maxConnections: at most about 2016 bridges fit in the descriptor limit",
    ]);
  } finally {
    assert.equal(await proxy.stop(), 0);
  }
});
