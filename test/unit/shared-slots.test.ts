// The shared slot counts behind maxConnections and maxConnectionsPerClient with several
// workers: the client table against a plain Map (fast-check), the limits as one worker
// sees them, giving back a dead worker's slots, and two worker threads hammering one
// listener's slots at once without ever exceeding a limit.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Worker } from "node:worker_threads";
import fc from "fast-check";
import { type ClientAddress, parseClientAddress } from "../../src/policy/address-match.ts";
import {
  ClientTable,
  createListenerCounters,
  reclaimWorkerSlots,
  type SharedListenerSlots,
  SharedSlots,
} from "../../src/workers/shared-slots.ts";
import type { HammerData, HammerResult } from "../support/slots-worker.ts";

const address = (text: string): ClientAddress => parseClientAddress(text) ?? assert.fail(text);

function oneWorker(limits: { maxConnections?: number; maxConnectionsPerClient?: number }) {
  const listener: SharedListenerSlots = { id: 1, counters: createListenerCounters() };
  const table = new ClientTable(ClientTable.create(64), 1);
  const ledger = new ClientTable(ClientTable.create(64), 1);
  const slots = new SharedSlots(listener, 0, table, ledger);
  const full = { maxConnections: limits.maxConnections, maxConnectionsPerClient: limits.maxConnectionsPerClient };
  return { listener, table, ledger, slots, take: (client: string) => slots.take(address(client), full) };
}

describe("client table", () => {
  const clients = ["10.0.0.1", "10.0.0.2", "2001:db8::1", "2001:db8::2", "::ffff:10.0.0.3", "192.0.2.200"];
  test("counts like a Map under any sequence of increments and decrements (small table: collisions, wrap-around, backshift)", () => {
    const op = fc.record({
      client: fc.constantFrom(...clients),
      listener: fc.integer({ min: 1, max: 3 }),
      up: fc.boolean(),
      by: fc.integer({ min: 1, max: 3 }),
    });
    fc.assert(
      fc.property(fc.array(op, { maxLength: 200 }), (ops) => {
        // 16 entries, 12 usable: 6 clients × 3 listeners = 18 keys overflow it.
        const table = new ClientTable(ClientTable.create(16));
        const model = new Map<string, number>();
        for (const o of ops) {
          const name = `${o.listener}/${address(o.client).text}`;
          table.setKey(o.listener, address(o.client));
          const before = model.get(name) ?? 0;
          if (o.up) {
            const fits = table.increment(o.by);
            assert.equal(fits, before > 0 || model.size < 12, `increment ${name}`);
            if (fits) model.set(name, before + o.by);
          } else {
            table.decrement(o.by);
            if (before - o.by > 0) model.set(name, before - o.by);
            else model.delete(name);
          }
          assert.equal(table.size, model.size);
          for (const c of clients) {
            for (let l = 1; l <= 3; l++) {
              table.setKey(l, address(c));
              assert.equal(table.count(), model.get(`${l}/${address(c).text}`) ?? 0, `count of ${l}/${c}`);
            }
          }
        }
      }),
      { numRuns: 150 },
    );
  });

  test("an IPv4 client and its IPv4-mapped IPv6 form are one key", () => {
    const table = new ClientTable(ClientTable.create(16));
    table.setKey(1, address("10.0.0.1"));
    table.increment();
    table.setKey(1, address("::ffff:10.0.0.1"));
    assert.equal(table.count(), 1);
  });
});

