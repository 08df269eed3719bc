// One side of the shared-slots hammer test: a worker thread that takes and releases
// slots of one listener as fast as it can, and checks after every take that no limit
// was ever exceeded (the test's own counts, kept beside the slots', say what is open).
import { isMainThread, parentPort, workerData } from "node:worker_threads";
import { parseClientAddress } from "../../src/policy/address-match.ts";
import type { Taken } from "../../src/proxy/slots.ts";
import { ClientTable, type SharedListenerSlots, SharedSlots } from "../../src/workers/shared-slots.ts";

export interface HammerData {
  readonly worker: number;
  readonly listener: SharedListenerSlots;
  readonly table: SharedArrayBuffer;
  readonly ledger: SharedArrayBuffer;
  /** [open in total, open per client 0..n-1]: what the workers really hold. */
  readonly truth: SharedArrayBuffer;
  readonly clients: readonly string[];
  readonly limits: { maxConnections: number; maxConnectionsPerClient: number };
  readonly rounds: number;
}

export interface HammerResult {
  readonly taken: number;
  readonly refused: number;
  readonly violations: readonly string[];
}

function hammer(data: HammerData): HammerResult {
  const table = new ClientTable(data.table, data.worker + 1);
  const slots = new SharedSlots(data.listener, data.worker, table, new ClientTable(data.ledger, data.worker + 1));
  const truth = new Int32Array(data.truth);
  const clients = data.clients.map((c) => parseClientAddress(c) ?? assertNever(c));
  const held: { client: number; taken: Taken }[] = [];
  const violations: string[] = [];
  let taken = 0;
  let refused = 0;
  let seed = data.worker * 7919 + 1;
  const random = (n: number) => {
    seed = (Math.imul(seed, 1103515245) + 12345) & 0x7fffffff;
    return (seed >>> 16) % n;
  };
  for (let round = 0; round < data.rounds; round++) {
    if (held.length > 0 && random(2) === 0) {
      const [h] = held.splice(random(held.length), 1);
      if (!h) continue;
      Atomics.sub(truth, 0, 1);
      Atomics.sub(truth, 1 + h.client, 1);
      slots.release(clients[h.client] ?? assertNever(h.client), h.taken);
      continue;
    }
    const client = random(clients.length);
    const result = slots.take(clients[client] ?? assertNever(client), data.limits);
    if (result !== "listener" && result !== "listener+client") {
      refused++;
      continue;
    }
    taken++;
    held.push({ client, taken: result });
    const total = Atomics.add(truth, 0, 1) + 1;
    const fromClient = Atomics.add(truth, 1 + client, 1) + 1;
    if (total > data.limits.maxConnections) violations.push(`${total} open > maxConnections`);
    if (fromClient > data.limits.maxConnectionsPerClient) violations.push(`${fromClient} from one client`);
  }
  for (const h of held) {
    Atomics.sub(truth, 0, 1);
    Atomics.sub(truth, 1 + h.client, 1);
    slots.release(clients[h.client] ?? assertNever(h.client), h.taken);
  }
  return { taken, refused, violations: violations.slice(0, 5) };
}

function assertNever(value: unknown): never {
  throw new Error(`internal: ${String(value)}`);
}

if (!isMainThread && parentPort) parentPort.postMessage(hammer(workerData as HammerData));
