// recheck (SPEC §7 "Re-check open bridges", §12): with recheck: true a reload closes
// exactly the open bridges the plan listed as closed on apply, and the end of the last
// admitting schedule window closes the rest; with recheck: false (the default) a reload
// never closes a bridge. The real CLI, real bridges from 127.0.0.2, .3, .4.
import assert from "node:assert/strict";
import type { Socket } from "node:net";
import { test } from "node:test";
import { requestFrom, scrape, status } from "../support/admin.ts";
import { echoes } from "../support/admission.ts";
import type { LogLine } from "../support/cli.ts";
import { type Gate, startGate } from "../support/cli.ts";
import { endOf, freePorts, startEcho, type TestServer } from "../support/net.ts";
import { windowFromNow } from "../support/schedule.ts";

/** Every test is bounded in time; generously, as a loaded 2-core machine starts node in seconds. */
const BOUNDED = { timeout: 60_000 };

interface Refused {
  listener: string;
  client: string;
  clientPort: number;
  reason: string;
  closedOnApply: boolean;
}

const listener = (name: string, port: number, target: string, more: readonly string[] = []) => [
  `  - name: ${name}`,
  `    listen: "127.0.0.1:${port}"`,
  `    targets: ["${target}"]`,
  ...more,
];

const file = (admin: number, listeners: readonly string[][], top: readonly string[] = []) =>
  [
    "version: 1",
    "shutdownTimeout: 1s",
    `admin: { listen: "127.0.0.1:${admin}" }`,
    ...top,
    "listeners:",
    ...listeners.flat(),
    "",
  ].join("\n");

const isEnd = (l: LogLine) => typeof l.end === "string";

/** POST /plan with text. */
async function planOf(admin: number, text: string): Promise<{ refused: Refused[] }> {
  const reply = await requestFrom(admin, "/plan", { method: "POST", body: text });
  assert.equal(reply.status, 200, reply.body);
  return JSON.parse(reply.body) as { refused: Refused[] };
}

/**
 * Saves text and reloads it by SIGHUP; resolves once the reload's line is logged, with the
 * index in the log where the reload began.
 */
async function reloadTo(gate: Gate, text: string): Promise<number> {
  const from = gate.logs.length;
  const bySignal = () => gate.logs.filter((l) => l.msg === "reload applied" && l.trigger === "signal").length;
  const before = bySignal();
  gate.write(text);
  process.kill(gate.pid, "SIGHUP");
  await gate.waitForLog(() => bySignal() > before);
  return from;
}

/** The client ports of the bridges that ended with reason since log line `from`. */
const endedSince = (gate: Gate, from: number, reason?: string) =>
  gate.logs
    .slice(from)
    .filter((l) => isEnd(l) && (reason === undefined || l.end === reason))
    .map((l) => `${l.listener} ${l.client}:${l.clientPort}`)
    .sort();

const named = (listenerName: string, socket: Socket) => `${listenerName} ${socket.localAddress}:${socket.localPort}`;

async function withEcho(run: (echo: TestServer) => Promise<void>): Promise<void> {
  const echo = await startEcho();
  try {
    await run(echo);
  } finally {
    await echo.close();
  }
}

