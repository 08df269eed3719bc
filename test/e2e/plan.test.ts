// `tcpgate plan` (SPEC §7, §12) against a running instance: the real CLI asks the real
// admin endpoint, with real bridges open from 127.0.0.2, .3 and .4, and nothing is applied.
// Every change kind, the open bridges a new deny, allow or schedule would refuse (exactly
// those), the bridges of removed listeners and targets, the exit statuses, and the reload
// history in /status.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import type { Socket } from "node:net";
import { after, before, describe, test } from "node:test";
import { type ReloadEntry, requestFrom, status } from "../support/admin.ts";
import { echoes } from "../support/admission.ts";
import { type Gate, runTcpgate, startGate, tempConfig } from "../support/cli.ts";
import { freePort, freePorts, startEcho, type TestServer } from "../support/net.ts";
import { connectOutcome } from "../support/reload.ts";
import { windowFromNow } from "../support/schedule.ts";

/** Every test is bounded in time; generously, as a loaded 2-core machine starts node in seconds. */
const BOUNDED = { timeout: 90_000 };
/** A CLI run (node start-up included) may take this long. */
const CLI_MS = 30_000;

/** The plan object (`--json`, POST /plan), as far as these tests read it. */
interface PlanDoc {
  sha256: string;
  listeners: {
    added: { name: string; listen: string }[];
    removed: { name: string; listen: string; openBridges: number }[];
    moved: { name: string; from: string; to: string; changes: Change[] }[];
    changed: { name: string; listen: string; changes: Change[] }[];
    unchanged: string[];
  };
  settings: Change[];
  refused: (Bridge & { reason: string; rule: string; closedOnApply: boolean })[];
  removedListenerBridges: Bridge[];
  removedTargetBridges: Bridge[];
}
interface Change {
  setting: string;
  from: string;
  to: string;
  added?: string[];
  removed?: string[];
}
interface Bridge {
  id: number;
  listener: string;
  client: string;
  clientPort: number;
  target: string | null;
  ageMs: number;
  bytesUp: number;
  bytesDown: number;
}

interface ListenerDef {
  readonly name: string;
  readonly port: number;
  readonly targets: readonly string[];
  /** Further keys, as YAML lines indented for a listener. */
  readonly more?: readonly string[];
}

function configText(listeners: readonly ListenerDef[], top: readonly string[] = []): string {
  const lines = ["version: 1", "shutdownTimeout: 1s", ...top, "listeners:"];
  for (const l of listeners) {
    lines.push(`  - name: ${l.name}`, `    listen: "127.0.0.1:${l.port}"`, "    targets:");
    lines.push(...l.targets.map((t) => `      - "${t}"`), ...(l.more ?? []));
  }
  return `${lines.join("\n")}\n`;
}

/** Runs `tcpgate plan` on text (in a file of its own); stdout parsed when --json. */
async function plan(text: string, args: readonly string[]) {
  const file = tempConfig(text, "next.yaml");
  try {
    const run = await runTcpgate(["plan", "--config", file.path, ...args], CLI_MS);
    return { ...run, path: file.path };
  } finally {
    file.remove();
  }
}

async function planJson(text: string, args: readonly string[]) {
  const run = await plan(text, [...args, "--json"]);
  assert.ok([0, 3].includes(run.code ?? -1), `exit ${run.code}: ${run.stderr}`);
  assert.equal(run.stderr, "");
  return { code: run.code, doc: JSON.parse(run.stdout) as PlanDoc };
}

const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");
const byId = (a: { id: number }, b: { id: number }) => a.id - b.id;
const stderrLines = (stderr: string) => stderr.split("\n").filter(Boolean);

