// The README's first contact, as written: the quick-start block, taken verbatim from
// README.md, runs with bash in a fresh clone and prints what the README says it prints;
// the two commands the README names are the ones CI runs.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { test } from "node:test";
import { ROOT } from "../support/cli.ts";
import { cloneRepository, npmEnv } from "../support/clone.ts";

const README = readFileSync(join(ROOT, "README.md"), "utf8").split("\n");

/** The first ```sh block in the section under heading, and the paragraph right after it. */
function section(heading: string): { block: string; after: string } {
  const start = README.indexOf(heading);
  assert.ok(start >= 0, `README.md has no "${heading}"`);
  const open = README.indexOf("```sh", start);
  const close = README.indexOf("```", open + 1);
  const next = README.findIndex((line, i) => i > start && line.startsWith("## "));
  assert.ok(open > start && close > open && (next < 0 || close < next), `no \`\`\`sh block under "${heading}"`);
  let i = close + 1;
  while (README[i] === "") i++;
  const paragraph: string[] = [];
  for (; i < README.length && README[i] !== ""; i++) paragraph.push(README[i] as string);
  return { block: `${README.slice(open + 1, close).join("\n")}\n`, after: paragraph.join("\n") };
}

// The block listens on fixed ports (9000, 8080). In a private network namespace it has its
// own 127.0.0.1, so it cannot collide with other tests or with services on this machine,
// and the pid namespace takes down anything it leaves running when its bash exits.
const ISOLATE = ["--user", "--map-root-user", "--net", "--pid", "--fork", "--kill-child"];
const isolated = spawnSync("unshare", [...ISOLATE, "ip", "link", "set", "lo", "up"]).status === 0;
const QUICK_START_PORTS = [9000, 8080];

function portFree(port: number): Promise<boolean> {
  const server = createServer();
  return new Promise((resolve) => {
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

const portsFree = isolated || (await Promise.all(QUICK_START_PORTS.map(portFree))).every(Boolean);

/** Runs script with `bash -e` in cwd; SIGKILL (its namespace or process group) after timeoutMs. */
async function runBash(
  cwd: string,
  script: string,
  timeoutMs: number,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const [command, ...args] = isolated
    ? ["unshare", ...ISOLATE, "sh", "-c", 'ip link set lo up && exec bash -e "$0"', script]
    : ["bash", "-e", script];
  const child = spawn(command as string, args, {
    cwd,
    env: npmEnv(),
    stdio: ["ignore", "pipe", "pipe"],
    detached: !isolated,
  });
  const pid = child.pid as number;
  // Killing unshare kills the namespace's first process (--kill-child) and with it the rest;
  // outside a namespace the block's background processes share bash's process group.
  const killAll = () => {
    try {
      process.kill(isolated ? pid : -pid, "SIGKILL");
    } catch {}
  };
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (text: string) => {
    stdout += text;
  });
  child.stderr.setEncoding("utf8").on("data", (text: string) => {
    stderr += text;
  });
  const timer = setTimeout(killAll, timeoutMs);
  const closed = once(child, "close");
  const [code] = (await once(child, "exit")) as [number | null];
  if (!isolated) killAll();
  await closed;
  clearTimeout(timer);
  return { code, stdout, stderr };
}

test("the quick start, run as written in a fresh clone, prints what the README says", {
  skip: !portsFree && `ports ${QUICK_START_PORTS.join(", ")} are in use and unshare is not available`,
}, async () => {
  const { block, after } = section("## Quick start");
  assert.doesNotMatch(block, /\bsleep\b/, "the quick start waits for events, not for time");
  const claims = [...after.matchAll(/`([^`]+)`/g)].map((match) => match[1] as string);
  // One marker per step, in the order the steps run.
  const steps = [
    "echo server listening",
    '"msg":"tcpgate started"',
    "hello through tcpgate",
    "tcpgate exited with status 0",
  ];
  for (const step of steps) assert.ok(claims.includes(step), `the README no longer says it prints ${step}`);

  const clone = cloneRepository();
  try {
    const script = join(clone.dir, "quick-start.sh");
    writeFileSync(script, block);
    const { code, stdout, stderr } = await runBash(clone.path, script, 100_000);
    const transcript = `stdout:\n${stdout}\nstderr:\n${stderr}`;
    assert.equal(code, 0, transcript);
    for (const claim of claims) assert.ok(stdout.includes(claim), `${claim} was not printed\n${transcript}`);
    const lines = stdout.split("\n");
    const at = steps.map((step) => lines.findIndex((line) => line.includes(step)));
    assert.deepEqual(
      at,
      [...at].sort((a, b) => a - b),
      `steps out of order\n${transcript}`,
    );
  } finally {
    clone.remove();
  }
});

test("the README's two commands are the install and the test CI runs", () => {
  const commands = section("## The two commands")
    .block.split("\n")
    .flatMap((line) => line.replace(/#.*/, "").split("&&"))
    .map((command) => command.trim())
    .filter(Boolean);
  const ci = readFileSync(join(ROOT, ".ci", "run"), "utf8")
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line.startsWith("npm "));
  // CI's install and test lines, without the flags it adds for a quiet log (--no-audit…).
  const ciInstallAndTest = ci
    .filter((line) => /^npm (ci|test|run test)\b/.test(line))
    .map((line) => line.split(" --")[0] as string);
  assert.deepEqual(commands.toSorted(), [...new Set(ciInstallAndTest)].sort());
  assert.equal(commands.length, 2, `the README names ${commands.join(", ")}`);
});
