// The admin endpoint (SPEC §5) end to end: the real CLI, real HTTP from Node's fetch (or
// node:http where the source address matters), real bridges on loopback. Metrics are
// checked the way Prometheus sees them: scrape, act, scrape again, compare exact deltas.
// Loopback source addresses (127.0.0.2, 127.0.0.3) play the clients, so "no client address
// in a label" is checked against addresses that really did connect.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import type { Socket } from "node:net";
import { after, before, describe, test } from "node:test";
import {
  fetchAdmin,
  parseMetrics,
  requestFrom,
  type Scrape,
  scrape,
  sendAndReceive,
  startDoubler,
  status,
} from "../support/admin.ts";
import { echoes } from "../support/admission.ts";
import { type Gate, type LogLine, ROOT, startGate, startTcpgate, tempConfig } from "../support/cli.ts";
import { eventually, freePort, freePorts, startEcho, type TestServer } from "../support/net.ts";
import { connectOutcome, listeningPorts } from "../support/reload.ts";

/** Every test is bounded in time: a hang fails it instead of stalling the suite. */
const BOUNDED = { timeout: 20_000 };

const VERSION = (JSON.parse(readFileSync(`${ROOT}/package.json`, "utf8")) as { version: string }).version;

const sha256 = (path: string) => createHash("sha256").update(readFileSync(path)).digest("hex");

/** The metric families issue 6 names, with their Prometheus type and label names. */
const FAMILIES: Record<string, { type: string; labels: string[] }> = {
  tcpgate_connections_accepted_total: { type: "counter", labels: ["listener"] },
  tcpgate_connections_refused_total: { type: "counter", labels: ["listener", "reason"] },
  tcpgate_bridges_open: { type: "gauge", labels: ["listener"] },
  tcpgate_bytes_total: { type: "counter", labels: ["listener", "direction"] },
  tcpgate_bridge_duration_seconds: { type: "histogram", labels: ["listener"] },
  tcpgate_target_up: { type: "gauge", labels: ["listener", "target"] },
  tcpgate_target_connect_failures_total: { type: "counter", labels: ["listener", "target"] },
  tcpgate_reloads_total: { type: "counter", labels: ["outcome"] },
  tcpgate_config_last_reload_success_timestamp_seconds: { type: "gauge", labels: [] },
};

/** Label names that would mean a per-client series (unbounded cardinality). */
const CLIENT_LABELS = ["client", "clientport", "client_port", "ip", "address", "remote", "peer", "source"];

/**
 * No series names a client: neither as a label name nor inside any label value. A rule hit
 * counter's `rule` is the entry as the config writes it, which may be a single address:
 * that value comes from the file, not from who connected.
 */
function assertNoClientLabels(metrics: Scrape, clients: readonly string[]): void {
  for (const s of metrics.samples) {
    for (const [key, value] of Object.entries(s.labels)) {
      assert.ok(!CLIENT_LABELS.includes(key.toLowerCase()), `${s.name} has a per-client label "${key}"`);
      if (s.name === "tcpgate_rule_hits_total" && key === "rule") continue;
      for (const client of clients) {
        assert.ok(!value.includes(client), `${s.name}{${key}="${value}"} names the client ${client}`);
      }
    }
  }
}

/** Closes a client's bridge from its side and resolves with the bridge's access-log line. */
async function closeBridge(gate: Gate, socket: Socket): Promise<LogLine> {
  socket.end();
  const line = await gate.bridgeEnd(socket);
  socket.destroy();
  return line;
}

