// Every shipped config points editors at the schema and loads through the real loader.
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { test } from "node:test";
import { JSON_SCHEMA_PATH } from "../../src/config/json-schema.ts";
import { loadConfigFile } from "../../src/config/load.ts";
import { ROOT } from "../support/cli.ts";

const examples = [
  join(ROOT, "proxy.example.yaml"),
  ...readdirSync(join(ROOT, "examples"))
    .filter((name) => /\.ya?ml$/.test(name))
    .map((name) => join(ROOT, "examples", name)),
];

test("there are examples to check", () => {
  assert.ok(examples.length >= 2, `found ${examples.length}`);
});

for (const file of examples) {
  const name = relative(ROOT, file);

  test(`${name}: the first line points at the JSON Schema`, () => {
    const first = readFileSync(file, "utf8").split("\n")[0] ?? "";
    const match = /^# yaml-language-server: \$schema=(\S+)$/.exec(first);
    assert.ok(match?.[1], `first line is ${JSON.stringify(first)}`);
    const target = resolve(dirname(file), match[1]);
    assert.equal(target, join(ROOT, JSON_SCHEMA_PATH));
    assert.ok(existsSync(target));
  });

  test(`${name}: loads without errors`, async () => {
    const result = await loadConfigFile(file);
    assert.deepEqual(result.ok ? [] : result.errors, []);
    assert.ok(result.ok && result.config.listeners.length > 0);
  });
}
