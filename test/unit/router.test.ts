// A listener's router: the pool for a server name, the listener's own targets as the
// default, and reloads that keep a route's pool while its names stay and retire it when
// they go. No socket: nothing here dials.
import assert from "node:assert/strict";
import { test } from "node:test";
import { pino } from "pino";
import { parseConfig } from "../../src/config/load.ts";
import type { ListenerConfig } from "../../src/config/runtime.ts";
import { Router } from "../../src/proxy/router.ts";

const log = pino({ level: "silent" });

function listener(body: string): ListenerConfig {
  const result = parseConfig(`version: 1\nlisteners:\n  - name: tls\n    listen: 127.0.0.1:8443\n${body}`, "t.yaml");
  if (!result.ok) throw new Error(result.errors.join("\n"));
  return result.config.listeners[0] as ListenerConfig;
}

const routes = (dbTarget: string, more = "") =>
  listener(
    `    routes:\n      - sni: [db.example.com]\n        targets: [${dbTarget}]\n      - sni: ["*.apps.example.com"]\n        targets: [127.0.0.1:2]\n        proxyProtocol: v2\n${more}`,
  );

test("a server name picks its route's pool and PROXY setting; no match or no name: the default, if any", () => {
  const router = new Router(routes("127.0.0.1:1", "    targets: [127.0.0.1:9]\n"), log);
  assert.equal(router.routing, true);
  assert.equal(router.route("DB.example.com")?.pool.targets[0]?.config.key, "127.0.0.1:1");
  assert.equal(router.route("db.example.com")?.route, "db.example.com");
  assert.equal(router.route("x.apps.example.com")?.proxyProtocol, "v2");
  assert.equal(router.route("other.example.com")?.pool.targets[0]?.config.key, "127.0.0.1:9");
  assert.equal(router.route(undefined)?.route, undefined);
  const noDefault = new Router(routes("127.0.0.1:1"), log);
  assert.equal(noDefault.route("other.example.com"), undefined);
  assert.equal(noDefault.route(undefined), undefined);
  router.stop();
  noDefault.stop();
});

test("without routes: no routing, the listener's targets are the way", () => {
  const router = new Router(listener("    targets: [127.0.0.1:9]\n"), log);
  assert.equal(router.routing, false);
  assert.equal(router.default?.pool.targets[0]?.config.key, "127.0.0.1:9");
  router.stop();
});

test("a reload keeps a route's pool and its targets' state while its names stay; a removed route dials nothing", () => {
  const router = new Router(routes("127.0.0.1:1"), log);
  const db = router.route("db.example.com");
  const kept = db?.pool.targets[0];
  assert.ok(kept);
  kept.open = 3;
  router.update(routes("127.0.0.1:1"));
  assert.equal(router.route("db.example.com")?.pool, db?.pool, "the same pool");
  assert.equal(router.route("db.example.com")?.pool.targets[0], kept, "the same target state");
  // Changed targets: the same pool, updated in place, so a bridge failing over sees them.
  router.update(routes("127.0.0.1:3"));
  assert.deepEqual(
    db?.pool.targets.map((t) => t.config.key),
    ["127.0.0.1:3"],
  );
  // The route goes: its pool is emptied, so a dial still in progress finds nothing more to try.
  router.update(listener("    targets: [127.0.0.1:9]\n"));
  assert.equal(db?.pool.targets.length, 0);
  assert.equal(router.routing, false);
  assert.deepEqual(
    router.pools().map((p) => [p.route, p.targets.length]),
    [[undefined, 1]],
  );
  router.stop();
});
