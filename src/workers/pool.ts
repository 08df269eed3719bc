// The main thread's side of `workers` > 1: it starts the worker threads, applies a config
// to all of them or none (prepare everywhere, then commit everywhere, else abort), plans
// over the open bridges of all, sums what they report for /status and /metrics (keeping
// what workers that are gone had counted), replaces a worker that dies and drains them
// all on shutdown. To the reloader it is one more ConfigApplier. The admin endpoint stays
// on the main thread, in a gateway of its own with no listeners, bound in the same
// transaction.

import { Worker } from "node:worker_threads";
import { AggregatorRegistry, type PrometheusContentType } from "prom-client";
import type { BridgeEndSamples } from "../admin/metrics.ts";
import type { ListenerView, WorkerView } from "../admin/view.ts";
import { filterModules } from "../config/filter-load.ts";
import { configSource } from "../config/load.ts";
import type { ListenerConfig, RuntimeConfig } from "../config/runtime.ts";
import { BindError } from "../endpoint.ts";
import type { Gateway, Prepared } from "../gateway.ts";
import type { Logger } from "../log.ts";
import { type Applied, type OpenBridge, type PlannedReload, planReload } from "../plan/plan.ts";
import { addCounters, type ListenerCounters } from "../proxy/listener.ts";
import type { RuleHitsSnapshot } from "../proxy/rule-hits.ts";
import type { ConfigApplier } from "../reloader.ts";
import type {
  CommitReply,
  Envelope,
  Reply,
  Request,
  WorkerListenerView,
  WorkerReport,
  WorkerStart,
} from "./messages.ts";
import { ClientTable, createListenerCounters, reclaimWorkerSlots, type SharedListenerSlots } from "./shared-slots.ts";

/** A worker that does not answer within this is treated as dead. */
const REQUEST_TIMEOUT_MS = 30_000;

class WorkerHandle {
  readonly thread: Worker;
  readonly threadId: number;
  readonly startedAt = Date.now();
  readonly exited: Promise<number>;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  /** Set when the pool stops it on purpose: its exit is no death. */
  retiring = false;
  /** Set once its thread has exited: it answers nothing any more. */
  gone = false;
  /** What it said at the last refresh. */
  last: WorkerReport | undefined;

  constructor(
    readonly index: number,
    readonly ledger: SharedArrayBuffer,
    start: WorkerStart,
    /** How many workers at this index died before this one. */
    readonly replaced = 0,
  ) {
    const ext = import.meta.url.endsWith(".ts") ? "ts" : "js";
    this.thread = new Worker(new URL(`./worker.${ext}`, import.meta.url), { workerData: start });
    this.threadId = this.thread.threadId;
    this.thread.on("message", (reply: Reply) => {
      const waiting = this.pending.get(reply.id);
      if (!waiting) return;
      this.pending.delete(reply.id);
      if (reply.ok) waiting.resolve(reply.value);
      else waiting.reject(reply.bind ? new BindError(reply.error) : new Error(reply.error));
    });
    this.exited = new Promise((resolve) => {
      this.thread.once("exit", (code) => {
        this.gone = true;
        for (const w of this.pending.values()) w.reject(new BindError(`worker ${index} exited (${code})`));
        this.pending.clear();
        resolve(code);
      });
    });
    // An uncaught error ends the thread; "exit" follows and says what to do about it.
    this.thread.on("error", () => {});
  }

  request<T>(request: Request): Promise<T> {
    if (this.gone) return Promise.reject(new BindError(`worker ${this.index} has exited`));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new BindError(`worker ${this.index} did not answer ${request.kind} within ${REQUEST_TIMEOUT_MS} ms`));
      }, REQUEST_TIMEOUT_MS);
      this.pending.set(id, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v as T);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.thread.postMessage({ ...request, id } satisfies Envelope);
    });
  }
}

