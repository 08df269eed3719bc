// The plan's "old → new" lines for top-level settings, from configs that went through the
// real loader: each change an operator makes must be visible in the line it gets.
import assert from "node:assert/strict";
import { test } from "node:test";
import { parseConfig } from "../../src/config/load.ts";
import type { RuntimeConfig } from "../../src/config/runtime.ts";
import { planReload } from "../../src/plan/plan.ts";
import { renderPlan } from "../../src/plan/render.ts";
import { summarisePlan } from "../../src/plan/summary.ts";

function load(admin: string): RuntimeConfig {
  const text = `version: 1\nadmin:\n${admin}listeners:\n  - { name: a, listen: "127.0.0.1:1", targets: ["127.0.0.1:2"] }\n`;
  const result = parseConfig(text, "test.yaml");
  if (!result.ok) throw new Error(result.errors.join("\n"));
  return result.config;
}

const settingLines = (before: string, after: string) =>
  renderPlan(planReload(load(before), load(after), [], 0).plan)
    .split("\n")
    .filter((line) => line.startsWith("~ admin"));

test("the admin endpoint's line shows a Unix socket's mode, so a change of mode alone is visible", () => {
  const socket = '  listen: "unix:/run/tcpgate/admin.sock"\n';
  assert.deepEqual(settingLines(socket, `${socket}  mode: "0660"\n`), [
    "~ admin: unix:/run/tcpgate/admin.sock (mode 0600) → unix:/run/tcpgate/admin.sock (mode 0660)",
  ]);
  assert.deepEqual(settingLines(socket, socket), []);
});

test("the admin endpoint's line shows its address and allow list", () => {
  assert.deepEqual(
    settingLines('  listen: "127.0.0.1:9901"\n', '  listen: "127.0.0.1:9902"\n  allow: ["10.0.0.0/8"]\n'),
    ["~ admin: 127.0.0.1:9901 → 127.0.0.1:9902 (allow 10.0.0.0/8)"],
  );
});

test("the one-line summary keeps listeners and top-level settings apart", () => {
  const tcp = '  listen: "127.0.0.1:9901"\n';
  const moved = '  listen: "127.0.0.1:9902"\n';
  assert.equal(summarisePlan(planReload(load(tcp), load(moved), [], 0).plan), "admin changed");
  assert.equal(summarisePlan(planReload(load(tcp), load(tcp), [], 0).plan), "no listener changed");
  const more = parseConfig(
    `version: 1\nlog: { level: warn }\nadmin:\n${moved}listeners:\n  - { name: a, listen: "127.0.0.1:3", targets: ["127.0.0.1:2"] }\n`,
    "test.yaml",
  );
  if (!more.ok) throw new Error(more.errors.join("\n"));
  assert.equal(
    summarisePlan(planReload(load(tcp), more.config, [], 0).plan),
    "listeners: 1 moved; logLevel, admin changed",
  );
});

test("a changed default rule list is a change of every listener that inherits it, and refuses their bridges only", () => {
  const config = (deny: string) => {
    const text = `version: 1\ndefaults:\n  deny: [${deny}]\n  proxyProtocol: v2\nlisteners:\n  - { name: a, listen: "127.0.0.1:1", targets: ["127.0.0.1:2"] }\n  - { name: b, listen: "127.0.0.1:3", targets: ["127.0.0.1:2"], deny: [], proxyProtocol: false }\n`;
    const result = parseConfig(text, "test.yaml");
    if (!result.ok) throw new Error(result.errors.join("\n"));
    return result.config;
  };
  const open = (id: number, listener: string) => ({
    id,
    listener,
    client: "10.0.0.7",
    clientPort: 40_000 + id,
    target: "127.0.0.1:2",
    startedAt: 0,
    bytesUp: 0,
    bytesDown: 0,
    draining: false,
  });
  const { plan } = planReload(config("192.0.2.0/24"), config("10.0.0.0/8"), [open(1, "a"), open(2, "b")], 1_000);
  assert.deepEqual(plan.listeners.changed, [
    {
      name: "a",
      listen: "127.0.0.1:1",
      changes: [
        { setting: "deny", from: "192.0.2.0/24", to: "10.0.0.0/8", added: ["10.0.0.0/8"], removed: ["192.0.2.0/24"] },
      ],
    },
  ]);
  assert.deepEqual(plan.listeners.unchanged, ["b"]);
  assert.deepEqual(
    plan.refused.map((b) => [b.id, b.reason, b.rule]),
    [[1, "deny", "10.0.0.0/8"]],
  );
});