describe("tcpgate plan against a running instance", () => {
  let e1: TestServer;
  let e2: TestServer;
  let gate: Gate;
  let ports: Record<"admin" | "web" | "db" | "db2" | "old" | "keep" | "added", number>;
  let running: ListenerDef[];
  let runningText: string;
  let adminArgs: string[];
  /** The open bridges: web from .2 (5 bytes each way) and .3 (3), keep from .2, old from .4. */
  const clients: Record<"web2" | "web3" | "keep2" | "old4", Socket> = {} as never;

  before(async () => {
    e1 = await startEcho();
    e2 = await startEcho();
    const [admin = 0, web = 0, db = 0, db2 = 0, old = 0, keep = 0, added = 0] = await freePorts(7);
    ports = { admin, web, db, db2, old, keep, added };
    running = [
      { name: "web", port: web, targets: [e1.address], more: ['    deny: ["127.0.0.8"]'] },
      { name: "db", port: db, targets: [e1.address] },
      { name: "old", port: old, targets: [e1.address] },
      { name: "keep", port: keep, targets: [e1.address] },
    ];
    runningText = configText(running, [`admin: { listen: "127.0.0.1:${admin}" }`]);
    adminArgs = ["--admin", `http://127.0.0.1:${admin}`];
    gate = await startGate(runningText);
    clients.web2 = await gate.dial(web, "127.0.0.2");
    await echoes(clients.web2, "hello");
    clients.web3 = await gate.dial(web, "127.0.0.3");
    await echoes(clients.web3, "hi!");
    clients.keep2 = await gate.dial(keep, "127.0.0.2");
    await echoes(clients.keep2, "k");
    clients.old4 = await gate.dial(old, "127.0.0.4");
    await echoes(clients.old4, "o");
  });

  after(async () => {
    await gate?.close();
    await e1?.close();
    await e2?.close();
  });

  /** The running config with one listener's definition replaced (or removed). */
  const edit = (name: string, change: (l: ListenerDef) => ListenerDef | undefined, top: string[] = []) =>
    configText(
      running.flatMap((l) => {
        const changed = l.name === name ? change(l) : l;
        return changed ? [changed] : [];
      }),
      [`admin: { listen: "127.0.0.1:${ports.admin}" }`, ...top],
    );

  test(
    "every change kind: added, removed, moved, changed (old → new, entries added and removed), unchanged, settings; nothing is applied",
    BOUNDED,
    async () => {
      const next = configText(
        [
          {
            name: "web",
            port: ports.web,
            targets: [e1.address, e2.address],
            more: ['    deny: ["127.0.0.9"]', "    idleTimeout: 5m"],
          },
          { name: "db", port: ports.db2, targets: [e1.address], more: ["    maxConnections: 50"] },
          { name: "keep", port: ports.keep, targets: [e1.address] },
          { name: "added", port: ports.added, targets: [e2.address] },
        ],
        [`admin: { listen: "127.0.0.1:${ports.admin}" }`, "log: { level: warn }"],
      ).replace("shutdownTimeout: 1s", "shutdownTimeout: 2s");

      const { code, doc } = await planJson(next, adminArgs);
      assert.equal(code, 0);
      assert.equal(doc.sha256, sha256(next));
      assert.deepEqual(doc.listeners.added, [{ name: "added", listen: `127.0.0.1:${ports.added}` }]);
      assert.deepEqual(doc.listeners.removed, [{ name: "old", listen: `127.0.0.1:${ports.old}`, openBridges: 1 }]);
      assert.deepEqual(doc.listeners.moved, [
        {
          name: "db",
          from: `127.0.0.1:${ports.db}`,
          to: `127.0.0.1:${ports.db2}`,
          changes: [{ setting: "maxConnections", from: "none", to: "50" }],
        },
      ]);
      assert.equal(doc.listeners.changed.length, 1);
      const web = doc.listeners.changed[0];
      assert.equal(web?.name, "web");
      assert.equal(web?.listen, `127.0.0.1:${ports.web}`);
      const changes = Object.fromEntries((web?.changes ?? []).map((c) => [c.setting, c]));
      assert.deepEqual(Object.keys(changes).sort(), ["deny", "idleTimeout", "targets"]);
      assert.deepEqual(changes.targets, {
        setting: "targets",
        from: e1.address,
        to: `${e1.address}, ${e2.address}`,
        added: [e2.address],
        removed: [],
      });
      assert.deepEqual(changes.deny, {
        setting: "deny",
        from: "127.0.0.8",
        to: "127.0.0.9",
        added: ["127.0.0.9"],
        removed: ["127.0.0.8"],
      });
      assert.deepEqual(changes.idleTimeout, { setting: "idleTimeout", from: "15m", to: "5m" });
      assert.deepEqual(doc.listeners.unchanged, ["keep"]);
      assert.deepEqual(
        [...doc.settings].sort((a, b) => a.setting.localeCompare(b.setting)),
        [
          { setting: "logLevel", from: "info", to: "warn" },
          { setting: "shutdownTimeout", from: "1s", to: "2s" },
        ],
      );
      assert.deepEqual(doc.refused, []);
      assert.deepEqual(
        doc.removedListenerBridges.map((b) => [b.listener, b.client, b.clientPort, b.target]),
        [["old", "127.0.0.4", clients.old4.localPort, e1.address]],
      );
      assert.deepEqual(doc.removedTargetBridges, [], "web keeps its target");

      // The same plan for a person.
      const human = await plan(next, adminArgs);
      assert.equal(human.code, 0, human.stderr);
      const lines = human.stdout.split("\n");
      for (const line of [
        `+ listener added: added on 127.0.0.1:${ports.added}`,
        `~ listener db: moved 127.0.0.1:${ports.db} → 127.0.0.1:${ports.db2}`,
        "    maxConnections: none → 50",
        `~ listener web (127.0.0.1:${ports.web}): changed`,
        `    targets: +${e2.address}`,
        "    deny: +127.0.0.9 -127.0.0.8",
        "    idleTimeout: 15m → 5m",
        `- listener old (127.0.0.1:${ports.old}): removed; its open bridges carry on until they end`,
        "= 1 listener unchanged: keep",
        "~ logLevel: info → warn",
        "~ shutdownTimeout: 1s → 2s",
        "No open bridge would be refused by the new rules.",
      ]) {
        assert.ok(lines.includes(line), `missing ${JSON.stringify(line)} in:\n${human.stdout}`);
      }
      assert.match(
        human.stdout,
        new RegExp(
          `^ {4}127\\.0\\.0\\.4:${clients.old4.localPort} → ${e1.address.replace(/\./g, "\\.")}, age \\d+s, 1 B up, 1 B down$`,
          "m",
        ),
      );

      // A plan applies nothing.
      const now = await status(ports.admin);
      assert.deepEqual(
        now.listeners.map((l) => [l.name, l.listen]),
        running.map((l) => [l.name, `127.0.0.1:${l.port}`]),
      );
      assert.equal(now.config.sha256, sha256(runningText));
      assert.deepEqual(
        now.reloads.map((r) => r.trigger),
        ["start"],
      );
      assert.equal(await connectOutcome(ports.added), "ECONNREFUSED");
      assert.equal(await connectOutcome(ports.db2), "ECONNREFUSED");
      assert.equal(gate.logs.filter((l) => l.msg === "reload applied").length, 0);
    },
  );

  test("--json prints exactly what POST /plan answers", BOUNDED, async () => {
    const next = edit("web", (l) => ({ ...l, more: ['    deny: ["127.0.0.2"]'] }));
    const { code, doc } = await planJson(next, adminArgs);
    assert.equal(code, 3);
    const reply = await requestFrom(ports.admin, "/plan", { method: "POST", body: next });
    assert.equal(reply.status, 200, reply.body);
    assert.match(String(reply.headers["content-type"]), /^application\/json/);
    // Only the ages move on between the two requests.
    const ageless = (d: PlanDoc) => ({
      ...d,
      refused: d.refused.map((b) => ({ ...b, ageMs: 0 })),
      removedListenerBridges: d.removedListenerBridges.map((b) => ({ ...b, ageMs: 0 })),
      removedTargetBridges: d.removedTargetBridges.map((b) => ({ ...b, ageMs: 0 })),
    });
    assert.deepEqual(ageless(doc), ageless(JSON.parse(reply.body) as PlanDoc));
  });

  test(
    "a tightened deny: exactly the open bridge it would refuse (listener, client:port, target, age, bytes, entry), exit 3",
    BOUNDED,
    async () => {
      const next = edit("web", (l) => ({ ...l, more: ['    deny: ["127.0.0.8", "127.0.0.2"]'] }));
      // No --admin: the file's own admin.listen says where the instance runs.
      const { code, doc } = await planJson(next, []);
      assert.equal(code, 3);
      assert.equal(doc.refused.length, 1, JSON.stringify(doc.refused));
      const [bridge] = doc.refused;
      assert.equal(bridge?.listener, "web");
      assert.equal(bridge?.client, "127.0.0.2");
      assert.equal(bridge?.clientPort, clients.web2.localPort);
      assert.equal(bridge?.target, e1.address);
      assert.equal(bridge?.bytesUp, 5);
      assert.equal(bridge?.bytesDown, 5);
      assert.ok((bridge?.ageMs ?? -1) > 0 && (bridge?.ageMs ?? 0) < 120_000, `age ${bridge?.ageMs}`);
      assert.equal(bridge?.reason, "deny");
      assert.match(bridge?.rule ?? "", /^127\.0\.0\.2(\/32)?$/);
      assert.equal(bridge?.closedOnApply, false);

      const human = await plan(next, []);
      assert.equal(human.code, 3);
      assert.match(human.stdout, /^ {2}1 open bridge would no longer be admitted \(they carry on: recheck is off\):$/m);
      assert.match(
        human.stdout,
        new RegExp(
          `^ {4}127\\.0\\.0\\.2:${clients.web2.localPort} → ${e1.address.replace(/\./g, "\\.")}, age \\d+s, 5 B up, 5 B down: deny 127\\.0\\.0\\.2(/32)?$`,
          "m",
        ),
      );
      assert.match(human.stdout, /1 open bridge would no longer be admitted \(exit status 3\)\.$/m);
      for (const other of [clients.web3, clients.keep2, clients.old4]) {
        assert.ok(!human.stdout.includes(`:${other.localPort} `), `bridge from port ${other.localPort} is not listed`);
      }
    },
  );

  test("a narrowed allow: exactly the open bridge outside it, exit 3", BOUNDED, async () => {
    const next = edit("web", (l) => ({ ...l, more: ['    allow: ["127.0.0.3", "10.0.0.0/8"]'] }));
    const { code, doc } = await planJson(next, adminArgs);
    assert.equal(code, 3);
    assert.deepEqual(
      doc.refused.map((b) => [b.listener, b.client, b.clientPort, b.reason]),
      [["web", "127.0.0.2", clients.web2.localPort, "allow"]],
    );
    const human = await plan(next, adminArgs);
    assert.equal(human.code, 3);
    assert.match(human.stdout, new RegExp(`127\\.0\\.0\\.2:${clients.web2.localPort} → .*: not in allow$`, "m"));
  });

  test(
    "a schedule in a named zone: a window that excludes now refuses both open bridges of web; one that includes now, none",
    BOUNDED,
    async () => {
      const now = Date.now();
      // Now on UTC's wall clock, give or take an hour. Asia/Kathmandu is UTC+05:45 all year:
      // there, the same window is hours away.
      const window = windowFromNow(now, 0, -60, 120);
      const schedule = (zone: string) => ["    schedule:", `      timezone: ${zone}`, "      windows:", window];
      const closed = await planJson(
        edit("web", (l) => ({ ...l, more: schedule("Asia/Kathmandu") })),
        adminArgs,
      );
      assert.equal(closed.code, 3);
      assert.deepEqual(
        closed.doc.refused.sort(byId).map((b) => [b.listener, b.client, b.clientPort, b.reason, b.rule]),
        [
          ["web", "127.0.0.2", clients.web2.localPort, "schedule", "outside every window"],
          ["web", "127.0.0.3", clients.web3.localPort, "schedule", "outside every window"],
        ],
      );
      const change = closed.doc.listeners.changed[0]?.changes.find((c) => c.setting === "schedule");
      assert.equal(change?.from, "none");
      assert.match(change?.to ?? "", /\(Asia\/Kathmandu\)$/);

      const open = await planJson(
        edit("web", (l) => ({ ...l, more: schedule("UTC") })),
        adminArgs,
      );
      assert.equal(open.code, 0);
      assert.deepEqual(open.doc.refused, []);
    },
  );

  test("bridges of a removed listener and of removed targets are listed, and exit 0", BOUNDED, async () => {
    const next = configText(
      running.flatMap((l) => (l.name === "old" ? [] : l.name === "web" ? [{ ...l, targets: [e2.address] }] : [l])),
      [`admin: { listen: "127.0.0.1:${ports.admin}" }`],
    );
    const { code, doc } = await planJson(next, adminArgs);
    assert.equal(code, 0);
    assert.deepEqual(doc.refused, []);
    assert.deepEqual(
      doc.removedListenerBridges.map((b) => [b.listener, b.client, b.clientPort]),
      [["old", "127.0.0.4", clients.old4.localPort]],
    );
    assert.deepEqual(
      doc.removedTargetBridges.sort(byId).map((b) => [b.listener, b.client, b.clientPort, b.target]),
      [
        ["web", "127.0.0.2", clients.web2.localPort, e1.address],
        ["web", "127.0.0.3", clients.web3.localPort, e1.address],
      ],
    );
    const human = await plan(next, adminArgs);
    assert.equal(human.code, 0);
    assert.match(human.stdout, /^ {2}2 open bridges to removed targets \(they carry on\):$/m);
    assert.match(human.stdout, /^No open bridge would be refused by the new rules\.$/m);
  });

  test(
    "exit 1: an invalid file (file:line:col on stderr, and POST /plan answers 422 with the errors)",
    BOUNDED,
    async () => {
      const next = edit("web", (l) => ({ ...l, more: ["    idleTimeout: 5m", "    bogus: 1"] }));
      const run = await plan(next, adminArgs);
      assert.equal(run.code, 1);
      assert.equal(run.stdout, "");
      const lines = stderrLines(run.stderr);
      assert.equal(lines.length, 1, run.stderr);
      assert.ok(lines[0]?.startsWith(`${run.path}:`), run.stderr);
      assert.match(lines[0] ?? "", /:\d+:\d+: listeners\[0\]\.bogus: unknown key "bogus"$/);

      const reply = await requestFrom(ports.admin, "/plan", { method: "POST", body: next });
      assert.equal(reply.status, 422);
      const { errors } = JSON.parse(reply.body) as { errors: string[] };
      assert.equal(errors.length, 1);
      assert.match(errors[0] ?? "", /:\d+:\d+: listeners\[0\]\.bogus: unknown key "bogus"$/);
      const broken = await requestFrom(ports.admin, "/plan", { method: "POST", body: "listeners: [\n" });
      assert.equal(broken.status, 422);
      assert.match((JSON.parse(broken.body) as { errors: string[] }).errors[0] ?? "", /:\d+:\d+: /);
    },
  );

  test("exit 1: the instance cannot be reached, in one clear line", BOUNDED, async () => {
    const nowhere = await freePort();
    const run = await plan(runningText, ["--admin", `http://127.0.0.1:${nowhere}`]);
    assert.equal(run.code, 1);
    assert.equal(run.stdout, "");
    assert.deepEqual(stderrLines(run.stderr), [
      `tcpgate: cannot reach the running instance at http://127.0.0.1:${nowhere}: ECONNREFUSED`,
    ]);
  });

  test("exit 2: bad usage, in one line each", { timeout: 180_000 }, async () => {
    const noAdmin = configText(running);
    for (const [args, message] of [
      [["plan"], /plan needs --config/],
      [["plan", "--config", "FILE", "--bogus"], /Unknown option '--bogus'/],
      [["plan", "--config", "FILE", "--admin", "ftp://example"], /--admin "ftp:\/\/example" is not/],
      [["plan", "--config", "FILE", "extra"], /Unexpected argument 'extra'/],
      // Neither --admin nor admin.listen in the file: where would the instance be?
      [["plan", "--config", "NOADMIN"], /no --admin given and the file has no admin\.listen/],
    ] as const) {
      const file = tempConfig(noAdmin);
      const withAdmin = tempConfig(runningText);
      try {
        const run = await runTcpgate(
          args.map((a) => (a === "FILE" ? withAdmin.path : a === "NOADMIN" ? file.path : a)),
          CLI_MS,
        );
        assert.equal(run.code, 2, `${args.join(" ")}: ${run.stderr}`);
        assert.equal(run.stdout, "");
        const lines = stderrLines(run.stderr);
        assert.equal(lines.length, 1, run.stderr);
        assert.match(lines[0] ?? "", message);
      } finally {
        file.remove();
        withAdmin.remove();
      }
    }
  });
});