export class WorkerPool implements ConfigApplier {
  private workers: WorkerHandle[] = [];
  /** Workers removed by a reload, their bridges finishing. */
  private readonly retiring = new Set<WorkerHandle>();
  /**
   * What workers that are gone (removed by a reload, or dead) had counted, by listener
   * name, added to the live ones' so that totals never go backwards.
   */
  private readonly goneCounts = new Map<string, ListenerCounters>();
  /** Their bridge-end metrics, added up as each one goes (one after the other). */
  private goneEnds: Promise<BridgeEndSamples> = Promise.resolve([]);
  private readonly slots = new Map<string, SharedListenerSlots>();
  private readonly table = ClientTable.create();
  private running: RuntimeConfig | undefined;
  private applied = 0;
  private stopping = false;
  /** Reloads and replacements of dead workers, one at a time. */
  private queue: Promise<unknown> = Promise.resolve();
  /** The last config of every listener seen, for the views of draining ones. */
  private readonly listenerConfigs = new Map<string, ListenerConfig>();
  private snapshot: ListenerView[] = [];

  constructor(
    private readonly log: Logger,
    /** The main thread's gateway: the admin endpoint, no listeners. */
    private readonly main: Gateway,
    private readonly logging: { level: () => string; pretty: boolean },
  ) {
    // For the tests only: a worker that dies must be replaced, and they need one to die.
    if (process.env.TCPGATE_TEST_WORKER_EXIT_SIGNAL === "SIGUSR2") {
      process.on("SIGUSR2", () => void this.workers[0]?.request({ kind: "exit" }).catch(() => {}));
    }
  }

  get config(): RuntimeConfig | undefined {
    return this.running;
  }

  get appliedAt(): number {
    return this.applied;
  }

  async start(config: RuntimeConfig): Promise<void> {
    await this.apply(config);
    for (const l of config.listeners) {
      this.log.info(
        { listener: l.name, listen: l.listenKey, targets: l.targets.map((t) => t.key), workers: config.workers },
        "listening",
      );
    }
    if (config.admin) this.log.info({ listen: config.admin.listenKey }, "admin endpoint listening");
  }

  async plan(next: RuntimeConfig): Promise<PlannedReload> {
    const bridges = await this.bridges();
    return planReload(this.running ?? { ...next, listeners: [], admin: undefined }, next, bridges, Date.now());
  }

  apply(next: RuntimeConfig): Promise<Applied> {
    const run = this.queue.then(() => this.applyNow(next));
    this.queue = run.catch(() => {});
    return run;
  }

  /** Asks every worker for its counts and sums them; /status and /metrics then read them without waiting. */
  async refresh(): Promise<void> {
    const asked = this.alive();
    await Promise.all(
      asked.map(async (w) => {
        w.last = await w.request<WorkerReport>({ kind: "report" }).catch(() => w.last);
      }),
    );
    // A worker that exited meanwhile has been folded into the gone counts.
    const byName = new Map<string, WorkerListenerView[]>();
    for (const view of this.alive().flatMap((w) => w.last?.listeners ?? [])) {
      const key = `${view.state}/${view.name}`;
      byName.set(key, [...(byName.get(key) ?? []), view]);
    }
    this.snapshot = [...byName.values()].map((views) => summed(views, this.listenerConfigs, this.goneCounts));
  }

  views(): ListenerView[] {
    return this.snapshot;
  }

  /** Each worker, serving, draining or dead, as the last refresh found it. */
  workerViews(): WorkerView[] {
    return [...this.workers, ...this.retiring].map((w) => {
      const listeners = w.last?.listeners ?? [];
      return {
        index: w.index,
        threadId: w.threadId,
        state: w.gone ? "dead" : w.retiring ? "draining" : "serving",
        startedAt: w.startedAt,
        open: listeners.reduce((n, l) => n + l.open, 0),
        accepted: listeners.reduce((n, l) => n + l.counters.accepted, 0),
        replaced: w.replaced,
      };
    });
  }

  /** The bridge-end metrics of every worker there is or was, as the last refresh found them. */
  async bridgeEnds(): Promise<BridgeEndSamples[]> {
    const live = this.alive().flatMap((w) => (w.last ? [w.last.bridgeEnds] : []));
    return [await this.goneEnds, ...live];
  }

  setLogLevel(level: string): void {
    for (const w of this.workers) w.request({ kind: "log-level", level }).catch(() => {});
  }