describe("admin endpoint", () => {
  let doubler: TestServer;
  let gate: Gate;
  let adminPort: number;
  let webPort: number;
  let deadPort: number;
  let nowhere: number;

  before(async () => {
    doubler = await startDoubler();
    [adminPort = 0, webPort = 0, deadPort = 0, nowhere = 0] = await freePorts(4);
    gate = await startGate(
      [
        "version: 1",
        "shutdownTimeout: 1s",
        "admin:",
        `  listen: 127.0.0.1:${adminPort}`,
        "listeners:",
        "  - name: web",
        `    listen: 127.0.0.1:${webPort}`,
        `    targets: ["${doubler.address}"]`,
        "    deny: [127.0.0.3]",
        "    maxConnections: 50",
        "    maxConnectionsPerClient: 10",
        "  - name: dead",
        `    listen: 127.0.0.1:${deadPort}`,
        `    targets: ["127.0.0.1:${nowhere}"]`,
        "    healthCheck: { interval: 100ms, timeout: 200ms, fall: 1, rise: 1 }",
        "",
      ].join("\n"),
    );
  });
  after(async () => {
    await gate?.close();
    await doubler?.close();
  });

  test("GET /healthz answers 200 ok; unknown paths 404; a wrong method 405 with Allow", BOUNDED, async () => {
    const health = await fetchAdmin(adminPort, "/healthz");
    assert.equal(health.status, 200);
    assert.equal(health.body.trim(), "ok");
    assert.match(String(health.headers["content-type"]), /^text\/plain/);
    assert.equal((await fetchAdmin(adminPort, "/healthz?probe=1")).status, 200, "a query string is ignored");

    for (const path of ["/index.html", "/nope", "/metrics/extra", "/HEALTHZ", "/status.json"]) {
      assert.equal((await fetchAdmin(adminPort, path)).status, 404, path);
    }
    const getReload = await fetchAdmin(adminPort, "/reload");
    assert.equal(getReload.status, 405);
    assert.equal(getReload.headers.allow, "POST");
    for (const path of ["/healthz", "/status", "/metrics"]) {
      const reply = await fetchAdmin(adminPort, path, { method: "POST" });
      assert.equal(reply.status, 405, `POST ${path}`);
      assert.equal(reply.headers.allow, "GET, HEAD");
    }
    assert.equal((await fetchAdmin(adminPort, "/status", { method: "DELETE" })).status, 405);
    // HEAD is GET without a body (RFC 9110): a probe using it gets the same status.
    for (const path of ["/healthz", "/status", "/metrics"]) {
      const head = await fetchAdmin(adminPort, path, { method: "HEAD" });
      assert.equal(head.status, 200, `HEAD ${path}`);
      assert.equal(head.body, "");
    }
    assert.equal((await fetchAdmin(adminPort, "/reload", { method: "HEAD" })).status, 405, "HEAD is no reload");
  });

  test("GET /status: version, pid, uptime, config path and sha256, listeners, targets, totals", BOUNDED, async () => {
    const doc = await status(adminPort);
    assert.equal(doc.version, VERSION);
    assert.equal(doc.pid, gate.pid);
    assert.ok(Number.isInteger(doc.uptimeSeconds) && doc.uptimeSeconds >= 0, `uptime ${doc.uptimeSeconds}`);
    assert.equal(doc.state, "serving");
    assert.equal(doc.config.path, gate.path);
    assert.equal(doc.config.sha256, sha256(gate.path), "the sha256 of the file on disk");
    assert.equal(doc.lastReload?.trigger, "start", "no reload yet: the start is the history's first entry");
    assert.deepEqual(
      doc.reloads.map((r) => [r.trigger, r.outcome]),
      [["start", "applied"]],
    );
    assert.deepEqual(
      doc.listeners.map((l) => [l.name, l.listen, l.state]),
      [
        ["web", `127.0.0.1:${webPort}`, "serving"],
        ["dead", `127.0.0.1:${deadPort}`, "serving"],
      ],
    );
    const web = doc.listeners.find((l) => l.name === "web");
    assert.ok(web);
    assert.deepEqual(web.limits, { maxConnections: 50, maxConnectionsPerClient: 10 });
    assert.deepEqual(
      web.rules.deny.map((e) => e.rule),
      ["127.0.0.3"],
    );
    assert.deepEqual(web.rules.allow, []);
    assert.equal(web.rules.schedule, null);
    assert.equal(web.balance, "round-robin");
    assert.equal(web.targets.length, 1);
    assert.equal(web.targets[0]?.address, doubler.address);
    assert.equal(web.targets[0]?.state, "up");

    // An open bridge shows on its listener, its target and the totals, bytes included.
    const before = await status(adminPort);
    const beforeWeb = before.listeners.find((l) => l.name === "web");
    assert.ok(beforeWeb);
    const client = await gate.dial(webPort, "127.0.0.2");
    await sendAndReceive(client, 10, 20);
    const during = await status(adminPort);
    const duringWeb = during.listeners.find((l) => l.name === "web");
    assert.ok(duringWeb);
    assert.equal(duringWeb.openBridges, 1);
    assert.equal(duringWeb.targets[0]?.openBridges, 1);
    assert.equal(during.totals.openBridges, 1);
    assert.equal(duringWeb.accepted - beforeWeb.accepted, 1);
    assert.equal(duringWeb.bytes.up - beforeWeb.bytes.up, 10);
    assert.equal(duringWeb.bytes.down - beforeWeb.bytes.down, 20);
    assert.equal(during.totals.accepted - before.totals.accepted, 1);

    const end = String((await closeBridge(gate, client)).end);
    const done = await status(adminPort);
    const doneWeb = done.listeners.find((l) => l.name === "web");
    assert.ok(doneWeb);
    // closedBy: the one count per end reason, the access line's own gone up by one.
    const moved = Object.entries(doneWeb.closedBy).filter(([r, n]) => n !== beforeWeb.closedBy[r]);
    assert.deepEqual(moved, [[end, (beforeWeb.closedBy[end] ?? 0) + 1]]);
    assert.ok("idle-timeout" in doneWeb.closedBy && "recheck" in doneWeb.closedBy, "zeros are listed too");
    assert.equal(done.workers, undefined, "one event loop: no breakdown by worker");
    assert.equal(doneWeb.openBridges, 0);
    assert.equal(doneWeb.targets[0]?.openBridges, 0);
    assert.equal(done.totals.openBridges, 0);
    assert.equal(doneWeb.closed - beforeWeb.closed, 1);
    assert.equal(doneWeb.bytes.up - beforeWeb.bytes.up, 10, "a closed bridge's bytes stay counted");
    // At a quiet moment every accepted connection is refused, closed or open.
    assert.equal(done.totals.accepted, done.totals.refused + done.totals.closed + done.totals.openBridges);
  });

  test(
    "GET /metrics: Prometheus text, every metric named tcpgate_…, the families the issue names",
    BOUNDED,
    async () => {
      const reply = await fetchAdmin(adminPort, "/metrics");
      assert.equal(reply.status, 200);
      assert.match(String(reply.headers["content-type"]), /^text\/plain; version=0\.0\.4/);
      const metrics = parseMetrics(reply.body);
      assert.ok(metrics.samples.length > 0);
      for (const family of metrics.families) assert.match(family, /^tcpgate_/, `family ${family}`);
      for (const s of metrics.samples) assert.match(s.name, /^tcpgate_/, `sample ${s.name}`);

      for (const [name, { type, labels }] of Object.entries(FAMILIES)) {
        assert.equal(metrics.types.get(name), type, `${name} is a ${type}`);
        const series =
          type === "histogram"
            ? metrics.all(`${name}_count`)
            : metrics.all(name).map((s) => ({ ...s, labels: { ...s.labels } }));
        // A histogram has no series before its first observation; the others always do.
        if (type !== "histogram") assert.ok(series.length > 0, `${name} has samples`);
        for (const s of series) assert.deepEqual(Object.keys(s.labels).sort(), [...labels].sort(), `labels of ${name}`);
      }
      // Every refusal reason has its series from the start, so rate() works from the first one.
      for (const reason of ["deny", "allow", "schedule", "limit"]) {
        assert.ok(
          metrics
            .all("tcpgate_connections_refused_total")
            .some((s) => s.labels.listener === "web" && s.labels.reason === reason),
          `refused{listener="web",reason="${reason}"} is exported`,
        );
      }
      assert.deepEqual(
        metrics
          .all("tcpgate_reloads_total")
          .map((s) => s.labels.outcome)
          .sort(),
        ["applied", "rejected", "unchanged"],
      );
      const appliedAt = metrics.value("tcpgate_config_last_reload_success_timestamp_seconds");
      assert.ok(appliedAt > Date.now() / 1000 - 60 && appliedAt <= Date.now() / 1000 + 1, `applied at ${appliedAt}`);
      // prom-client's process metrics come under the same prefix.
      for (const name of [
        "tcpgate_process_cpu_seconds_total",
        "tcpgate_process_start_time_seconds",
        "tcpgate_nodejs_heap_size_used_bytes",
        "tcpgate_nodejs_eventloop_lag_seconds",
      ]) {
        assert.ok(metrics.all(name).length > 0, `${name} is exported`);
      }
      assert.equal(metrics.all("process_cpu_seconds_total").length, 0, "no unprefixed default metrics");
    },
  );

  test("metrics follow bridges as they open, carry bytes, get refused and close: exact deltas", BOUNDED, async () => {
    const web = { listener: "web" };
    const up = { listener: "web", direction: "up" };
    const down = { listener: "web", direction: "down" };
    const refused = (reason: string) => ({ listener: "web", reason });
    const before = await scrape(adminPort);
    assert.equal(before.value("tcpgate_bridges_open", web), 0);

    // Three bridges, each with a known transfer; the target answers every byte twice.
    const clients = [await gate.dial(webPort, "127.0.0.2"), await gate.dial(webPort, "127.0.0.2")];
    clients.push(await gate.dial(webPort, "127.0.0.2"));
    await Promise.all(clients.map((c, i) => sendAndReceive(c, 1000 * (i + 1), 2000 * (i + 1))));

    const open = await scrape(adminPort);
    const delta = (after: Scrape, name: string, labels: Record<string, string> = {}) =>
      after.value(name, labels) - before.value(name, labels);
    assert.equal(delta(open, "tcpgate_connections_accepted_total", web), 3);
    assert.equal(open.value("tcpgate_bridges_open", web), 3);
    assert.equal(delta(open, "tcpgate_bytes_total", up), 6000, "bytes of open bridges count before they close");
    assert.equal(delta(open, "tcpgate_bytes_total", down), 12_000);
    assert.equal(delta(open, "tcpgate_bridge_duration_seconds_count", web), 0, "no bridge has ended yet");
    for (const reason of ["deny", "allow", "schedule", "limit"]) {
      assert.equal(delta(open, "tcpgate_connections_refused_total", refused(reason)), 0);
    }

    // One refused by the deny rule: accepted by the kernel, counted once under its reason.
    const denied = await gate.tryRefused(webPort, "127.0.0.3");
    assert.notEqual(denied.how, "timeout");
    await gate.refusalLine(denied);
    const afterRefusal = await scrape(adminPort);
    assert.equal(delta(afterRefusal, "tcpgate_connections_accepted_total", web), 4);
    assert.equal(delta(afterRefusal, "tcpgate_connections_refused_total", refused("deny")), 1);
    for (const reason of ["allow", "schedule", "limit"]) {
      assert.equal(delta(afterRefusal, "tcpgate_connections_refused_total", refused(reason)), 0, reason);
    }
    assert.equal(afterRefusal.value("tcpgate_bridges_open", web), 3, "a refused client opens no bridge");
    assert.equal(delta(afterRefusal, "tcpgate_bytes_total", up), 6000);

    // More bytes on an open bridge show at the next scrape.
    await sendAndReceive(clients[0] as Socket, 500, 1000);
    const more = await scrape(adminPort);
    assert.equal(delta(more, "tcpgate_bytes_total", up), 6500);
    assert.equal(delta(more, "tcpgate_bytes_total", down), 13_000);

    // Closed: the gauge goes back to 0, each duration is observed once, no byte is lost or counted twice.
    const lines: LogLine[] = [];
    for (const c of clients) lines.push(await closeBridge(gate, c));
    const closed = await scrape(adminPort);
    assert.equal(closed.value("tcpgate_bridges_open", web), 0);
    assert.equal(delta(closed, "tcpgate_bridge_duration_seconds_count", web), 3);
    assert.equal(delta(closed, "tcpgate_bridge_duration_seconds_bucket", { le: "+Inf", listener: "web" }), 3);
    // The sum is of the same durations the access log gives, in seconds.
    const logged = lines.reduce((sum, l) => sum + (l.durationMs as number), 0) / 1000;
    const observed = delta(closed, "tcpgate_bridge_duration_seconds_sum", web);
    assert.ok(Math.abs(observed - logged) < 1e-6, `sum ${observed} s, access log ${logged} s`);
    assert.equal(delta(closed, "tcpgate_bytes_total", up), 6500);
    assert.equal(delta(closed, "tcpgate_bytes_total", down), 13_000);
    assert.equal(delta(closed, "tcpgate_connections_accepted_total", web), 4);
    assert.equal(
      delta(closed, "tcpgate_target_connect_failures_total", { listener: "web", target: doubler.address }),
      0,
    );
    assert.equal(closed.value("tcpgate_target_up", { listener: "web", target: doubler.address }), 1);
    // Another listener's series did not move.
    assert.equal(delta(closed, "tcpgate_bytes_total", { listener: "dead", direction: "up" }), 0);

    assertNoClientLabels(closed, ["127.0.0.2", "127.0.0.3", ...clients.map((c) => `:${c.localPort}`)]);
  });

  test(
    "target health: a dead target is up=0 in /metrics and down in /status; failed connects counted",
    BOUNDED,
    async () => {
      const target = { listener: "dead", target: `127.0.0.1:${nowhere}` };
      await eventually(
        async () => (await scrape(adminPort)).value("tcpgate_target_up", target) === 0,
        5000,
        "the active check to mark the dead target down",
      );
      const before = await scrape(adminPort);
      const client = await gate.dial(deadPort, "127.0.0.2");
      const line = await gate.bridgeEnd(client);
      assert.equal(line.end, "connect-failed");
      const after = await scrape(adminPort);
      assert.equal(
        after.value("tcpgate_target_connect_failures_total", target) -
          before.value("tcpgate_target_connect_failures_total", target),
        1,
      );
      assert.equal(after.value("tcpgate_bridges_open", { listener: "dead" }), 0);
      const dead = (await status(adminPort)).listeners.find((l) => l.name === "dead");
      assert.equal(dead?.targets[0]?.state, "down");
      assert.equal(dead?.targets[0]?.lastError, "ECONNREFUSED");
      assert.ok((dead?.targets[0]?.connectFailures ?? 0) >= 1);
    },
  );
});

