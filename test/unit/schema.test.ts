// schemas/tcpgate.schema.json is generated from the zod schema; it must never go stale.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { configJsonSchema, configJsonSchemaText, JSON_SCHEMA_PATH } from "../../src/config/json-schema.ts";
import { ROOT } from "../support/cli.ts";

const committed = () => readFileSync(join(ROOT, JSON_SCHEMA_PATH), "utf8");

test("the committed JSON Schema matches the zod schema (run `npm run schema` when this fails)", () => {
  assert.equal(committed(), configJsonSchemaText());
});

test("the JSON Schema is pretty-printed with a trailing newline", () => {
  const text = committed();
  assert.ok(text.endsWith("}\n"));
  assert.ok(text.includes('\n  "title": "tcpgate config",\n'));
});

test("input mode: only keys without defaults are required", () => {
  const schema = configJsonSchema() as {
    required: string[];
    additionalProperties: boolean;
    properties: {
      listeners: { items: { required: string[]; additionalProperties: boolean; anyOf: { required: string[] }[] } };
    };
  };
  assert.deepEqual(schema.required.sort(), ["listeners", "version"]);
  assert.deepEqual(schema.properties.listeners.items.required.sort(), ["listen", "name"]);
  // A listener needs targets, routes or both.
  assert.deepEqual(schema.properties.listeners.items.anyOf, [{ required: ["targets"] }, { required: ["routes"] }]);
  // Unknown keys are errors in the editor as they are at load.
  assert.equal(schema.additionalProperties, false);
  assert.equal(schema.properties.listeners.items.additionalProperties, false);
});