  /** SIGTERM: every worker stops accepting and drains within timeoutMs; then the admin endpoint goes. */
  async shutdown(timeoutMs: number): Promise<void> {
    this.stopping = true;
    await this.queue;
    await Promise.all(
      this.workers.map(async (w) => {
        await w.request({ kind: "shutdown", timeoutMs }).catch(() => {});
        w.retiring = true;
        await w.thread.terminate();
      }),
    );
    await this.main.shutdown(0);
  }

  closeAllBridges(): void {
    for (const w of this.workers) w.request({ kind: "close-all" }).catch(() => {});
  }

  private async bridges(): Promise<OpenBridge[]> {
    const all = await Promise.all(this.workers.map((w) => w.request<OpenBridge[]>({ kind: "bridges" })));
    return all.flat();
  }

  private async applyNow(next: RuntimeConfig): Promise<Applied> {
    const source = configSource(next);
    if (!source) throw new Error("internal: a config without its text cannot reach the workers");
    const planned = await this.plan(next);
    for (const l of next.listeners) {
      if (!this.slots.has(l.name))
        this.slots.set(l.name, { id: this.slots.size + 1, counters: createListenerCounters() });
    }
    const kept = this.workers.slice(0, next.workers);
    const added = Array.from({ length: Math.max(0, next.workers - this.workers.length) }, (_, i) =>
      this.spawn(this.workers.length + i),
    );
    const targets = [...kept, ...added];
    const request: Request = {
      kind: "prepare",
      text: source.text,
      file: source.file,
      modules: filterModules(next),
      slots: Object.fromEntries(this.slots),
    };
    const results = await Promise.allSettled(targets.map((w) => w.request(request)));
    let main: Prepared | undefined;
    const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
    try {
      if (failed) throw failed.reason;
      main = await this.main.prepare({ ...next, listeners: [] });
    } catch (error) {
      await Promise.all(
        targets.map((w, i) =>
          results[i]?.status === "fulfilled" ? w.request({ kind: "abort" }).catch(() => {}) : undefined,
        ),
      );
      await Promise.all(added.map((w) => this.retire(w, 0)));
      throw error;
    }
    // The commit: every worker swaps, then the main thread. Nothing here binds or fails.
    const commits = await Promise.all(
      targets.map((w) => w.request<CommitReply>({ kind: "commit" }).catch(() => ({ closed: 0 }))),
    );
    this.main.commit(main);
    const removed = this.workers.slice(next.workers);
    this.workers = targets;
    this.running = next;
    this.applied = Date.now();
    for (const l of next.listeners) this.listenerConfigs.set(l.name, l);
    // Fewer workers: the removed ones stop accepting (the others keep the addresses) and drain.
    for (const w of removed) {
      this.log.info({ worker: w.index }, "worker removed by reload: draining its bridges");
      this.retiring.add(w);
      void this.retire(w, next.shutdownTimeoutMs);
    }
    return { ...planned, closed: commits.reduce((n, c) => n + c.closed, 0) };
  }

  private spawn(index: number, ledger = ClientTable.create(), replaced = 0): WorkerHandle {
    const start = { index, logLevel: this.logging.level(), pretty: this.logging.pretty, table: this.table, ledger };
    const worker = new WorkerHandle(index, ledger, start, replaced);
    worker.exited.then((code) => this.exited(worker, code));
    return worker;
  }

  /** Drains a worker's bridges for up to timeoutMs, then ends its thread; what it counted stays. */
  private async retire(worker: WorkerHandle, timeoutMs: number): Promise<void> {
    worker.retiring = true;
    await worker.request({ kind: "shutdown", timeoutMs }).catch(() => {});
    worker.last = await worker.request<WorkerReport>({ kind: "report" }).catch(() => worker.last);
    await worker.thread.terminate();
  }

  private alive(): WorkerHandle[] {
    return [...this.workers, ...this.retiring].filter((w) => !w.gone);
  }

  /** Keeps what a worker that is gone had counted (a dead one: as of the last refresh). */
  private keepCounts(worker: WorkerHandle): void {
    this.retiring.delete(worker);
    for (const view of worker.last?.listeners ?? []) {
      const counted = { ...view.counters, bytesUpClosed: view.bytes.up, bytesDownClosed: view.bytes.down };
      const past = this.goneCounts.get(view.name);
      this.goneCounts.set(view.name, past ? addCounters(past, counted) : counted);
    }
    const ends = worker.last?.bridgeEnds;
    if (ends) {
      this.goneEnds = this.goneEnds.then((past) =>
        AggregatorRegistry.aggregate<PrometheusContentType>([past, ends]).getMetricsAsJSON(),
      );
    }
    worker.last = undefined;
  }

