// Prometheus metrics. Values are read from the running gateway at scrape time, so the
// proxy's hot paths only keep the plain counters they already need; the exceptions are
// the bridge duration histogram and the closed-bridge counter, counted once per bridge end.
import {
  AggregatorRegistry,
  Counter,
  collectDefaultMetrics,
  Gauge,
  Histogram,
  type MetricObjectWithValues,
  type MetricValue,
  type PrometheusContentType,
  Registry,
} from "prom-client";
import { RULE_LISTS } from "../policy/address-match.ts";
import { REFUSAL_REASONS } from "../policy/admission.ts";
import type { BridgeEnd } from "../proxy/bridge.ts";
import type { GatewayView, TargetView } from "./view.ts";

type Sample = [labels: Record<string, string>, value: number];
const sample = (labels: Record<string, string>, value: number): Sample => [labels, value];
/** A route's targets carry its label; a listener's own have none (Prometheus: an empty label is no label). */
const targetLabels = (listener: string, t: TargetView) => ({
  listener,
  ...(t.route !== undefined && { route: t.route }),
  target: t.key,
});

export interface Metrics {
  readonly contentType: string;
  /** The exposition text, read now. */
  text(): Promise<string>;
  bridgeEnded(end: BridgeEnd): void;
}

/** The bridge-end metrics of one event loop, as prom-client's getMetricsAsJSON() gives them. */
export type BridgeEndSamples = MetricObjectWithValues<MetricValue<string>>[];

/** The metrics counted as bridges end, in a registry of their own. */
export interface BridgeEndMetrics {
  readonly registry: Registry;
  bridgeEnded(end: BridgeEnd): void;
}

/**
 * With workers, each worker counts its own bridges' ends here, and the main thread adds
 * them up at scrape time (AggregatorRegistry.aggregate). The other way, a message to the
 * main thread per bridge, would cost a structured clone and a wake-up of another thread
 * for every bridge; this costs one histogram observation, as on a single loop, and one
 * copy per worker per scrape.
 */
export function createBridgeEndMetrics(): BridgeEndMetrics {
  const registry = new Registry();
  const duration = new Histogram({
    name: "tcpgate_bridge_duration_seconds",
    help: "How long bridges lasted, from accept to end.",
    labelNames: ["listener"],
    buckets: [0.01, 0.1, 1, 10, 60, 600, 3600, 86400],
    registers: [registry],
  });
  // Counted as bridges end, not read from the gateway: a listener's closed bridges by how
  // they ended outlive the listener, and `recheck` must be visible as such.
  const closed = new Counter({
    name: "tcpgate_bridges_closed_total",
    help: "Bridges that ended, by how they ended (client-closed, idle-timeout, shutdown, recheck, ...).",
    labelNames: ["listener", "reason"],
    registers: [registry],
  });
  return {
    registry,
    bridgeEnded(end) {
      duration.observe({ listener: end.listener }, end.durationMs / 1000);
      closed.inc({ listener: end.listener, reason: end.reason });
    },
  };
}

