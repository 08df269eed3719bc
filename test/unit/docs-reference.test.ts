// docs/configuration.md is the operator's complete reference: every key the config accepts,
// every metric /metrics exposes, every field /status answers and every refusal reason must
// be in it, each written as `code`. Adding one without documenting it fails here.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { createMetrics } from "../../src/admin/metrics.ts";
import { buildStatus } from "../../src/admin/status.ts";
import type { GatewayView } from "../../src/admin/view.ts";
import { configJsonSchema } from "../../src/config/json-schema.ts";
import { parseConfig } from "../../src/config/load.ts";
import { REFUSAL_REASONS } from "../../src/policy/admission.ts";
import { CLOSE_REASONS } from "../../src/proxy/close-reasons.ts";
import { addCounters } from "../../src/proxy/listener.ts";
import { ROOT } from "../support/cli.ts";

const DOCS = readFileSync(join(ROOT, "docs", "configuration.md"), "utf8");

function undocumented(names: Iterable<string>): string[] {
  return [...new Set(names)].filter((name) => !DOCS.includes(`\`${name}\``));
}

type Schema = { properties?: Record<string, Schema>; items?: Schema; anyOf?: Schema[]; oneOf?: Schema[] };

/** Every key path a config may hold: "listeners[].healthCheck.interval". */
function keyPaths(schema: Schema, at = ""): string[] {
  const paths: string[] = [];
  for (const [key, child] of Object.entries(schema.properties ?? {})) {
    const path = at === "" ? key : `${at}.${key}`;
    paths.push(path, ...keyPaths(child, path));
  }
  if (schema.items) paths.push(...keyPaths(schema.items, `${at}[]`));
  for (const branch of [...(schema.anyOf ?? []), ...(schema.oneOf ?? [])]) paths.push(...keyPaths(branch, at));
  return paths;
}

/** Every field path of a JSON value: "listeners[].targets[].lastError". */
function fieldPaths(value: unknown, at: string, opaque: ReadonlySet<string>): string[] {
  if (Array.isArray(value)) return value.flatMap((item) => fieldPaths(item, `${at}[]`, opaque));
  if (value === null || typeof value !== "object" || opaque.has(at)) return [];
  return Object.entries(value).flatMap(([key, child]) => {
    const path = at === "" ? key : `${at}.${key}`;
    return [path, ...fieldPaths(child, path, opaque)];
  });
}

/** A gateway view with one listener that uses every feature /status and /metrics report on. */
function fullView(): GatewayView {
  const loaded = parseConfig(
    `version: 1
acls: { office: [10.0.0.0/8] }
listeners:
  - name: web
    listen: 127.0.0.1:8080
    targets: [127.0.0.1:9000]
    allow: [office]
    deny: [10.9.0.0/16]
    schedule: { timezone: UTC, windows: [{ days: [mon-fri], from: "07:00", to: "19:00" }] }
    maxConnections: 10
    maxConnectionsPerClient: 2
    maxDuration: 1h
`,
    "docs.yaml",
  );
  assert.ok(loaded.ok, loaded.ok ? "" : loaded.errors.join("\n"));
  const [config] = loaded.config.listeners;
  assert.ok(config);
  const listener = {
    name: config.name,
    listen: config.listenKey,
    state: "serving" as const,
    open: 1,
    counters: addCounters(),
    bytes: () => ({ up: 1, down: 2 }),
    ruleHits: () => ({
      allow: [{ rule: "10.0.0.0/8", hits: 1, lastHitAt: Date.now() }],
      deny: [{ rule: "10.9.0.0/16", hits: 0, lastHitAt: undefined }],
    }),
    config,
    targets: [
      { key: "127.0.0.1:9000", route: undefined, up: true, open: 1, connectFailures: 1, lastError: "ECONNREFUSED" },
    ],
  };
  return {
    listeners: () => [listener],
    workers: () => [
      { index: 0, threadId: 1, state: "serving", startedAt: Date.now(), open: 1, accepted: 1, replaced: 0 },
    ],
    reloads: () => ({ applied: 1, rejected: 1, unchanged: 1 }),
    configAppliedAt: () => Date.now(),
  };
}

test("every key the config accepts is in docs/configuration.md", () => {
  const keys = keyPaths(configJsonSchema() as Schema);
  assert.ok(keys.includes("listeners[].healthCheck.interval"), "the walk reaches nested keys");
  assert.deepEqual(undocumented(keys), []);
});

test("every metric /metrics exposes is in docs/configuration.md", async () => {
  const metrics = createMetrics(fullView());
  metrics.bridgeEnded({
    listener: "web",
    client: "127.0.0.1",
    clientPort: 1,
    target: "127.0.0.1:9000",
    bytesUp: 1,
    bytesDown: 2,
    durationMs: 3,
    reason: "client-closed",
    errors: [],
  });
  const text = await metrics.text();
  const families = [...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1] ?? "");
  assert.ok(families.includes("tcpgate_connections_refused_total"));
  assert.deepEqual(undocumented(families), []);
});

test("every field GET /status answers is in docs/configuration.md", () => {
  const status = buildStatus(fullView(), {
    version: "0.0.0",
    startedAt: Date.now(),
    configPath: "proxy.yaml",
    sha256: () => "0".repeat(64),
    reloads: () => [
      {
        at: new Date().toISOString(),
        trigger: "signal",
        outcome: "applied",
        sha256: "0".repeat(64),
        summary: "listeners: 1 changed",
        changes: ["listener web: maxConnections changed"],
        errors: [],
      },
    ],
    shuttingDown: () => false,
  });
  // activeResources: whatever resource types Node.js reports at the time; closedBy: one
  // count per end reason, each of which the test below finds documented.
  const fields = fieldPaths(status, "", new Set(["process.activeResources", "listeners[].closedBy"]));
  assert.ok(fields.includes("listeners[].targets[].lastError"), "the walk reaches nested fields");
  assert.deepEqual(undocumented(fields), []);
});

test("every refusal reason is in docs/configuration.md", () => {
  assert.deepEqual(undocumented(REFUSAL_REASONS), []);
});

test("every way a bridge ends is in docs/configuration.md", () => {
  assert.deepEqual(undocumented(CLOSE_REASONS), []);
});
