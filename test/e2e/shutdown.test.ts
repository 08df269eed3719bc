// Shutdown (SPEC §1, issue 12 item 5): once SIGTERM has come, nothing binds, accepts or
// reloads again, while open bridges drain; and the log says what happened in the order it
// happened, down to the last line.
import assert from "node:assert/strict";
import type { Socket } from "node:net";
import { describe, test } from "node:test";
import { pino } from "pino";
import { parseConfig } from "../../src/config/load.ts";
import { Gateway, ShutdownError } from "../../src/gateway.ts";
import { requestFrom, status } from "../support/admin.ts";
import { echoes } from "../support/admission.ts";
import type { LogLine } from "../support/cli.ts";
import { type Gate, startGate } from "../support/cli.ts";
import { freePorts, startEcho, type TestServer } from "../support/net.ts";
import { connectOutcome } from "../support/reload.ts";

const config = (ports: { admin: number; web: number; extra?: number }, target: string, shutdownTimeout: string) =>
  [
    "version: 1",
    `shutdownTimeout: ${shutdownTimeout}`,
    `admin: { listen: "127.0.0.1:${ports.admin}" }`,
    "listeners:",
    `  - { name: web, listen: "127.0.0.1:${ports.web}", targets: ["${target}"] }`,
    ...(ports.extra === undefined
      ? []
      : [`  - { name: extra, listen: "127.0.0.1:${ports.extra}", targets: ["${target}"] }`]),
    "",
  ].join("\n");

const msg = (l: LogLine) => (typeof l.msg === "string" ? l.msg : "");

/** Starts a gate with one open bridge from 127.0.0.2, SIGTERMs it, and waits until it drains. */
async function drainingGate(
  echo: TestServer,
  shutdownTimeout: string,
): Promise<{ gate: Gate; client: Socket; ports: { admin: number; web: number; extra: number } }> {
  const [admin = 0, web = 0, extra = 0] = await freePorts(3);
  const gate = await startGate(config({ admin, web }, echo.address, shutdownTimeout));
  try {
    const client = await gate.dial(web, "127.0.0.2");
    await echoes(client, "open");
    process.kill(gate.pid, "SIGTERM");
    await gate.waitForLog((l) => msg(l) === "waiting for open bridges to finish");
    return { gate, client, ports: { admin, web, extra } };
  } catch (error) {
    await gate.close();
    throw error;
  }
}

