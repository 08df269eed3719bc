// The reload queue and history, in process: a gateway that waits for the test before it
// finishes applying, so that triggers provably arrive while a reload runs. No sockets.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { pino } from "pino";
import type { RuntimeConfig } from "../../src/config/runtime.ts";
import { BindError } from "../../src/endpoint.ts";
import { type Applied, planReload } from "../../src/plan/plan.ts";
import { type ConfigApplier, HISTORY_LENGTH, Reloader } from "../../src/reloader.ts";
import { tempConfig } from "../support/cli.ts";
import { eventually } from "../support/net.ts";
import { configText } from "../support/reload.ts";

const version = (port: number) => configText([{ name: "a", listen: `127.0.0.1:${port}`, targets: ["127.0.0.1:9"] }]);
const silent = pino({ level: "silent" });

/** Applies nothing until the test says so; plans like the real gateway, over no bridges. */
function slowGateway() {
  const applied: RuntimeConfig[] = [];
  const waiting: { finish: (error?: Error) => void }[] = [];
  let running: RuntimeConfig = { listeners: [], admin: undefined, logLevel: "info", shutdownTimeoutMs: 0, workers: 1 };
  const gateway: ConfigApplier = {
    plan: (next) => planReload(running, next, [], Date.now()),
    apply(config) {
      applied.push(config);
      const planned = planReload(running, config, [], Date.now());
      return new Promise<Applied>((resolve, reject) => {
        waiting.push({
          finish: (error) => {
            if (error) return reject(error);
            running = config;
            resolve({ ...planned, closed: 0 });
          },
        });
      });
    },
  };
  /** Finishes the oldest apply still running, once it has started. */
  const finish = async (error?: Error) => {
    await eventually(() => waiting.length > 0, 2000, "an apply to start");
    waiting.shift()?.finish(error);
  };
  const ports = () => applied.map((c) => c.listeners[0]?.listen.port);
  return { gateway, finish, ports };
}

describe("the reload queue", () => {
  test("a burst of triggers during a reload makes exactly one more, of the newest file", async () => {
    const file = tempConfig(version(1001));
    try {
      const { gateway, finish, ports } = slowGateway();
      const reloader = new Reloader(file.path, gateway, silent, "sha of what runs");
      const first = reloader.reload("signal");
      await eventually(() => ports().length === 1, 2000, "the first apply");
      const burst: Promise<unknown>[] = [];
      for (const port of [1002, 1003, 1004]) {
        file.write(version(port));
        for (let i = 0; i < 5; i++) burst.push(reloader.reload("file"));
      }
      await finish();
      assert.equal((await first).outcome, "applied");
      await finish();
      const outcomes = await Promise.all(burst);
      assert.deepEqual(ports(), [1001, 1004]);
      assert.equal(new Set(outcomes).size, 1, "every trigger of the burst shares the one follow-up");
    } finally {
      file.remove();
    }
  });

  test("the queued run is reported under the trigger that came last, not the first one queued", async () => {
    const file = tempConfig(version(3001));
    try {
      const { gateway, finish, ports } = slowGateway();
      const reloader = new Reloader(file.path, gateway, silent, "sha of what runs");
      const first = reloader.reload("file");
      await eventually(() => ports().length === 1, 2000, "the first apply");
      file.write(version(3002));
      const queuedByFile = reloader.reload("file");
      const queuedByApi = reloader.reload("api");
      await finish();
      await first;
      await finish();
      const outcome = await queuedByFile;
      assert.equal(outcome, await queuedByApi);
      assert.equal(outcome.trigger, "api");
      assert.deepEqual(
        reloader.history.map((r) => r.trigger),
        ["api", "file", "start"],
      );
    } finally {
      file.remove();
    }
  });

  test("a reload that fails unexpectedly still runs the one queued behind it, and the queue keeps working", async () => {
    const file = tempConfig(version(2001));
    try {
      const { gateway, finish, ports } = slowGateway();
      const reloader = new Reloader(file.path, gateway, silent, "sha of what runs");
      const failing = reloader.reload("signal");
      await eventually(() => ports().length === 1, 2000, "the first apply");
      file.write(version(2002));
      const queued = reloader.reload("signal");
      await finish(new Error("internal: something unexpected"));
      await assert.rejects(failing, /internal: something unexpected/);
      await finish();
      assert.equal((await queued).outcome, "applied");
      // Later bursts queue as before.
      file.write(version(2003));
      const third = reloader.reload("signal");
      await eventually(() => ports().length === 3, 2000, "the third apply");
      file.write(version(2004));
      const fourth = reloader.reload("signal");
      await finish();
      await finish();
      await Promise.all([third, fourth]);
      assert.deepEqual(ports(), [2001, 2002, 2003, 2004]);
    } finally {
      file.remove();
    }
  });
});

describe("the reload history", () => {
  test("keeps the last 20, newest first, each with trigger, outcome, sha256 and a one-line summary", async () => {
    const file = tempConfig(version(4000));
    try {
      const { gateway, finish } = slowGateway();
      const reloader = new Reloader(file.path, gateway, silent, "sha at start");
      assert.equal(reloader.history[0]?.trigger, "start");
      for (let i = 1; i <= 25; i++) {
        file.write(i === 13 ? "version: 1\nlisteners: nope\n" : version(4000 + i));
        const reloading = reloader.reload(i % 2 ? "file" : "api");
        if (i !== 13) await finish();
        await reloading;
      }
      assert.equal(reloader.history.length, HISTORY_LENGTH);
      const newest = reloader.history[0];
      assert.equal(newest?.outcome, "applied");
      assert.equal(newest?.trigger, "file");
      assert.equal(newest?.summary, "listeners: 1 moved");
      assert.match(newest?.sha256 ?? "", /^[0-9a-f]{64}$/);
      const rejected = reloader.history.find((r) => r.outcome === "rejected");
      assert.ok(rejected, "the rejected reload is remembered");
      assert.match(rejected.errors[0] ?? "", /listeners/);
      assert.equal(rejected.summary, rejected.errors[0]);
      assert.ok(!reloader.history.some((r) => r.trigger === "start"), "the oldest ones are trimmed");
    } finally {
      file.remove();
    }
  });

  test("after close() (shutdown) every reload is rejected and nothing is applied", async () => {
    const file = tempConfig(version(5000));
    try {
      const { gateway, ports } = slowGateway();
      const reloader = new Reloader(file.path, gateway, silent, "sha at start");
      reloader.close();
      file.write(version(5001));
      const outcome = await reloader.reload("api");
      assert.equal(outcome.outcome, "rejected");
      assert.match(outcome.errors[0] ?? "", /shutting down/);
      assert.deepEqual(ports(), []);
    } finally {
      file.remove();
    }
  });

  test("a bind failure rejects the reload and keeps the running sha", async () => {
    const file = tempConfig(version(6000));
    try {
      const gateway: ConfigApplier = {
        plan: (next) => planReload(next, next, [], 0),
        apply: () => Promise.reject(new BindError("listener a: cannot listen on 127.0.0.1:6000")),
      };
      const reloader = new Reloader(file.path, gateway, silent, "sha at start");
      const outcome = await reloader.reload("signal");
      assert.equal(outcome.outcome, "rejected");
      assert.equal(reloader.runningSha256, "sha at start");
    } finally {
      file.remove();
    }
  });
});
