// A 30-second run of the soak (scripts/soak.ts) as part of npm test: mixed traffic through
// a real tcpgate, a reload every second, targets killed and restarted. It must end with
// exit 0: no byte lost or corrupted, no unexplained failure, tcpgate alive throughout.
// The traffic is scaled down (SOAK_LOAD) so that the other test files running beside it
// keep their share of this machine; `npm run soak` runs the full mix for five minutes.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { join } from "node:path";
import { test } from "node:test";
import { ROOT } from "../support/cli.ts";

const SECONDS = Number(process.env.SOAK_TEST_SECONDS ?? 30);

test(`soak: ${SECONDS} s of mixed traffic, reloads and target restarts, nothing lost`, {
  timeout: (SECONDS + 70) * 1000,
}, async (t) => {
  const child = spawn(process.execPath, ["--import", "tsx", join(ROOT, "scripts", "soak.ts"), String(SECONDS)], {
    cwd: ROOT,
    env: { ...process.env, SOAK_LOAD: process.env.SOAK_LOAD ?? "0.25" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const pid = child.pid;
  assert.ok(pid, "the soak started");
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (text: string) => {
    stdout += text;
  });
  child.stderr.setEncoding("utf8").on("data", (text: string) => {
    stderr += text;
  });
  // Bounded: a soak that overstays is stopped by its PID (SIGTERM: it stops its own
  // children and reports; SIGKILL if even that hangs).
  const term = setTimeout(() => process.kill(pid, "SIGTERM"), (SECONDS + 40) * 1000);
  const kill = setTimeout(() => process.kill(pid, "SIGKILL"), (SECONDS + 55) * 1000);
  const [code] = (await once(child, "exit")) as [number | null];
  clearTimeout(term);
  clearTimeout(kill);

  const report = stdout.split("\n").filter((line) => line.startsWith("  ") || line === "PASS" || line === "FAIL");
  for (const line of report) t.diagnostic(line);
  const summary = stdout
    .split("\n")
    .filter((line) => line.startsWith('{"soak"'))
    .map(
      (line) => JSON.parse(line) as { soak: { ok: boolean; bytesVerified: number; reloads: { applied: number } } },
    )[0];
  assert.equal(code, 0, `the soak failed:\n${stdout}\n${stderr}`);
  assert.ok(summary?.soak.ok);
  assert.ok((summary?.soak.bytesVerified ?? 0) > 0, "bytes went through and were checked");
  assert.ok((summary?.soak.reloads.applied ?? 0) >= SECONDS / 2, "a reload about every second");
});
