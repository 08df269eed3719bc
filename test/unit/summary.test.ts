// What `tcpgate --check` prints of a valid config, word for word.
import assert from "node:assert/strict";
import { test } from "node:test";
import { parseConfig } from "../../src/config/load.ts";
import { summarise } from "../../src/config/summary.ts";

function summaryOf(yaml: string): string {
  const parsed = parseConfig(yaml, "proxy.yaml");
  assert.ok(parsed.ok, parsed.ok ? "" : parsed.errors.join("\n"));
  return summarise(parsed.config, "proxy.yaml");
}

test("counts of one are singular: 1 listener, 1 bridge", () => {
  const yaml = `version: 1
listeners:
  - name: ssh
    listen: 127.0.0.1:2222
    targets: [10.0.0.5:22]
    maxConnections: 1
    maxConnectionsPerClient: 1
`;
  assert.equal(
    summaryOf(yaml),
    [
      "proxy.yaml: OK, 1 listener",
      "  ssh: 127.0.0.1:2222 -> 10.0.0.5:22 [round-robin]",
      "    timeouts: connect 5s, idle 15m, half-close 1m, max duration none",
      "    limits: 1 bridge, 1 per client",
    ].join("\n"),
  );
});

test("counts of more than one are plural: 2 listeners, 2 bridges", () => {
  const yaml = `version: 1
defaults:
  maxConnections: 2
listeners:
  - name: a
    listen: 127.0.0.1:1
    targets: [10.0.0.5:22]
  - name: b
    listen: 127.0.0.1:2
    targets: [10.0.0.5:22]
    maxConnections: 1000
`;
  const lines = summaryOf(yaml).split("\n");
  assert.equal(lines[0], "proxy.yaml: OK, 2 listeners");
  assert.deepEqual(
    lines.filter((l) => l.includes("limits:")),
    ["    limits: 2 bridges", "    limits: 1000 bridges"],
  );
});