describe("shutdown", () => {
  test("a reload asked for while bridges drain is rejected, binds nothing, and the process exits 0 after the drain", {
    timeout: 60_000,
  }, async () => {
    const echo = await startEcho();
    const { gate, client, ports } = await drainingGate(echo, "20s");
    try {
      const before = await status(ports.admin);
      assert.equal(before.state, "shutting-down");
      // The edit that would add a listener on a new port.
      gate.write(config(ports, echo.address, "20s"));

      const reply = await requestFrom(ports.admin, "/reload", { method: "POST" });
      assert.equal(reply.status, 422, reply.body);
      const outcome = JSON.parse(reply.body) as { outcome: string; errors: string[]; sha256: string };
      assert.equal(outcome.outcome, "rejected");
      assert.match(outcome.errors.join("\n"), /shutting down/);
      assert.equal(outcome.sha256, before.config.sha256, "the running config stays");

      process.kill(gate.pid, "SIGHUP");
      await gate.waitForLog((l) => msg(l) === "SIGHUP ignored: shutting down");

      const after = await status(ports.admin);
      assert.deepEqual(
        after.listeners.map((l) => l.name),
        ["web"],
        "no listener of the edit was added",
      );
      assert.equal(after.config.sha256, before.config.sha256);
      assert.equal(await connectOutcome(ports.extra), "ECONNREFUSED", "the edit's port is not bound");
      assert.equal(await connectOutcome(ports.web), "ECONNREFUSED", "the running listener stopped accepting");
      assert.equal(gate.logs.filter((l) => msg(l) === "reload applied").length, 0);

      // The open bridge is still a bridge: the drain waits for it.
      await echoes(client, "still here");
      client.end();
      assert.equal(await gate.exited, 0);
      const end = gate.logs.find((l) => msg(l) === "bridge closed");
      assert.equal(end?.end, "client-closed");
    } finally {
      client.destroy();
      await gate.close();
      await echo.close();
    }
  });

  test("SIGHUP and SIGTERM back to back, five times: a reload caught by the shutdown binds nothing", {
    timeout: 150_000,
  }, async () => {
    const echo = await startEcho();
    try {
      for (let run = 0; run < 5; run++) {
        const [admin = 0, web = 0, extra = 0] = await freePorts(3);
        const gate = await startGate(config({ admin, web }, echo.address, "20s"));
        const client = await gate.dial(web, "127.0.0.2");
        try {
          await echoes(client, "open");
          gate.write(config({ admin, web, extra }, echo.address, "20s"));
          // The reload starts first (it reads the file asynchronously), and the shutdown
          // comes while it runs: whichever step it reached, it must give everything back.
          process.kill(gate.pid, "SIGHUP");
          process.kill(gate.pid, "SIGTERM");
          await gate.waitForLog((l) => msg(l) === "shutting down");
          await gate.waitForLog((l) => msg(l) === "waiting for open bridges to finish");
          // The SIGHUP's reload has run to its end (or never started) once one of these is logged.
          await gate.waitForLog(
            (l) =>
              msg(l).startsWith("reload rejected") ||
              msg(l) === "reload applied" ||
              msg(l).startsWith("SIGHUP ignored"),
          );
          assert.equal(await connectOutcome(extra), "ECONNREFUSED", `run ${run}: the reload's new port is not bound`);
          assert.equal(await connectOutcome(web), "ECONNREFUSED", `run ${run}: nothing accepts after SIGTERM`);
          assert.equal(gate.logs.filter((l) => msg(l) === "reload applied").length, 0, `run ${run}`);
          await echoes(client, "drains");
          client.end();
          assert.equal(await gate.exited, 0, `run ${run}: ${gate.stderr()}`);
        } finally {
          client.destroy();
          await gate.close();
        }
      }
    } finally {
      await echo.close();
    }
  });

  test("ten shutdowns: the log reads shutting down, bridge closed, stopped, in that order, every time", {
    timeout: 240_000,
  }, async () => {
    const echo = await startEcho();
    try {
      for (let run = 0; run < 10; run++) {
        // Even runs: the client ends its bridge during the drain; odd runs: the shutdown
        // timeout ends it.
        const byTimeout = run % 2 === 1;
        const { gate, client } = await drainingGate(echo, byTimeout ? "300ms" : "20s");
        try {
          if (!byTimeout) client.end();
          assert.equal(await gate.exited, 0, `run ${run}: ${gate.stderr()}`);
          const order = gate.logs
            .map(msg)
            .filter((m) =>
              ["shutting down", "waiting for open bridges to finish", "bridge closed", "stopped"].includes(m),
            );
          assert.deepEqual(
            order,
            ["shutting down", "waiting for open bridges to finish", "bridge closed", "stopped"],
            `run ${run}`,
          );
          assert.equal(
            gate.logs.find((l) => msg(l) === "bridge closed")?.end,
            byTimeout ? "shutdown" : "client-closed",
          );
          assert.equal(msg(gate.logs.at(-1) ?? {}), "stopped", `run ${run}: "stopped" is the last line`);
        } finally {
          client.destroy();
          await gate.close();
        }
      }
    } finally {
      await echo.close();
    }
  });

  // The CLI cannot hold a reload halfway through its binds; the gateway in process can:
  // apply() has bound its new address when shutdown() begins, and must give it back.
  test("in process: a reload still binding when shutdown begins closes what it bound and commits nothing", {
    timeout: 20_000,
  }, async () => {
    const [a = 0, b = 0] = await freePorts(2);
    const load = (listeners: string) => {
      const loaded = parseConfig(`version: 1\nlisteners:\n${listeners}`, "test.yaml");
      if (!loaded.ok) throw new Error(loaded.errors.join("\n"));
      return loaded.config;
    };
    const first = `  - { name: a, listen: "127.0.0.1:${a}", targets: ["127.0.0.1:9"] }\n`;
    const gateway = new Gateway(pino({ level: "silent" }));
    await gateway.start(load(first));
    const applying = gateway.apply(
      load(`${first}  - { name: b, listen: "127.0.0.1:${b}", targets: ["127.0.0.1:9"] }\n`),
    );
    const stopping = gateway.shutdown(0);
    await assert.rejects(applying, ShutdownError);
    await stopping;
    assert.deepEqual(
      gateway.config?.listeners.map((l) => l.name),
      ["a"],
    );
    assert.equal(await connectOutcome(b), "ECONNREFUSED", "the reload's new listener is closed");
    assert.equal(await connectOutcome(a), "ECONNREFUSED", "the running one stopped accepting");
    await assert.rejects(gateway.apply(load(first)), ShutdownError, "nothing applies after shutdown");
  });
});