export function createMetrics(view: GatewayView): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "tcpgate_" });
  const registers = [registry];

  /**
   * A counter whose values are totals kept elsewhere: reset, then set, on each scrape.
   * Samples with the same labels (a listener serving and its namesake draining) add up.
   */
  const counterFrom = (name: string, help: string, labelNames: string[], read: () => Sample[]) =>
    new Counter({
      name,
      help,
      labelNames,
      registers,
      collect() {
        this.reset();
        for (const [labels, value] of read()) this.inc(labels, value);
      },
    });
  /**
   * A gauge read from the gateway. A listener removed by a reload and added back while its
   * old bridges drain is listed twice under one name (serving, then draining): samples with
   * the same labels are added up ("sum"), or the first one wins ("first"). set() alone would
   * let the draining listener's value overwrite the serving one's.
   */
  const gaugeFrom = (
    name: string,
    help: string,
    labelNames: string[],
    read: () => Sample[],
    combine: "sum" | "first" = "sum",
  ) =>
    new Gauge({
      name,
      help,
      labelNames,
      registers,
      collect() {
        this.reset();
        const seen = new Set<string>();
        for (const [labels, value] of read()) {
          const key = JSON.stringify(labelNames.map((l) => labels[l]));
          if (combine === "sum") this.inc(labels, value);
          else if (!seen.has(key)) this.set(labels, value);
          seen.add(key);
        }
      },
    });

  counterFrom(
    "tcpgate_connections_accepted_total",
    "Client connections accepted by the kernel, before admission.",
    ["listener"],
    () => view.listeners().map((l) => sample({ listener: l.name }, l.counters.accepted)),
  );
  counterFrom(
    "tcpgate_connections_refused_total",
    "Client connections refused, by reason (deny, allow, schedule, limit, proxy-header, route).",
    ["listener", "reason"],
    () =>
      view
        .listeners()
        .flatMap((l) =>
          REFUSAL_REASONS.map((reason) => sample({ listener: l.name, reason }, l.counters.refused[reason])),
        ),
  );
  // Serving listeners only: a draining namesake's entries are not the rules in force. An
  // entry appears from its first hit, so a 10,000-entry blocklist is not 10,000 series.
  counterFrom(
    "tcpgate_rule_hits_total",
    "Clients each allow or deny entry decided: refused by a deny entry, let past the allow step by an allow entry.",
    ["listener", "list", "rule"],
    () =>
      view
        .listeners()
        .filter((l) => l.state === "serving")
        .flatMap((l) => {
          const hits = l.ruleHits();
          return RULE_LISTS.flatMap((list) =>
            hits[list].filter((e) => e.hits > 0).map((e) => sample({ listener: l.name, list, rule: e.rule }, e.hits)),
          );
        }),
  );
  gaugeFrom("tcpgate_bridges_open", "Open bridges.", ["listener"], () =>
    view.listeners().map((l) => sample({ listener: l.name }, l.open)),
  );
  counterFrom(
    "tcpgate_bytes_total",
    "Bytes carried, up (client to target) and down (target to client), open bridges included.",
    ["listener", "direction"],
    () =>
      view
        .listeners()
        .flatMap((l) => [
          sample({ listener: l.name, direction: "up" }, l.bytes().up),
          sample({ listener: l.name, direction: "down" }, l.bytes().down),
        ]),
  );
  // The serving listener comes first: its health is current, a draining one's checks have stopped.
  gaugeFrom(
    "tcpgate_target_up",
    "1 when the target is considered up, 0 when down.",
    ["listener", "route", "target"],
    () => view.listeners().flatMap((l) => l.targets.map((t) => sample(targetLabels(l.name, t), t.up ? 1 : 0))),
    "first",
  );
  counterFrom(
    "tcpgate_target_connect_failures_total",
    "Failed connection attempts to a target (refused, timed out, unreachable).",
    ["listener", "route", "target"],
    () => view.listeners().flatMap((l) => l.targets.map((t) => sample(targetLabels(l.name, t), t.connectFailures))),
  );
  counterFrom("tcpgate_reloads_total", "Config reloads by outcome (applied, rejected, unchanged).", ["outcome"], () =>
    Object.entries(view.reloads()).map(([outcome, count]) => sample({ outcome }, count)),
  );
  gaugeFrom(
    "tcpgate_config_last_reload_success_timestamp_seconds",
    "When the running config was applied (start-up or the last successful reload).",
    [],
    () => [sample({}, view.configAppliedAt() / 1000)],
  );
  const ended = createBridgeEndMetrics();

  return {
    contentType: registry.contentType,
    async text() {
      const fromWorkers = await view.bridgeEnds?.();
      // This loop's own (empty with workers) keeps every family present whatever the workers said.
      const ends = fromWorkers
        ? AggregatorRegistry.aggregate<PrometheusContentType>([await ended.registry.getMetricsAsJSON(), ...fromWorkers])
        : ended.registry;
      return Registry.merge([registry, ends]).metrics();
    },
    bridgeEnded: ended.bridgeEnded,
  };
}