describe("POST /reload", () => {
  test(
    "a good file (200, applied, the change lines), a bad one (422, file:line:col), the same file (200, unchanged)",
    BOUNDED,
    async () => {
      const echo = await startEcho();
      const [adminPort = 0, webPort = 0, extraPort = 0] = await freePorts(3);
      const file = (body: string) =>
        `version: 1\nshutdownTimeout: 1s\nadmin:\n  listen: 127.0.0.1:${adminPort}\nlisteners:\n${body}`;
      const web = (max: number) =>
        `  - name: web\n    listen: 127.0.0.1:${webPort}\n    targets: ["${echo.address}"]\n    maxConnections: ${max}\n`;
      const extra = `  - name: extra\n    listen: 127.0.0.1:${extraPort}\n    targets: ["${echo.address}"]\n`;
      const gate = await startGate(file(web(10)));
      try {
        const reloads = async () => {
          const m = await scrape(adminPort);
          return {
            applied: m.value("tcpgate_reloads_total", { outcome: "applied" }),
            rejected: m.value("tcpgate_reloads_total", { outcome: "rejected" }),
            unchanged: m.value("tcpgate_reloads_total", { outcome: "unchanged" }),
            at: m.value("tcpgate_config_last_reload_success_timestamp_seconds"),
          };
        };
        const start = await reloads();
        assert.deepEqual({ ...start, at: 0 }, { applied: 0, rejected: 0, unchanged: 0, at: 0 });
        const post = async () => {
          const reply = await fetchAdmin(adminPort, "/reload", { method: "POST" });
          assert.match(String(reply.headers["content-type"]), /^application\/json/);
          return { status: reply.status, body: JSON.parse(reply.body) as Record<string, unknown> };
        };

        // Good: a listener added, a limit changed. The clock has moved past the last success
        // (a timestamp in ms), so a new one can be told from it.
        await eventually(() => Date.now() > start.at * 1000, 1000, "the clock to pass the last success");
        gate.write(file(web(20) + extra));
        const good = await post();
        assert.equal(good.status, 200);
        assert.equal(good.body.outcome, "applied");
        assert.equal(good.body.trigger, "api");
        assert.equal(good.body.sha256, sha256(gate.path));
        assert.deepEqual(good.body.changes, [
          `listener extra: added on 127.0.0.1:${extraPort}`,
          "listener web: maxConnections changed",
        ]);
        assert.deepEqual(good.body.errors, []);
        const conn = await gate.dial(extraPort, "127.0.0.2");
        await echoes(conn, "extra serves");
        conn.destroy();
        const afterGood = await reloads();
        assert.deepEqual([afterGood.applied, afterGood.rejected, afterGood.unchanged], [1, 0, 0]);
        assert.ok(afterGood.at > start.at, "the last-success timestamp moved");
        const doc = await status(adminPort);
        assert.equal(doc.config.sha256, sha256(gate.path));
        assert.equal(doc.lastReload?.outcome, "applied");
        assert.equal(doc.listeners.find((l) => l.name === "web")?.limits.maxConnections, 20);
        const goodSha = sha256(gate.path);

        // Bad YAML: 422, each error names file:line:col; nothing changes.
        gate.write(`${file(web(30) + extra)}  - name: [broken\n`);
        const badYaml = await post();
        assert.equal(badYaml.status, 422);
        assert.equal(badYaml.body.outcome, "rejected");
        const yamlErrors = badYaml.body.errors as string[];
        assert.ok(Array.isArray(yamlErrors) && yamlErrors.length > 0);
        for (const e of yamlErrors) assert.ok(e.startsWith(gate.path), `names the file: ${e}`);
        assert.match(yamlErrors[0] ?? "", new RegExp(`^${literal(gate.path)}:\\d+:\\d+`));
        assert.deepEqual(badYaml.body.changes, []);

        // A schema error (a typo in a key): the same, with the place of the key.
        gate.write(file(web(30).replace("maxConnections", "maxConections") + extra));
        const typo = await post();
        assert.equal(typo.status, 422);
        const typoErrors = typo.body.errors as string[];
        assert.ok(
          typoErrors.some((e) => new RegExp(`^${literal(gate.path)}:9:5: .*maxConections`).test(e)),
          `errors: ${JSON.stringify(typoErrors)}`,
        );
        const afterBad = await reloads();
        assert.deepEqual([afterBad.applied, afterBad.rejected, afterBad.unchanged], [1, 2, 0]);
        assert.equal(afterBad.at, afterGood.at, "a rejected reload does not move the last-success timestamp");
        const stillDoc = await status(adminPort);
        assert.equal(stillDoc.config.sha256, goodSha, "the running config stays");
        assert.equal(stillDoc.lastReload?.outcome, "rejected");
        assert.deepEqual(stillDoc.lastReload?.errors, typoErrors);
        assert.equal(stillDoc.listeners.find((l) => l.name === "web")?.limits.maxConnections, 20);

        // The running file again: unchanged.
        gate.write(file(web(20) + extra));
        const same = await post();
        assert.equal(same.status, 200);
        assert.equal(same.body.outcome, "unchanged");
        assert.deepEqual(same.body.changes, []);
        const end = await reloads();
        assert.deepEqual([end.applied, end.rejected, end.unchanged], [1, 2, 1]);

        // GET is not a reload, and counts as none.
        assert.equal((await fetchAdmin(adminPort, "/reload")).status, 405);
        assert.deepEqual(await reloads(), end);
      } finally {
        await gate.close();
        await echo.close();
      }
    },
  );
});

