// What the admin endpoint may read of the running gateway. Listeners and bridges are
// never reached into directly: this is the whole surface.
import type { ListenerConfig } from "../config/runtime.ts";
import type { ListenerCounters } from "../proxy/listener.ts";
import type { RuleHitsSnapshot } from "../proxy/rule-hits.ts";
import type { BridgeEndSamples } from "./metrics.ts";

export interface TargetView {
  /** The route whose pool holds the target; undefined for the listener's own targets. */
  readonly route: string | undefined;
  readonly key: string;
  readonly up: boolean;
  readonly open: number;
  readonly connectFailures: number;
  readonly lastError: string | undefined;
}

export interface ListenerView {
  readonly name: string;
  readonly listen: string;
  /** serving: accepting clients; draining: removed by a reload, bridges still open. */
  readonly state: "serving" | "draining";
  readonly open: number;
  readonly counters: ListenerCounters;
  /** Bytes carried so far, open bridges included. */
  bytes(): { up: number; down: number };
  /** Hits of each allow and deny entry of the listener's current config. */
  ruleHits(): RuleHitsSnapshot;
  readonly config: ListenerConfig;
  readonly targets: readonly TargetView[];
}

/** One worker thread (workers > 1), as /status shows it. */
export interface WorkerView {
  readonly index: number;
  readonly threadId: number;
  /** serving; draining: removed by a reload, its bridges finishing; dead: exited, not (yet) replaced. */
  readonly state: "serving" | "draining" | "dead";
  /** Epoch ms when its thread was started. */
  readonly startedAt: number;
  readonly open: number;
  readonly accepted: number;
  /** How many workers at this index died before this one. */
  readonly replaced: number;
}

export interface GatewayView {
  /** With several workers: asks each for its counts; listeners() then answers their sums. */
  refresh?(): Promise<void>;
  listeners(): ListenerView[];
  /** With several workers: each one, as refresh() last found it. */
  workers?(): WorkerView[];
  /** With several workers: their bridge-end metrics, to add up for /metrics. */
  bridgeEnds?(): Promise<BridgeEndSamples[]>;
  /** Reload counts by outcome. */
  reloads(): Record<string, number>;
  /** Epoch ms when the running config was applied. */
  configAppliedAt(): number;
}