test("exit 1: admin.allow refusing us, in one clear line", BOUNDED, async () => {
  const echo = await startEcho();
  const [admin = 0, web = 0] = await freePorts(2);
  const text = configText(
    [{ name: "web", port: web, targets: [echo.address] }],
    [`admin: { listen: "127.0.0.1:${admin}", allow: ["127.0.0.9"] }`],
  );
  const gate = await startGate(text);
  try {
    const run = await plan(text, []);
    assert.equal(run.code, 1);
    assert.equal(run.stdout, "");
    const lines = stderrLines(run.stderr);
    assert.equal(lines.length, 1, run.stderr);
    assert.match(
      lines[0] ?? "",
      new RegExp(`^tcpgate: cannot reach the running instance at http://127\\.0\\.0\\.1:${admin}: .*admin\\.allow`),
    );
  } finally {
    await gate.close();
    await echo.close();
  }
});

describe("reload history in /status", () => {
  test("25 reloads, by POST /reload and SIGHUP in turn: the last 20, newest first, each with at, trigger, outcome, sha256, summary, errors", {
    timeout: 180_000,
  }, async () => {
    const echo = await startEcho();
    const [admin = 0, web = 0] = await freePorts(2);
    const version = (i: number) =>
      configText(
        [
          {
            name: "web",
            port: web,
            targets: [echo.address],
            // Each reload changes something else than the one before: a timeout, then the deny list.
            more: [`    idleTimeout: ${10 + i}m`, ...(i % 2 === 0 ? ['    deny: ["127.0.0.9"]'] : [])],
          },
        ],
        [`admin: { listen: "127.0.0.1:${admin}" }`],
      );
    const gate = await startGate(version(0));
    try {
      const expected: { trigger: string; outcome: string; sha256: string }[] = [];
      let runningSha = sha256(version(0));
      for (let i = 1; i <= 25; i++) {
        // The last one is a broken file: rejected, with its errors, and the running sha stays.
        const text = i === 25 ? `${version(i)}    bogus: 1\n` : version(i);
        gate.write(text);
        const trigger = i % 2 === 1 ? "api" : "signal";
        if (trigger === "api") {
          const reply = await requestFrom(admin, "/reload", { method: "POST" });
          assert.equal(reply.status, i === 25 ? 422 : 200, reply.body);
        } else {
          // Counted by trigger: the line of the POST before may still be on its way.
          const bySignal = () => gate.logs.filter((l) => l.msg === "reload applied" && l.trigger === "signal").length;
          const before = bySignal();
          process.kill(gate.pid, "SIGHUP");
          await gate.waitForLog(() => bySignal() > before);
        }
        if (i < 25) runningSha = sha256(text);
        expected.unshift({ trigger, outcome: i === 25 ? "rejected" : "applied", sha256: runningSha });
      }
      const doc = await status(admin);
      assert.equal(doc.reloads.length, 20);
      assert.deepEqual(
        doc.reloads.map((r) => ({ trigger: r.trigger, outcome: r.outcome, sha256: r.sha256 })),
        expected.slice(0, 20),
      );
      assert.deepEqual(doc.lastReload, doc.reloads[0]);
      const times = doc.reloads.map((r) => Date.parse(r.at));
      for (const [k, t] of times.entries()) {
        assert.ok(Number.isFinite(t), `reloads[${k}].at = ${doc.reloads[k]?.at}`);
        if (k > 0) assert.ok(t <= (times[k - 1] ?? 0), "newest first");
      }
      for (const entry of doc.reloads as ReloadEntry[]) {
        assert.deepEqual(Object.keys(entry).sort(), [
          "at",
          "changes",
          "errors",
          "outcome",
          "sha256",
          "summary",
          "trigger",
        ]);
        assert.match(entry.sha256, /^[0-9a-f]{64}$/);
        assert.equal(typeof entry.summary, "string");
        assert.ok(entry.summary.length > 0);
        if (entry.outcome === "applied") {
          assert.deepEqual(entry.errors, []);
          assert.equal(entry.summary, "listeners: 1 changed");
        }
      }
      const rejected = doc.reloads[0];
      assert.equal(rejected?.errors.length, 1);
      assert.match(rejected?.errors[0] ?? "", /proxy\.yaml:\d+:\d+: listeners\[0\]\.bogus: unknown key "bogus"$/);
      assert.equal(rejected?.summary, rejected?.errors[0]);
      assert.equal(doc.config.sha256, runningSha);
      assert.equal(sha256(readFileSync(gate.path, "utf8")) === runningSha, false, "the broken file is not what runs");
    } finally {
      await gate.close();
      await echo.close();
    }
  });
});