/** A string as a literal part of a RegExp. */
function literal(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

describe("where the admin endpoint is bound", () => {
  let echo: TestServer;
  before(async () => {
    echo = await startEcho();
  });
  after(async () => {
    await echo?.close();
  });

  const file = (webPort: number, admin: string) =>
    `version: 1\nshutdownTimeout: 1s\n${admin}listeners:\n  - name: web\n    listen: 127.0.0.1:${webPort}\n    targets: ["${echo.address}"]\n`;
  const adminAt = (port: number, allow?: string) =>
    `admin:\n  listen: 127.0.0.1:${port}\n${allow ? `  allow: ${allow}\n` : ""}`;

  test(
    "no admin key: nothing listens; a reload adds it, moves it (old port refuses), removes it",
    BOUNDED,
    async () => {
      const [webPort = 0, first = 0, second = 0] = await freePorts(3);
      const gate = await startGate(file(webPort, ""));
      try {
        const reload = async (text: string, n: number) => {
          gate.write(text);
          process.kill(gate.pid, "SIGHUP");
          await gate.waitApplied(n);
        };
        assert.deepEqual(listeningPorts(gate.pid), [webPort], "only the listener is bound");
        assert.equal(await connectOutcome(first), "ECONNREFUSED");

        await reload(file(webPort, adminAt(first)), 1);
        assert.equal((await requestFrom(first, "/healthz")).status, 200);
        assert.deepEqual(
          listeningPorts(gate.pid),
          [webPort, first].sort((a, b) => a - b),
        );

        await reload(file(webPort, adminAt(second)), 2);
        assert.equal((await requestFrom(second, "/healthz")).status, 200);
        assert.equal(await connectOutcome(first), "ECONNREFUSED", "the old admin port is closed");
        assert.deepEqual(
          listeningPorts(gate.pid),
          [webPort, second].sort((a, b) => a - b),
        );

        // A move to a busy port is rejected as a whole, and the admin stays where it was.
        const squatter = await startEcho();
        try {
          gate.write(file(webPort, adminAt(squatter.port)));
          const reply = await fetchAdmin(second, "/reload", { method: "POST" });
          assert.equal(reply.status, 422);
          const body = JSON.parse(reply.body) as { errors: string[] };
          assert.match(body.errors[0] ?? "", new RegExp(`admin: cannot listen on 127\\.0\\.0\\.1:${squatter.port}`));
          assert.equal((await requestFrom(second, "/healthz")).status, 200);
        } finally {
          await squatter.close();
        }

        await reload(file(webPort, ""), 3);
        assert.equal(await connectOutcome(second), "ECONNREFUSED", "admin removed: its port is closed");
        assert.deepEqual(listeningPorts(gate.pid), [webPort]);
        const conn = await gate.dial(webPort, "127.0.0.2");
        await echoes(conn, "the listener is untouched");
      } finally {
        await gate.close();
      }
    },
  );

  test(
    "admin.allow: a client outside it is closed at accept on every path; a reload changes who may",
    BOUNDED,
    async () => {
      const [webPort = 0, adminPort = 0] = await freePorts(2);
      const gate = await startGate(file(webPort, adminAt(adminPort, "[127.0.0.2]")));
      try {
        for (const [method, path] of [
          ["GET", "/healthz"],
          ["GET", "/status"],
          ["GET", "/metrics"],
          ["POST", "/reload"],
          ["POST", "/plan"],
          ["GET", "/nope"],
        ] as const) {
          await assert.rejects(
            requestFrom(adminPort, path, { method, localAddress: "127.0.0.1" }),
            /ECONNRESET|socket hang up/,
            `${method} ${path} from 127.0.0.1`,
          );
        }
        await gate.waitForLog((l) => l.listener === "admin" && l.reason === "allow" && l.client === "127.0.0.1");
        const allowed = await requestFrom(adminPort, "/healthz", { localAddress: "127.0.0.2" });
        assert.equal(allowed.status, 200);
        assert.equal(allowed.body.trim(), "ok");
        // The refused POST /reload ran no reload.
        const metrics = parseMetrics((await requestFrom(adminPort, "/metrics", { localAddress: "127.0.0.2" })).body);
        assert.equal(metrics.value("tcpgate_reloads_total", { outcome: "unchanged" }), 0);

        gate.write(file(webPort, adminAt(adminPort, "[127.0.0.0/30]")));
        process.kill(gate.pid, "SIGHUP");
        await gate.waitApplied(1);
        assert.equal((await requestFrom(adminPort, "/healthz", { localAddress: "127.0.0.1" })).status, 200);
        await assert.rejects(
          requestFrom(adminPort, "/healthz", { localAddress: "127.0.0.4" }),
          /ECONNRESET|socket hang up/,
        );

        gate.write(file(webPort, adminAt(adminPort)));
        process.kill(gate.pid, "SIGHUP");
        await gate.waitApplied(2);
        assert.equal(
          (await requestFrom(adminPort, "/healthz", { localAddress: "127.0.0.4" })).status,
          200,
          "no allow: anyone",
        );
      } finally {
        await gate.close();
      }
    },
  );
});

describe("shutdown", () => {
  test("/healthz answers 503 while open bridges drain, and the process exits 0 once they end", BOUNDED, async () => {
    const echo = await startEcho();
    const [webPort = 0, adminPort = 0] = await freePorts(2);
    const gate = await startGate(
      `version: 1\nshutdownTimeout: 5s\nadmin:\n  listen: 127.0.0.1:${adminPort}\nlisteners:\n  - name: web\n    listen: 127.0.0.1:${webPort}\n    targets: ["${echo.address}"]\n`,
    );
    try {
      const client = await gate.dial(webPort, "127.0.0.2");
      await echoes(client, "draining");
      assert.equal((await fetchAdmin(adminPort, "/healthz")).status, 200);
      const started = Date.now();
      process.kill(gate.pid, "SIGTERM");
      await gate.waitForLog((l) => l.msg === "waiting for open bridges to finish");
      const health = await requestFrom(adminPort, "/healthz");
      assert.equal(health.status, 503);
      assert.equal(health.body.trim(), "shutting down");
      assert.equal((await requestFrom(adminPort, "/healthz", { method: "HEAD" })).status, 503);
      const doc = JSON.parse((await requestFrom(adminPort, "/status")).body) as {
        state: string;
        totals: { openBridges: number };
      };
      assert.equal(doc.state, "shutting-down");
      assert.equal(doc.totals.openBridges, 1);
      assert.equal(gate.child.exitCode, null, "still running while the bridge is open");

      client.end();
      assert.equal(await gate.exited, 0);
      assert.ok(Date.now() - started < 4000, "exited when the bridge ended, not at the timeout");
      assert.equal(await connectOutcome(adminPort), "ECONNREFUSED");
    } finally {
      await gate.close();
      await echo.close();
    }
  });
});

// Quick mode has no file and no admin section: nothing but its listener is bound.
describe("quick mode", () => {
  test("binds no admin endpoint", BOUNDED, async () => {
    const port = await freePort();
    const echo = await startEcho();
    const tcpgate = startTcpgate(["127.0.0.1", String(port), "127.0.0.1", String(echo.port)]);
    try {
      await tcpgate.waitForLog((l) => l.msg === "tcpgate started", 10_000);
      assert.deepEqual(listeningPorts(tcpgate.pid), [port]);
    } finally {
      await tcpgate.stop();
      await echo.close();
    }
  });
});

describe("a listener removed and added back while its old bridges drain", () => {
  test("its series add both up: open bridges, bytes, target state", BOUNDED, async () => {
    const doubler = await startDoubler();
    const [webPort = 0, adminPort = 0] = await freePorts(2);
    const head = `version: 1\nshutdownTimeout: 1s\nadmin:\n  listen: 127.0.0.1:${adminPort}\nlisteners:\n`;
    const web = `  - name: web\n    listen: 127.0.0.1:${webPort}\n    targets: ["${doubler.address}"]\n`;
    const other = `  - name: other\n    listen: 127.0.0.1:${await freePort()}\n    targets: ["${doubler.address}"]\n`;
    const gate = await startGate(head + web);
    try {
      const reload = async (text: string, n: number) => {
        gate.write(text);
        process.kill(gate.pid, "SIGHUP");
        await gate.waitApplied(n);
      };
      const old = await gate.dial(webPort, "127.0.0.2");
      await sendAndReceive(old, 100, 200);
      await reload(head + other, 1);
      await reload(head + web + other, 2);
      const fresh = [await gate.dial(webPort, "127.0.0.2"), await gate.dial(webPort, "127.0.0.2")];
      await Promise.all(fresh.map((c) => sendAndReceive(c, 10, 20)));

      const doc = await status(adminPort);
      assert.deepEqual(
        doc.listeners.filter((l) => l.name === "web").map((l) => [l.state, l.openBridges]),
        [
          ["serving", 2],
          ["draining", 1],
        ],
      );
      const metrics = await scrape(adminPort);
      assert.equal(metrics.value("tcpgate_bridges_open", { listener: "web" }), 3, "draining bridges count too");
      assert.equal(metrics.value("tcpgate_bytes_total", { listener: "web", direction: "up" }), 120);
      assert.equal(metrics.value("tcpgate_bytes_total", { listener: "web", direction: "down" }), 240);
      assert.equal(metrics.value("tcpgate_connections_accepted_total", { listener: "web" }), 3);
      assert.equal(metrics.value("tcpgate_target_up", { listener: "web", target: doubler.address }), 1);
      assert.equal(metrics.all("tcpgate_target_up").filter((s) => s.labels.listener === "web").length, 1);

      await closeBridge(gate, old);
      const drained = await scrape(adminPort);
      assert.equal(drained.value("tcpgate_bridges_open", { listener: "web" }), 2);
      // The drained namesake's totals carry on in the serving listener: counters never go back.
      assert.equal(drained.value("tcpgate_connections_accepted_total", { listener: "web" }), 3);
      assert.equal(drained.value("tcpgate_bytes_total", { listener: "web", direction: "up" }), 120);
      assert.equal(drained.value("tcpgate_bytes_total", { listener: "web", direction: "down" }), 240);
    } finally {
      await gate.close();
      await doubler.close();
    }
  });
});

describe("a config file given by a relative path", () => {
  test("/status names it by its absolute path", BOUNDED, async () => {
    const echo = await startEcho();
    const [webPort = 0, adminPort = 0] = await freePorts(2);
    const config = tempConfig(
      `version: 1\nshutdownTimeout: 1s\nadmin:\n  listen: 127.0.0.1:${adminPort}\nlisteners:\n  - name: web\n    listen: 127.0.0.1:${webPort}\n    targets: ["${echo.address}"]\n`,
    );
    const tcpgate = startTcpgate(["--config", "proxy.yaml", "--no-watch"], { cwd: config.dir });
    try {
      await tcpgate.waitForLog((l) => l.msg === "tcpgate started", 10_000);
      const doc = await status(adminPort);
      assert.equal(doc.config.path, config.path);
      assert.equal(doc.config.sha256, sha256(config.path));
    } finally {
      await tcpgate.stop();
      config.remove();
      await echo.close();
    }
  });
});
