// Lint warnings in `tcpgate --check` through the real CLI: printed after the summary with
// the file's line, exit 0; with --strict, exit 1 when there is any warning.
import assert from "node:assert/strict";
import { test } from "node:test";
import { runTcpgate, tempConfig } from "../support/cli.ts";

const BOUNDED = { timeout: 30_000 };

const config = (allow: string) => `version: 1
listeners:
  - name: db
    listen: 127.0.0.1:15432
    targets: [127.0.0.1:5432]
    allow: ${allow}
`;

test("--check prints warnings and exits 0; --check --strict exits 1 on a warning, 0 without", BOUNDED, async () => {
  const warned = tempConfig(config("[10.0.0.0/8, 10.1.0.0/16]"));
  const clean = tempConfig(config("[10.0.0.0/8, 192.0.2.0/24]"));
  try {
    const check = await runTcpgate(["--config", warned.path, "--check"]);
    assert.equal(check.code, 0, check.stderr);
    const lines = check.stdout.trimEnd().split("\n");
    assert.match(lines[0] ?? "", /^proxy\.yaml: OK, 1 listener$/);
    assert.equal(
      lines.at(-1),
      `${warned.path}:6:25: warning: listeners[0].allow[1]: "10.1.0.0/16" changes no decision: it is inside "10.0.0.0/8" (allow[0])`,
    );
    assert.equal(lines.filter((l) => l.includes("warning:")).length, 1);

    const strict = await runTcpgate(["--config", warned.path, "--check", "--strict"]);
    assert.equal(strict.code, 1);
    assert.match(strict.stdout, /warning: listeners\[0\]\.allow\[1\]/);
    assert.equal(strict.stderr, "tcpgate: --strict: 1 warning\n");

    const cleanStrict = await runTcpgate(["--config", clean.path, "--check", "--strict"]);
    assert.equal(cleanStrict.code, 0, cleanStrict.stderr);
    assert.doesNotMatch(cleanStrict.stdout, /warning:/);

    const usage = await runTcpgate(["--config", clean.path, "--strict"]);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /--strict goes with --check/);
  } finally {
    warned.remove();
    clean.remove();
  }
});