  private exited(worker: WorkerHandle, code: number): void {
    this.keepCounts(worker);
    const reclaimed = reclaimWorkerSlots(
      worker.index,
      this.slots.values(),
      new ClientTable(this.table),
      new ClientTable(worker.ledger),
    );
    if (worker.retiring || this.stopping || !this.workers.includes(worker)) return;
    this.log.error(
      { worker: worker.index, code, bridgesLost: reclaimed },
      "worker died: its open bridges are lost; starting a replacement",
    );
    const replace = async () => {
      if (this.stopping || !this.running) return;
      const fresh = this.spawn(worker.index, worker.ledger, worker.replaced + 1);
      const source = configSource(this.running);
      if (!source) return;
      try {
        await fresh.request({
          kind: "prepare",
          text: source.text,
          file: source.file,
          modules: filterModules(this.running),
          slots: Object.fromEntries(this.slots),
        });
        await fresh.request({ kind: "commit" });
        this.workers = this.workers.map((w) => (w === worker ? fresh : w));
        this.log.info({ worker: worker.index }, "worker replaced");
      } catch (error) {
        this.log.error({ worker: worker.index, error: String(error) }, "could not replace a worker that died");
        await this.retire(fresh, 0);
      }
    };
    const run = this.queue.then(replace);
    this.queue = run.catch(() => {});
  }
}

/** Each entry's hits over the workers (all run the same config, so the lists line up). */
function sumRuleHits(all: RuleHitsSnapshot[]): RuleHitsSnapshot {
  const sum = (list: keyof RuleHitsSnapshot) =>
    (all[0]?.[list] ?? []).map((entry, i) => {
      const same = all.map((s) => s[list][i]).filter((e) => e?.rule === entry.rule);
      const last = Math.max(...same.map((e) => e?.lastHitAt ?? 0));
      return {
        rule: entry.rule,
        hits: same.reduce((n, e) => n + (e?.hits ?? 0), 0),
        lastHitAt: last > 0 ? last : undefined,
      };
    });
  return { allow: sum("allow"), deny: sum("deny") };
}

/** One listener's view summed over the workers that report it, and (serving) the gone ones. */
function summed(
  views: WorkerListenerView[],
  configs: ReadonlyMap<string, ListenerConfig>,
  gone: ReadonlyMap<string, ListenerCounters>,
): ListenerView {
  const first = views[0] as WorkerListenerView;
  const past = first.state === "serving" ? gone.get(first.name) : undefined;
  const targets = new Map<string, ListenerView["targets"][number]>();
  for (const t of views.flatMap((v) => v.targets)) {
    // The same address may serve two routes: each pool's target is its own.
    const id = `${t.route ?? ""} ${t.key}`;
    const seen = targets.get(id);
    targets.set(
      id,
      seen
        ? {
            key: t.key,
            route: t.route,
            // Each worker checks health on its own: up only while every one of them finds it up.
            up: seen.up && t.up,
            open: seen.open + t.open,
            connectFailures: seen.connectFailures + t.connectFailures,
            lastError: seen.lastError ?? t.lastError,
          }
        : t,
    );
  }
  const bytes = {
    up: views.reduce((n, v) => n + v.bytes.up, past?.bytesUpClosed ?? 0),
    down: views.reduce((n, v) => n + v.bytes.down, past?.bytesDownClosed ?? 0),
  };
  return {
    name: first.name,
    listen: first.listen,
    state: first.state,
    open: views.reduce((n, v) => n + v.open, 0),
    counters: addCounters(...views.map((v) => v.counters), ...(past ? [past] : [])),
    bytes: () => bytes,
    ruleHits: () => sumRuleHits(views.map((v) => v.ruleHits)),
    config: configs.get(first.name) as ListenerConfig,
    targets: [...targets.values()],
  };
}
