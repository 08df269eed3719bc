// The npm package as a user gets it: `npm pack` in a fresh clone, the tarball installed
// into a temporary prefix with no registry, and the installed `tcpgate` run for real.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, statSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { promisify } from "node:util";
import { ROOT, startTcpgate } from "../support/cli.ts";
import { type Clone, cloneRepository, npmEnv } from "../support/clone.ts";
import { dial, freePort, readAll, startEcho } from "../support/net.ts";

const run = promisify(execFile);

/** Runs a command to completion in cwd, bounded (SIGKILL by PID after timeoutMs). */
function exec(command: string, args: string[], cwd: string, timeoutMs = 60_000) {
  return run(command, args, { cwd, env: npmEnv(), timeout: timeoutMs, killSignal: "SIGKILL", maxBuffer: 64 << 20 });
}

interface Packed {
  filename: string;
  files: { path: string }[];
  bundled: string[];
}

let clone: Clone;
let packed: Packed;
let tarball: string;
let prefix: string;
let installed: string;
let pkg: { version: string; dependencies: Record<string, string> };

before(
  async () => {
    clone = cloneRepository();
    pkg = JSON.parse(readFileSync(join(clone.path, "package.json"), "utf8"));
    // The build and the bundled dependencies come from node_modules: borrow ours, which
    // `npm ci` made from the same package-lock.json (pack only reads it).
    symlinkSync(join(ROOT, "node_modules"), join(clone.path, "node_modules"));
    const { stdout } = await exec("npm", ["pack", "--json", "--pack-destination", clone.dir], clone.path);
    packed = (JSON.parse(stdout) as Packed[])[0] as Packed;
    tarball = join(clone.dir, packed.filename);
    prefix = join(clone.dir, "prefix");
    // --offline: the bundled dependencies are all it needs; no registry is asked.
    await exec("npm", ["install", "--global", "--prefix", prefix, tarball], clone.dir);
    installed = join(prefix, "lib", "node_modules", "tcpgate");
  },
  { timeout: 110_000 },
);

after(() => clone?.remove());

test("the tarball holds the program, its dependencies, schemas, examples, README and LICENSE; no sources or tests", () => {
  const own = packed.files.map((f) => f.path).filter((path) => !path.startsWith("node_modules/"));
  // Every file, in subfolders too (examples/filters/).
  const examples = (readdirSync(join(clone.path, "examples"), { recursive: true }) as string[])
    .filter((name) => statSync(join(clone.path, "examples", name)).isFile())
    .map((name) => `examples/${name}`);
  const required = ["package.json", "README.md", "LICENSE", "dist/cli.js", "schemas/tcpgate.schema.json"];
  for (const path of [...required, ...examples]) assert.ok(own.includes(path), `${path} is not in the tarball`);
  assert.ok(examples.includes("examples/proxy.example.yaml") && examples.includes("examples/tcpgate.service"));
  // Source maps point at src/*.ts, which is not shipped: useless, so left out.
  assert.deepEqual(
    own.filter((path) => /\.(ts|map)$/.test(path) || /^(src|test|bench|scripts)\//.test(path)),
    [],
  );
  assert.deepEqual(
    Object.keys(pkg.dependencies).filter((name) => !packed.bundled.includes(name)),
    [],
  );
});

test("the installed tcpgate prints its version", async () => {
  const { stdout } = await exec(join(prefix, "bin", "tcpgate"), ["--version"], clone.dir, 10_000);
  assert.equal(stdout, `tcpgate ${pkg.version}\n`);
});

test("the installed tcpgate --check accepts the shipped example", async () => {
  const file = join(installed, "examples", "proxy.example.yaml");
  const { stdout } = await exec(join(prefix, "bin", "tcpgate"), ["--config", file, "--check"], clone.dir, 10_000);
  assert.ok(stdout.startsWith("proxy.example.yaml: OK, 1 listener"), stdout);
});

test("the installed tcpgate forwards in quick mode and stops on SIGTERM with exit 0", async () => {
  const echo = await startEcho();
  const port = await freePort();
  const tcpgate = startTcpgate(["127.0.0.1", String(port), "127.0.0.1", String(echo.port)], {
    executable: join(prefix, "bin", "tcpgate"),
    cwd: clone.dir,
  });
  try {
    await tcpgate.waitForLog((line) => line.msg === "tcpgate started", 10_000);
    const client = await dial(port);
    const answer = readAll(client);
    client.end("through the installed package\n");
    assert.equal((await answer).toString(), "through the installed package\n");
    assert.equal(await tcpgate.stop("SIGTERM"), 0);
  } finally {
    await tcpgate.stop("SIGKILL");
    await echo.close();
  }
});

test("unpacked where the systemd unit expects it, the tarball runs without npm", async () => {
  const opt = join(clone.dir, "opt-tcpgate");
  mkdirSync(opt);
  // The command README.md "Install" and examples/tcpgate.service give.
  await exec("tar", ["-xzf", tarball, "-C", opt, "--strip-components=1"], clone.dir, 30_000);
  const { stdout } = await exec(process.execPath, [join(opt, "dist", "cli.js"), "--version"], clone.dir, 10_000);
  assert.equal(stdout, `tcpgate ${pkg.version}\n`);
});
