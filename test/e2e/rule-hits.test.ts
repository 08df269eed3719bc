// Rule hit counters end to end: a known mix of loopback clients (127.0.0.2, .5, .6, .7,
// .9) against overlapping allow and deny entries, then /metrics, /status and the refusal
// lines must say exactly which entry decided each, and a reload must keep the counts of
// the entries it keeps.
import assert from "node:assert/strict";
import type { Socket } from "node:net";
import { test } from "node:test";
import { type EntryHitsDoc, scrape, status } from "../support/admin.ts";
import { echoes, startCountingEcho } from "../support/admission.ts";
import { type Gate, startGate } from "../support/cli.ts";
import { freePorts } from "../support/net.ts";

const BOUNDED = { timeout: 30_000 };

const config = (webPort: number, adminPort: number, target: string, allow: string, deny: string) => `version: 1
shutdownTimeout: 1s
admin:
  listen: 127.0.0.1:${adminPort}
acls:
  lab: [127.0.0.0/29, 10.0.0.0/8]
  quarantine: [127.0.0.7/32]
listeners:
  - name: web
    listen: 127.0.0.1:${webPort}
    targets: ["${target}"]
    maxConnectionsPerClient: 1
    allow: ${allow}
    deny: ${deny}
`;

async function closeBridge(gate: Gate, socket: Socket): Promise<void> {
  socket.end();
  await gate.bridgeEnd(socket);
  socket.destroy();
}

async function admitted(gate: Gate, port: number, address: string): Promise<void> {
  const client = await gate.dial(port, address);
  await echoes(client, `hello from ${address}`);
  await closeBridge(gate, client);
}

async function refused(gate: Gate, port: number, address: string) {
  const result = await gate.tryRefused(port, address);
  assert.notEqual(result.how, "timeout", `${address} should be refused`);
  return gate.refusalLine(result);
}

const counts = (entries: readonly EntryHitsDoc[]) => entries.map((e) => [e.rule, e.hits]);

test(
  "each client counts once, on the most specific entry that decided it; a reload keeps kept entries",
  BOUNDED,
  async () => {
    const target = await startCountingEcho();
    const [webPort = 0, adminPort = 0] = await freePorts(2);
    const started = Date.now();
    const gate = await startGate(
      config(
        webPort,
        adminPort,
        target.address,
        "[127.0.0.0/8, lab, 127.0.0.5]",
        "[127.0.0.6/31, quarantine, 192.0.2.0/24]",
      ),
    );
    try {
      // lab's /29 beats 127.0.0.0/8 for .2; the /32 written in place beats lab for .5.
      await admitted(gate, webPort, "127.0.0.2");
      await admitted(gate, webPort, "127.0.0.2");
      await admitted(gate, webPort, "127.0.0.5");
      // .9 is only in 127.0.0.0/8. Its second connection, while the first is open, is
      // refused by the per-client limit: it was let past the allow step all the same.
      const held = await gate.dial(webPort, "127.0.0.9");
      await echoes(held, "held");
      const limited = await refused(gate, webPort, "127.0.0.9");
      assert.equal(limited.reason, "limit");
      assert.equal(limited.entry, undefined, "only a deny refusal names an entry");
      await closeBridge(gate, held);
      // .7 is in both deny entries: quarantine's /32 is the more specific; .6 only in the /31.
      for (const address of ["127.0.0.7", "127.0.0.7", "127.0.0.6"]) await refused(gate, webPort, address);
      const line = await refused(gate, webPort, "127.0.0.7");
      assert.equal(line.reason, "deny");
      assert.equal(line.rule, "quarantine (127.0.0.7/32)");
      assert.equal(line.entry, "quarantine", "the entry as written: the hit counter's label");
      assert.equal(line.cidr, "127.0.0.7/32");
      assert.equal(target.accepted(), 4, "four bridges reached the target");

      const doc = await status(adminPort);
      const web = doc.listeners.find((l) => l.name === "web");
      assert.ok(web);
      assert.deepEqual(counts(web.rules.allow), [
        ["127.0.0.0/8", 2],
        ["lab", 2],
        ["127.0.0.5", 1],
      ]);
      assert.deepEqual(counts(web.rules.deny), [
        ["127.0.0.6/31", 1],
        ["quarantine", 3],
        ["192.0.2.0/24", 0],
      ]);
      for (const entry of [...web.rules.allow, ...web.rules.deny]) {
        if (entry.hits === 0) {
          assert.equal(entry.lastHitAt, null, `${entry.rule} was never hit`);
          continue;
        }
        const at = Date.parse(entry.lastHitAt ?? "");
        assert.ok(at >= started && at <= Date.now(), `${entry.rule}: lastHitAt ${entry.lastHitAt}`);
      }

      const metrics = await scrape(adminPort);
      const hits = (list: string, rule: string) =>
        metrics.value("tcpgate_rule_hits_total", { listener: "web", list, rule });
      assert.equal(metrics.types.get("tcpgate_rule_hits_total"), "counter");
      assert.deepEqual(
        metrics
          .all("tcpgate_rule_hits_total")
          .map((s) => [s.labels.list, s.labels.rule, s.value])
          .sort(),
        [
          ["allow", "127.0.0.0/8", 2],
          ["allow", "127.0.0.5", 1],
          ["allow", "lab", 2],
          ["deny", "127.0.0.6/31", 1],
          ["deny", "quarantine", 3],
        ],
        "one series per entry that decided a client; none for 192.0.2.0/24, never hit",
      );
      assert.equal(hits("deny", "quarantine"), 3);

      // The reload keeps lab, 127.0.0.0/8 and quarantine; 127.0.0.5 becomes 127.0.0.5/32,
      // another text, so a new entry that starts from 0.
      gate.write(
        config(webPort, adminPort, target.address, "[lab, 127.0.0.5/32, 127.0.0.0/8]", "[quarantine, 127.0.0.6/31]"),
      );
      process.kill(gate.pid, "SIGHUP");
      await gate.waitApplied(1);
      await admitted(gate, webPort, "127.0.0.5");
      await refused(gate, webPort, "127.0.0.7");
      const reloaded = (await status(adminPort)).listeners.find((l) => l.name === "web");
      assert.ok(reloaded);
      assert.deepEqual(counts(reloaded.rules.allow), [
        ["lab", 2],
        ["127.0.0.5/32", 1],
        ["127.0.0.0/8", 2],
      ]);
      assert.deepEqual(counts(reloaded.rules.deny), [
        ["quarantine", 4],
        ["127.0.0.6/31", 1],
      ]);
      const after = await scrape(adminPort);
      assert.equal(after.value("tcpgate_rule_hits_total", { listener: "web", list: "allow", rule: "127.0.0.5" }), 0);
      assert.equal(after.value("tcpgate_rule_hits_total", { listener: "web", list: "allow", rule: "127.0.0.5/32" }), 1);
      assert.equal(after.value("tcpgate_rule_hits_total", { listener: "web", list: "deny", rule: "quarantine" }), 4);
    } finally {
      await gate.close();
      await target.close();
    }
  },
);
