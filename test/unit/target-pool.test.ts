// The pool's dial: each target tried once in the strategy's order, counts kept and given
// back, a reload applied in place between two attempts. Real sockets on loopback: one
// server that accepts, and ports with nothing listening (refused at once).
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { pino } from "pino";
import type { TargetConfig } from "../../src/config/runtime.ts";
import { type PoolConfig, TargetPool } from "../../src/proxy/target-pool.ts";
import { freePorts, startServer, type TestServer } from "../support/net.ts";

const log = pino({ level: "silent" });
let server: TestServer;
let closed: number[];

before(async () => {
  server = await startServer(() => {});
  // Two distinct ports: the kernel may hand out the same free port twice in a row.
  closed = await freePorts(2);
});
after(() => server.close());

const target = (port: number): TargetConfig => ({
  address: { host: "127.0.0.1", port, family: 4 },
  key: `127.0.0.1:${port}`,
  weight: 1,
});

const config = (ports: number[]): PoolConfig => ({
  name: "test",
  targets: ports.map(target),
  balance: "round-robin",
  healthCheck: undefined,
  connectTimeoutMs: 1000,
});

test("dial tries each target once in order, records the failures, and holds a count until released", async () => {
  const pool = new TargetPool(config([closed[0] as number, server.port]), log);
  const dialed = await pool.dial("192.0.2.1");
  assert.ok(dialed.socket);
  assert.equal(dialed.target, `127.0.0.1:${server.port}`);
  assert.deepEqual(dialed.errors, [`127.0.0.1:${closed[0]} ECONNREFUSED`]);
  assert.deepEqual(
    pool.targets.map((t) => [t.open, t.connectFailures]),
    [
      [0, 1],
      [1, 0],
    ],
  );
  dialed.release();
  dialed.release();
  assert.equal(pool.targets[1]?.open, 0, "release gives the count back once");
  dialed.socket.destroy();
});

test("no target answers: every one tried once, no count held", async () => {
  const pool = new TargetPool(config(closed), log);
  const dialed = await pool.dial("192.0.2.1");
  assert.equal(dialed.socket, undefined);
  assert.equal(dialed.errors.length, 2);
  assert.deepEqual(
    pool.targets.map((t) => t.open),
    [0, 0],
  );
});

test("an update between two attempts is obeyed: the removed target is not dialed, the added one is", async () => {
  const pool = new TargetPool(config([closed[0] as number, closed[1] as number]), log);
  const dialing = pool.dial("192.0.2.1");
  // The first attempt is under way (counted); the reload swaps the second target.
  assert.equal(pool.targets[0]?.open, 1);
  pool.update(config([closed[0] as number, server.port]));
  const dialed = await dialing;
  assert.ok(dialed.socket);
  assert.equal(dialed.target, `127.0.0.1:${server.port}`);
  assert.deepEqual(dialed.errors, [`127.0.0.1:${closed[0]} ECONNREFUSED`]);
  dialed.socket.destroy();
});

test("a retired pool dials nothing; an aborted dial gives its count back", async () => {
  const pool = new TargetPool(config([server.port]), log);
  const abort = new AbortController();
  const dialing = pool.dial("192.0.2.1", abort.signal);
  abort.abort();
  assert.equal((await dialing).socket, undefined);
  assert.equal(pool.targets[0]?.open, 0);
  pool.retire();
  const dialed = await pool.dial("192.0.2.1");
  assert.equal(dialed.socket, undefined);
  assert.deepEqual(dialed.errors, []);
});