test(
  "recheck: true closes exactly the bridges the plan named (end recheck in the log, the metrics and the reload history); its recheck: false neighbour keeps its own",
  BOUNDED,
  () =>
    withEcho(async (echo) => {
      const [admin = 0, guarded = 0, lax = 0] = await freePorts(3);
      const before = file(admin, [
        listener("guarded", guarded, echo.address, ["    recheck: true"]),
        listener("lax", lax, echo.address),
      ]);
      const gate = await startGate(before);
      try {
        const g2 = await gate.dial(guarded, "127.0.0.2");
        const g3 = await gate.dial(guarded, "127.0.0.3");
        const g4 = await gate.dial(guarded, "127.0.0.4");
        const l2 = await gate.dial(lax, "127.0.0.2");
        for (const s of [g2, g3, g4, l2]) await echoes(s, "open");

        // Deny .2, and an allow that leaves .4 out; the same deny on the recheck: false listener.
        const rules = ['    deny: ["127.0.0.2"]', '    allow: ["127.0.0.2", "127.0.0.3"]'];
        const after = file(admin, [
          listener("guarded", guarded, echo.address, ["    recheck: true", ...rules]),
          listener("lax", lax, echo.address, rules),
        ]);
        const plan = await planOf(admin, after);
        assert.deepEqual(
          plan.refused
            .map((b) => [`${b.listener} ${b.client}:${b.clientPort}`, b.reason, b.closedOnApply])
            .sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
          [
            [named("guarded", g2), "deny", true],
            [named("guarded", g4), "allow", true],
            [named("lax", l2), "deny", false],
          ].sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
        );

        // Listening from before the reload: the close may come before reloadTo returns.
        const ends = [g2, g4].map((socket) => endOf(socket, 10_000));
        const from = await reloadTo(gate, after);
        const closedByPlan = plan.refused
          .filter((b) => b.closedOnApply)
          .map((b) => `${b.listener} ${b.client}:${b.clientPort}`)
          .sort();
        // Closed in the reload's own step: their lines come before "reload applied".
        assert.deepEqual(endedSince(gate, from), closedByPlan);
        assert.deepEqual(endedSince(gate, from, "recheck"), closedByPlan);
        for (const how of await Promise.all(ends)) assert.notEqual(how, "timeout", "the client sees its bridge close");
        for (const s of [g3, l2]) await echoes(s, "still open");

        const metrics = await scrape(admin);
        assert.equal(metrics.value("tcpgate_bridges_closed_total", { listener: "guarded", reason: "recheck" }), 2);
        assert.equal(metrics.value("tcpgate_bridges_closed_total", { listener: "lax", reason: "recheck" }), 0);
        assert.equal(metrics.value("tcpgate_bridges_open", { listener: "guarded" }), 1);
        assert.equal(metrics.value("tcpgate_bridges_open", { listener: "lax" }), 1);

        const last = (await status(admin)).reloads[0];
        assert.equal(last?.trigger, "signal");
        assert.equal(last?.summary, "listeners: 2 changed; 3 open bridges no longer admitted, 2 closed (recheck)");
        assert.ok(last?.changes.includes("2 open bridge(s) closed by recheck"), JSON.stringify(last?.changes));
      } finally {
        await gate.close();
      }
    }),
);

test(
  "recheck: false (the default): a reload that denies everyone, leaves the schedule and drops the target closes no bridge",
  BOUNDED,
  () =>
    withEcho(async (echo) => {
      const other = await startEcho();
      const [admin = 0, web = 0] = await freePorts(2);
      const gate = await startGate(file(admin, [listener("web", web, echo.address)]));
      try {
        const clients = [await gate.dial(web, "127.0.0.2"), await gate.dial(web, "127.0.0.3")];
        for (const s of clients) await echoes(s, "open");
        const after = file(admin, [
          listener("web", web, other.address, [
            '    deny: ["127.0.0.0/8"]',
            "    schedule:",
            "      timezone: UTC",
            "      windows:",
            windowFromNow(Date.now(), 0, 180, 60),
          ]),
        ]);
        const plan = await planOf(admin, after);
        assert.equal(plan.refused.length, 2);
        assert.ok(plan.refused.every((b) => !b.closedOnApply));
        const from = await reloadTo(gate, after);
        for (const s of clients) await echoes(s, "carries on");
        assert.deepEqual(endedSince(gate, from), []);
        const metrics = await scrape(admin);
        assert.equal(metrics.value("tcpgate_bridges_open", { listener: "web" }), 2);
        assert.equal(metrics.value("tcpgate_bridges_closed_total", { listener: "web", reason: "recheck" }), 0);
      } finally {
        await gate.close();
        await other.close();
      }
    }),
);

