// The descriptor budget: what it says, and that it says it once per change of its figure.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { pino } from "pino";
import { parseConfig } from "../../src/config/load.ts";
import type { RuntimeConfig } from "../../src/config/runtime.ts";
import { DescriptorBudget, openFilesLimit } from "../../src/fd-budget.ts";

/** A config with one listener per entry: its maxConnections, or none for undefined. */
function configWith(...limits: (number | undefined)[]): RuntimeConfig {
  const listeners = limits.map(
    (limit, i) =>
      `  - name: l${i}\n    listen: 127.0.0.1:${1000 + i}\n    targets: [127.0.0.1:9]\n${limit === undefined ? "" : `    maxConnections: ${limit}\n`}`,
  );
  const parsed = parseConfig(`version: 1\nlisteners:\n${listeners.join("")}`, "proxy.yaml");
  assert.ok(parsed.ok);
  return parsed.config;
}

/** A budget whose limit the test sets, and the lines it logged (level and message). */
function budget(options: { quickMode?: boolean } = {}) {
  const lines: string[] = [];
  const log = pino(
    { level: "debug" },
    { write: (line: string) => lines.push(`${JSON.parse(line).level} ${JSON.parse(line).msg}`) },
  );
  const state = { limit: 1024 as number | undefined };
  return { lines, state, check: new DescriptorBudget(log, { ...options, limit: () => state.limit }) };
}

test("a warning names what to raise when maxConnections cannot fit", () => {
  const { lines, check } = budget();
  check.check(configWith(600));
  assert.deepEqual(lines, [
    "40 maxConnections allow 1200 bridge descriptors but the process may open 1024: raise the limit (ulimit -n, or LimitNOFILE= in systemd) to at least 1264, or lower maxConnections",
  ]);
});

test("once per change of the figure: a reload that keeps it repeats nothing", () => {
  const { lines, state, check } = budget();
  check.check(configWith(600));
  check.check(configWith(600));
  assert.equal(lines.length, 1);
  // More bridges: a new figure, a new warning.
  check.check(configWith(600, 100));
  assert.equal(lines.length, 2);
  assert.match(lines[1] ?? "", /^40 .*at least 1464/);
  // It fits now: said once, then silence while it keeps fitting.
  check.check(configWith(100));
  check.check(configWith(200));
  assert.deepEqual(lines.slice(2), ["30 maxConnections fit in the descriptor limit now"]);
  // The limit itself changed (prlimit on the running process): the figure with it.
  state.limit = 256;
  check.check(configWith(200));
  assert.match(lines[3] ?? "", /^40 .*may open 256: .*at least 464/);
  // An unknown limit says nothing.
  state.limit = undefined;
  check.check(configWith(100_000));
  assert.equal(lines.length, 4);
});

test("listeners without maxConnections: one info line per change of their number, and debug only in quick mode", () => {
  const { lines, check } = budget();
  check.check(configWith(undefined));
  check.check(configWith(undefined));
  check.check(configWith(undefined, 10, undefined));
  assert.deepEqual(lines, [
    "30 1 listener has no maxConnections: at most about 480 bridges fit in the descriptor limit",
    "30 2 listeners have no maxConnections: at most about 480 bridges fit in the descriptor limit",
  ]);
  const quick = budget({ quickMode: true });
  quick.check.check(configWith(undefined));
  assert.deepEqual(quick.lines, [
    "20 1 listener has no maxConnections: at most about 480 bridges fit in the descriptor limit",
  ]);
});

test("the descriptor limit is read from /proc/self/limits", () => {
  const dir = mkdtempSync(join(tmpdir(), "tcpgate-limits-"));
  try {
    const limits = join(dir, "limits");
    writeFileSync(
      limits,
      "Limit                     Soft Limit           Hard Limit           Units     \nMax open files            1024                 4096                 files     \n",
    );
    assert.equal(openFilesLimit(limits), 1024);
    assert.equal(openFilesLimit(join(dir, "missing")), undefined);
    const real = openFilesLimit();
    assert.ok(real === undefined || real > 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