describe("shared slots, one worker's view", () => {
  test("maxConnections: exactly that many, then refused; a release frees one", () => {
    const { take, slots } = oneWorker({ maxConnections: 3 });
    const taken = ["10.0.0.1", "10.0.0.2", "10.0.0.3"].map(take);
    assert.deepEqual(taken, ["listener", "listener", "listener"]);
    assert.equal(take("10.0.0.4"), "maxConnections");
    slots.release(address("10.0.0.1"), "listener");
    assert.equal(take("10.0.0.4"), "listener");
  });

  test("maxConnectionsPerClient: per address; the total still applies and is named first", () => {
    const { take, slots, table } = oneWorker({ maxConnections: 3, maxConnectionsPerClient: 2 });
    assert.equal(take("10.0.0.1"), "listener+client");
    assert.equal(take("10.0.0.1"), "listener+client");
    assert.equal(take("10.0.0.1"), "maxConnectionsPerClient");
    assert.equal(take("10.0.0.2"), "listener+client");
    assert.equal(take("10.0.0.2"), "maxConnections");
    assert.equal(take("10.0.0.1"), "maxConnections");
    slots.release(address("10.0.0.1"), "listener+client");
    slots.release(address("10.0.0.1"), "listener+client");
    assert.equal(table.size, 1, "a client with no open bridge leaves the table");
    assert.equal(take("10.0.0.3"), "listener+client");
  });

  test("a full client table refuses a new client, never an existing one", () => {
    const listener: SharedListenerSlots = { id: 1, counters: createListenerCounters() };
    const table = new ClientTable(ClientTable.create(4), 1);
    const slots = new SharedSlots(listener, 0, table, new ClientTable(ClientTable.create(4), 1));
    const limits = { maxConnections: undefined, maxConnectionsPerClient: 5 };
    for (const c of ["10.0.0.1", "10.0.0.2", "10.0.0.3"])
      assert.equal(slots.take(address(c), limits), "listener+client");
    assert.equal(slots.take(address("10.0.0.4"), limits), "clientTableFull");
    assert.equal(slots.take(address("10.0.0.1"), limits), "listener+client");
    assert.equal(new Int32Array(listener.counters)[0], 4, "the refused client holds no slot");
  });

  test("the slots of a worker that died are given back, and only its", () => {
    const listener: SharedListenerSlots = { id: 7, counters: createListenerCounters() };
    const table = ClientTable.create(64);
    const ledgers = [ClientTable.create(64), ClientTable.create(64)];
    const worker = (w: number) =>
      new SharedSlots(
        listener,
        w,
        new ClientTable(table, w + 1),
        new ClientTable(ledgers[w] as SharedArrayBuffer, w + 1),
      );
    const limits = { maxConnections: 10, maxConnectionsPerClient: 2 };
    const [a, b] = [worker(0), worker(1)];
    a.take(address("10.0.0.1"), limits);
    a.take(address("10.0.0.2"), limits);
    b.take(address("10.0.0.1"), limits);
    const main = new ClientTable(table);
    const reclaimed = reclaimWorkerSlots(0, [listener], main, new ClientTable(ledgers[0] as SharedArrayBuffer));
    assert.equal(reclaimed, 2);
    assert.equal(new Int32Array(listener.counters)[0], 1);
    main.setKey(7, address("10.0.0.1"));
    assert.equal(main.count(), 1, "worker 1's bridge from 10.0.0.1 still counts");
    assert.equal(main.size, 1);
    const fresh = worker(0);
    assert.equal(fresh.take(address("10.0.0.1"), limits), "listener+client");
    assert.equal(fresh.take(address("10.0.0.1"), limits), "maxConnectionsPerClient");
  });

  test("a lock left held by a worker that died is released", () => {
    const buffer = ClientTable.create(16);
    new ClientTable(buffer, 3).lock();
    const main = new ClientTable(buffer);
    assert.equal(main.releaseIfHeldBy(1), false);
    assert.equal(main.releaseIfHeldBy(3), true);
    main.lock();
    main.unlock();
  });
});

describe("shared slots across worker threads", () => {
  test("two workers hammering one listener never exceed maxConnections or maxConnectionsPerClient, and end at zero", async () => {
    const listener: SharedListenerSlots = { id: 1, counters: createListenerCounters() };
    const table = ClientTable.create(1024);
    const clients = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "2001:db8::1"];
    const truth = new SharedArrayBuffer(4 * (1 + clients.length));
    const limits = { maxConnections: 5, maxConnectionsPerClient: 2 };
    const url = new URL("../support/slots-worker.ts", import.meta.url).href;
    const run = (worker: number) => {
      const data: HammerData = {
        worker,
        listener,
        table,
        ledger: ClientTable.create(1024),
        truth,
        clients,
        limits,
        rounds: 100_000,
      };
      const thread = new Worker(
        `import("tsx/esm/api").then(({ register }) => { register(); return import(${JSON.stringify(url)}); })`,
        { eval: true, workerData: data },
      );
      return new Promise<HammerResult>((resolve, reject) => {
        const timer = setTimeout(() => {
          thread.terminate();
          reject(new Error(`worker ${worker} did not finish in 30 s`));
        }, 30_000);
        thread.once("message", (result: HammerResult) => {
          clearTimeout(timer);
          resolve(result);
        });
        thread.once("error", reject);
      });
    };
    const results = await Promise.all([run(0), run(1)]);
    for (const r of results) {
      assert.deepEqual(r.violations, []);
      assert.ok(r.taken > 1000 && r.refused > 1000, `both taken and refused often: ${JSON.stringify(r)}`);
    }
    assert.deepEqual([...new Int32Array(listener.counters).slice(0, 3)], [0, 0, 0]);
    assert.equal(new ClientTable(table).size, 0);
  });
});
