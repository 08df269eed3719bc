// Every shipped config points editors at the schema, loads through the real loader and is
// named in the README; the operators' examples do what their comments say.
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { test } from "node:test";
import { JSON_SCHEMA_PATH } from "../../src/config/json-schema.ts";
import { loadConfigFile } from "../../src/config/load.ts";
import { parseClientAddress } from "../../src/policy/address-match.ts";
import { compilePolicy } from "../../src/policy/admission.ts";
import { ROOT } from "../support/cli.ts";

const shipped = readdirSync(join(ROOT, "examples"));
const examples = shipped.filter((name) => /\.ya?ml$/.test(name)).map((name) => join(ROOT, "examples", name));

test("there are examples to check, the quick start's among them", () => {
  assert.ok(examples.includes(join(ROOT, "examples", "proxy.example.yaml")), `found ${shipped.join(", ")}`);
});

test("README.md names every file in examples/", () => {
  const readme = readFileSync(join(ROOT, "README.md"), "utf8");
  assert.deepEqual(
    shipped.filter((name) => !readme.includes(`examples/${name}`)),
    [],
  );
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

// What the operators' examples say they do, asked of the admission policy they load into.
async function policyOf(example: string, listener: string) {
  const result = await loadConfigFile(join(ROOT, "examples", example));
  assert.ok(result.ok, result.ok ? "" : result.errors.join("\n"));
  const config = result.config.listeners.find((l) => l.name === listener);
  assert.ok(config, `${example} has no listener ${listener}`);
  const policy = compilePolicy(config);
  return (client: string, at = "2026-06-27T01:00:00Z", open = { total: 0, fromClient: 0 }) => {
    const address = parseClientAddress(client);
    assert.ok(address, client);
    const decision = policy.decide(address, Date.parse(at), open);
    return decision.admit ? "admit" : `${decision.reason}: ${decision.detail}`;
  };
}

test("ssh-bastion.yaml: the office and the VPN get in, quarantined hosts do not, even from the office", async () => {
  const decide = await policyOf("ssh-bastion.yaml", "ssh-bastion");
  assert.equal(decide("10.20.1.7"), "admit");
  assert.equal(decide("10.8.0.5"), "admit");
  assert.equal(decide("10.20.99.7"), "deny: quarantine (10.20.99.0/24)");
  assert.equal(decide("::ffff:10.20.4.17"), "deny: quarantine (10.20.4.17/32)"); // dual-stack listener
  assert.equal(decide("203.0.113.5"), "allow: no allow entry matches");
  assert.equal(
    decide("10.20.1.7", undefined, { total: 10, fromClient: 10 }),
    "limit: maxConnectionsPerClient 10 reached",
  );
});

test("maintenance-window.yaml: Saturday 02:00-06:00 Berlin time, daylight saving included, DBA hosts only", async () => {
  const decide = await policyOf("maintenance-window.yaml", "orders-db-maintenance");
  assert.equal(decide("10.30.5.20", "2026-01-31T01:30:00Z"), "admit"); // Sat 02:30 CET
  assert.equal(decide("10.30.5.20", "2026-06-27T00:30:00Z"), "admit"); // Sat 02:30 CEST
  assert.equal(decide("10.30.5.20", "2026-06-27T04:30:00Z"), "schedule: outside every window"); // Sat 06:30 CEST
  assert.equal(decide("10.30.5.20", "2026-06-26T01:00:00Z"), "schedule: outside every window"); // Fri 03:00 CEST
  assert.equal(decide("10.30.6.12", "2026-06-27T01:00:00Z"), "admit");
  assert.equal(decide("10.30.7.1", "2026-06-27T01:00:00Z"), "allow: no allow entry matches");
});

test("per-client-limits.yaml: each client gets its share, each listener its total", async () => {
  const postgres = await policyOf("per-client-limits.yaml", "postgres");
  assert.equal(postgres("10.1.0.1", undefined, { total: 100, fromClient: 19 }), "admit");
  assert.equal(
    postgres("10.1.0.1", undefined, { total: 100, fromClient: 20 }),
    "limit: maxConnectionsPerClient 20 reached", // from defaults
  );
  assert.equal(postgres("10.1.0.2", undefined, { total: 250, fromClient: 0 }), "limit: maxConnections 250 reached");
  const smtp = await policyOf("per-client-limits.yaml", "smtp-relay");
  assert.equal(smtp("10.1.0.1", undefined, { total: 10, fromClient: 4 }), "admit");
  assert.equal(smtp("10.1.0.1", undefined, { total: 10, fromClient: 5 }), "limit: maxConnectionsPerClient 5 reached");
});
