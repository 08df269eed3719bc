// A worker thread: the ordinary gateway with its listeners, bound with SO_REUSEPORT beside
// every other worker's, counting bridges in the instance's shared slots. It does what the
// main thread asks (src/workers/pool.ts) and nothing on its own: no config file, no admin.
import { parentPort, workerData } from "node:worker_threads";
import { createBridgeEndMetrics } from "../admin/metrics.ts";
import { parseConfig, withFilters } from "../config/load.ts";
import { BindError } from "../endpoint.ts";
import { Gateway, type Prepared } from "../gateway.ts";
import { createLogger } from "../log.ts";
import {
  BRIDGE_ID_SPAN,
  type Envelope,
  type Reply,
  type Request,
  type WorkerListenerView,
  type WorkerReport,
  type WorkerStart,
} from "./messages.ts";
import { ClientTable, type SharedListenerSlots, SharedSlots } from "./shared-slots.ts";

const start = workerData as WorkerStart;
const port = parentPort;
if (!port) throw new Error("internal: src/workers/worker.ts runs in a worker thread");

const log = createLogger({ level: start.logLevel, pretty: start.pretty, sharedStdout: true }).child({
  worker: start.index,
});
const table = new ClientTable(start.table, start.index + 1);
const ledger = new ClientTable(start.ledger, start.index + 1);
let shared: Readonly<Record<string, SharedListenerSlots>> = {};
const ends = createBridgeEndMetrics();
const gateway = new Gateway(log, ends.bridgeEnded, {
  reusePort: true,
  slotsFor: (name) => {
    const slots = shared[name];
    if (!slots) throw new Error(`internal: no shared slots for listener ${name}`);
    return new SharedSlots(slots, start.index, table, ledger);
  },
});
let prepared: Prepared | undefined;

async function handle(request: Request): Promise<unknown> {
  switch (request.kind) {
    case "prepare": {
      const parsed = parseConfig(request.text, request.file);
      // The main thread checked the module files; the same content is the same module.
      const loaded = parsed.ok
        ? await withFilters(parsed, request.file, { insecure: true, expected: request.modules })
        : parsed;
      if (!loaded.ok) throw new Error(loaded.errors.join("; "));
      shared = request.slots;
      prepared = await gateway.prepare(loaded.config);
      return undefined;
    }
    case "commit": {
      const applied = gateway.commit(taken());
      return { closed: applied.closed };
    }
    case "abort":
      await gateway.abort(taken());
      return undefined;
    case "log-level":
      log.level = request.level;
      return undefined;
    case "bridges":
      return gateway.bridges().map((b) => ({ ...b, id: start.index * BRIDGE_ID_SPAN + b.id }));
    case "report":
      return {
        listeners: gateway.views().map(
          (v): WorkerListenerView => ({
            name: v.name,
            listen: v.listen,
            state: v.state,
            open: v.open,
            counters: v.counters,
            bytes: v.bytes(),
            ruleHits: v.ruleHits(),
            targets: v.targets,
          }),
        ),
        bridgeEnds: await ends.registry.getMetricsAsJSON(),
      } satisfies WorkerReport;
    case "shutdown":
      await gateway.shutdown(request.timeoutMs);
      await new Promise<void>((resolve) => log.flush(() => resolve()));
      return undefined;
    case "close-all":
      gateway.closeAllBridges();
      return undefined;
    case "exit":
      process.exit(1);
  }
}

function taken(): Prepared {
  if (!prepared) throw new Error("internal: nothing prepared");
  const p = prepared;
  prepared = undefined;
  return p;
}

port.on("message", (message: Envelope) => {
  handle(message).then(
    (value) => port.postMessage({ id: message.id, ok: true, value } satisfies Reply),
    (error: unknown) =>
      port.postMessage({
        id: message.id,
        ok: false,
        error: error instanceof Error ? error.message : String(error),
        bind: error instanceof BindError,
      } satisfies Reply),
  );
});