test(
  "recheck from defaults: a reload to a window that has ended closes the open bridges, with end reason recheck",
  BOUNDED,
  () =>
    withEcho(async (echo) => {
      const [admin = 0, web = 0] = await freePorts(2);
      const schedule = (window: string) => ["    schedule:", "      timezone: UTC", "      windows:", window];
      const now = Date.now();
      const gate = await startGate(
        file(
          admin,
          [listener("web", web, echo.address, schedule(windowFromNow(now, 0, -60, 120)))],
          ["defaults: { recheck: true }"],
        ),
      );
      try {
        const clients = [await gate.dial(web, "127.0.0.2"), await gate.dial(web, "127.0.0.3")];
        for (const s of clients) await echoes(s, "inside the window");
        // The window that ended an hour ago.
        const after = file(
          admin,
          [listener("web", web, echo.address, schedule(windowFromNow(now, 0, -180, 120)))],
          ["defaults: { recheck: true }"],
        );
        const plan = await planOf(admin, after);
        assert.deepEqual(
          plan.refused.map((b) => [b.reason, b.closedOnApply]),
          [
            ["schedule", true],
            ["schedule", true],
          ],
        );
        const ends = clients.map((socket) => endOf(socket, 10_000));
        const from = await reloadTo(gate, after);
        assert.deepEqual(endedSince(gate, from, "recheck"), clients.map((s) => named("web", s)).sort());
        for (const how of await Promise.all(ends)) assert.notEqual(how, "timeout");
      } finally {
        await gate.close();
      }
    }),
);

test(
  "the end of the last admitting window closes the open bridges of a recheck listener at once (the check runs every second), and only those",
  {
    timeout: 120_000,
  },
  () =>
    withEcho(async (echo) => {
      const [admin = 0, timed = 0, lax = 0] = await freePorts(3);
      // Windows are whole minutes: this one ends at the next minute boundary, or the one
      // after when less than 15 s are left to start up in. At most 75 s away.
      const now = Date.now();
      const left = 60_000 - (now % 60_000);
      const minutes = left < 15_000 ? 2 : 1;
      const boundary = now + left + (minutes - 1) * 60_000;
      const schedule = ["    schedule:", "      timezone: UTC", "      windows:", windowFromNow(now, 0, 0, minutes)];
      const gate = await startGate(
        file(admin, [
          listener("timed", timed, echo.address, ["    recheck: true", ...schedule]),
          listener("lax", lax, echo.address, schedule),
        ]),
      );
      try {
        const t2 = await gate.dial(timed, "127.0.0.2");
        const l2 = await gate.dial(lax, "127.0.0.2");
        for (const s of [t2, l2]) await echoes(s, "inside the window");
        const closed = endOf(t2, boundary - Date.now() + 12_000);
        const end = await gate.bridgeEnd(t2, undefined, boundary - Date.now() + 10_000);
        assert.equal(end.end, "recheck");
        const at = Date.parse(String(end.time));
        assert.ok(
          at >= boundary,
          `closed at ${end.time}, before the window ended at ${new Date(boundary).toISOString()}`,
        );
        // A second's check, and slack for a loaded machine: never a minute late.
        assert.ok(at < boundary + 5_000, `closed at ${end.time}, window ended at ${new Date(boundary).toISOString()}`);
        assert.notEqual(await closed, "timeout", "the client sees its bridge close");
        // The recheck: false listener's bridge carries on past its window's end.
        await echoes(l2, "after the window");
        assert.deepEqual(endedSince(gate, 0), [named("timed", t2)]);
        const metrics = await scrape(admin);
        assert.equal(metrics.value("tcpgate_bridges_closed_total", { listener: "timed", reason: "recheck" }), 1);
      } finally {
        await gate.close();
      }
    }),
);
