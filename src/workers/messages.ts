// What the main thread and a worker say to each other. Every request carries an id and
// gets exactly one reply with that id. Configs travel as the text they were parsed from
// (a parsed config holds objects that do not survive a copy between threads).

import type { BridgeEndSamples } from "../admin/metrics.ts";
import type { OpenBridge } from "../plan/plan.ts";
import type { ListenerCounters } from "../proxy/listener.ts";
import type { RuleHitsSnapshot } from "../proxy/rule-hits.ts";
import type { SharedListenerSlots } from "./shared-slots.ts";

/** What a worker is started with (workerData). */
export interface WorkerStart {
  readonly index: number;
  readonly logLevel: string;
  readonly pretty: boolean;
  /** The instance's client table, and this worker's ledger of the entries it holds. */
  readonly table: SharedArrayBuffer;
  readonly ledger: SharedArrayBuffer;
}

export type Request =
  | {
      readonly kind: "prepare";
      readonly text: string;
      readonly file: string;
      /** The filter modules the main thread loaded for this config: sha256 by path. */
      readonly modules: Readonly<Record<string, string>>;
      /** The shared counters of every listener the config names. */
      readonly slots: Readonly<Record<string, SharedListenerSlots>>;
    }
  | { readonly kind: "commit" }
  | { readonly kind: "abort" }
  | { readonly kind: "log-level"; readonly level: string }
  | { readonly kind: "bridges" }
  | { readonly kind: "report" }
  | { readonly kind: "shutdown"; readonly timeoutMs: number }
  | { readonly kind: "close-all" }
  /** Exits the worker thread: how tests see a worker die and be replaced. */
  | { readonly kind: "exit" };

export type Envelope = Request & { readonly id: number };

export type Reply = { readonly id: number; readonly ok: true; readonly value: unknown } | ReplyError;

export interface ReplyError {
  readonly id: number;
  readonly ok: false;
  readonly error: string;
  /** A BindError (or ShutdownError): the reload is rejected, nothing else is wrong. */
  readonly bind: boolean;
}

/** A listener as one worker sees it, as plain data. */
export interface WorkerListenerView {
  readonly name: string;
  readonly listen: string;
  readonly state: "serving" | "draining";
  readonly open: number;
  readonly counters: ListenerCounters;
  readonly bytes: { up: number; down: number };
  readonly ruleHits: RuleHitsSnapshot;
  readonly targets: readonly {
    readonly key: string;
    readonly up: boolean;
    readonly open: number;
    readonly connectFailures: number;
    readonly lastError: string | undefined;
    readonly route: string | undefined;
  }[];
}

/** What a worker has counted, for /status and /metrics. */
export interface WorkerReport {
  readonly listeners: readonly WorkerListenerView[];
  readonly bridgeEnds: BridgeEndSamples;
}

export interface CommitReply {
  /** Bridges closed by recheck. */
  readonly closed: number;
}

export type WorkerBridges = readonly OpenBridge[];

/** Bridge ids are unique per worker: the worker's index goes above them. */
export const BRIDGE_ID_SPAN = 2 ** 40;
