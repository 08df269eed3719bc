// Every figure the bench produces, its samples over the rounds, and the one markdown
// table they make: each proxy's median, as a ratio to HAProxy and to direct.
import { PROXY_LABELS, type ProxyName } from "./proxies.ts";

export interface FigureSpec {
  id: string;
  test: string;
  label: string;
  unit: string;
  /** Which way is better, shown in the table: "↑" higher, "↓" lower, "0" none is right. */
  better: "↑" | "↓" | "0" | "";
  digits: number;
  /** How rounds combine: the median, the sum (counts of failures), or the worst round. */
  combine: "median" | "sum" | "min";
  /** Whether ratios to HAProxy and to direct mean anything for it. */
  ratios: boolean;
}

const f = (
  id: string,
  test: string,
  label: string,
  unit: string,
  better: FigureSpec["better"],
  digits: number,
  combine: FigureSpec["combine"] = "median",
  ratios = true,
): FigureSpec => ({ id, test, label, unit, better, digits, combine, ratios });

/** The thread counts of the workers test (tcpgate `workers`, HAProxy `nbthread`), as its figure ids end: `wk.close.rps.2`. */
export const WORKERS_THREADS = [1, 2, "auto"] as const;

export const FIGURES: FigureSpec[] = [
  f("bulk1.gbps", "1 bulk", "iperf3, 1 stream", "Gbit/s", "↑", 2),
  f("bulk1.cpu", "1 bulk", "proxy CPU, 1 stream", "CPU s/GB", "↓", 3),
  f("bulk4.gbps", "1 bulk", "iperf3, 4 streams", "Gbit/s", "↑", 2),
  f("bulk4.cpu", "1 bulk", "proxy CPU, 4 streams", "CPU s/GB", "↓", 3),
  f("bulkR.gbps", "1 bulk", "iperf3, reverse (-R)", "Gbit/s", "↑", 2),
  f("bulkR.cpu", "1 bulk", "proxy CPU, reverse", "CPU s/GB", "↓", 3),
  f("bulk.peakRss", "1 bulk", "proxy peak RSS over the bulk tests", "MiB", "↓", 1),
  f("close.rps", "2 new connections", "wrk, Connection: close", "req/s", "↑", 0),
  f("close.p50", "2 new connections", "latency p50", "ms", "↓", 3),
  f("close.p99", "2 new connections", "latency p99", "ms", "↓", 3),
  f("close.cpu", "2 new connections", "proxy CPU per connection", "µs", "↓", 1),
  f("close.errors", "2 new connections", "wrk errors", "count", "0", 0, "sum", false),
  f("redis1.rps", "3 persistent", "redis-benchmark GET, -c 50", "req/s", "↑", 0),
  f("redis1.p50", "3 persistent", "latency p50", "ms", "↓", 3),
  f("redis1.p99", "3 persistent", "latency p99", "ms", "↓", 3),
  f("redis1.cpu", "3 persistent", "proxy CPU per request", "µs", "↓", 2),
  f("redis16.rps", "3 persistent", "redis-benchmark GET, -c 50 -P 16", "req/s", "↑", 0),
  f("redis16.p50", "3 persistent", "latency p50 (per batch of 16)", "ms", "↓", 3),
  f("redis16.p99", "3 persistent", "latency p99 (per batch of 16)", "ms", "↓", 3),
  f("redis16.cpu", "3 persistent", "proxy CPU per request", "µs", "↓", 3),
  f("ka.rps", "3 persistent", "wrk keep-alive, -c 50", "req/s", "↑", 0),
  f("ka.p50", "3 persistent", "latency p50", "ms", "↓", 3),
  f("ka.p99", "3 persistent", "latency p99", "ms", "↓", 3),
  f("ka.cpu", "3 persistent", "proxy CPU per request", "µs", "↓", 2),
  f("ka.errors", "3 persistent", "wrk errors", "count", "0", 0, "sum", false),
  f("idle.rss", "4 idle bridges", "proxy RSS per idle connection", "KiB", "↓", 2),
  f("idle.opened", "4 idle bridges", "connections opened and echoing (worst round)", "count", "", 0, "min", false),
  f("idle.echoed", "4 idle bridges", "still echoing after the hold (worst round)", "count", "", 0, "min", false),
  f("idle.openSeconds", "4 idle bridges", "time to open them all", "s", "↓", 2),
  f("adm.none.rps", "5 admission", "accept rate, no rules (wrk Connection: close)", "conn/s", "↑", 0),
  f("adm.rules.rps", "5 admission", "accept rate, 10,000 deny + 10,000 allow", "conn/s", "↑", 0),
  f("adm.cost", "5 admission", "cost of the rules (1 − with/without)", "%", "↓", 1, "median", false),
  f("adm.none.cpu", "5 admission", "tcpgate CPU per connection, no rules", "µs", "↓", 1, "median", false),
  f("adm.rules.cpu", "5 admission", "tcpgate CPU per connection, with the rules", "µs", "↓", 1, "median", false),
  f("adm.live", "5 admission", "rules live: 127.0.0.2 refused, 127.0.0.1 admitted", "rounds ok", "", 0, "sum", false),
  f("rl.written", "6 reload", "reloads written (all rounds)", "count", "", 0, "sum", false),
  f("rl.confirmed", "6 reload", "reloads confirmed applied", "count", "", 0, "sum", false),
  f("rl.attempted", "6 reload", "client connections attempted", "count", "", 0, "sum", false),
  f("rl.echoed", "6 reload", "client connections echoed", "count", "", 0, "sum", false),
  f("rl.refused", "6 reload", "refused", "count", "0", 0, "sum", false),
  f("rl.reset", "6 reload", "reset or closed early", "count", "0", 0, "sum", false),
  f("rl.failed", "6 reload", "timed out or other error", "count", "0", 0, "sum", false),
  f(
    "fr.plain.rps",
    "7 front of house",
    "accept rate, plain listener (a ClientHello, echoed)",
    "conn/s",
    "↑",
    0,
    "median",
    false,
  ),
  f(
    "fr.proxy.rps",
    "7 front of house",
    "accept rate, acceptProxy (PROXY v2 header first)",
    "conn/s",
    "↑",
    0,
    "median",
    false,
  ),
  f("fr.routes.rps", "7 front of house", "accept rate, routes (ClientHello peeked)", "conn/s", "↑", 0, "median", false),
  f("fr.proxy.cost", "7 front of house", "cost of acceptProxy (1 − with/plain)", "%", "↓", 1, "median", false),
  f("fr.routes.cost", "7 front of house", "cost of routes (1 − with/plain)", "%", "↓", 1, "median", false),
  f("fr.plain.cpu", "7 front of house", "tcpgate CPU per connection, plain", "µs", "↓", 1, "median", false),
  f("fr.proxy.cpu", "7 front of house", "tcpgate CPU per connection, acceptProxy", "µs", "↓", 1, "median", false),
  f("fr.routes.cpu", "7 front of house", "tcpgate CPU per connection, routes", "µs", "↓", 1, "median", false),
  ...filterFigures("bulk", "iperf3, 1 stream", "Gbit/s", 2),
  ...filterFigures("redis1", "redis-benchmark GET, -c 50", "req/s", 0),
  ...filterFigures("redis16", "redis-benchmark GET, -c 50 -P 16", "req/s", 0),
  ...workersFigures("close", "wrk Connection: close", "connection rate", "connection", 1),
  ...workersFigures("ka", "wrk keep-alive, -c 50", "request rate", "request", 2),
  ...workersFigures("redis", "redis-benchmark GET, -c 50", "request rate", "request", 2),
];

/** A pass-through filter against none, on one tcpgate: each side, and filtered ÷ plain for it and for CPU per unit. */
function filterFigures(id: string, what: string, unit: string, digits: number): FigureSpec[] {
  const test = "8 filter";
  return [
    f(`flt.${id}.plain`, test, `${what}, no filter`, unit, "↑", digits, "median", false),
    f(`flt.${id}.filtered`, test, `${what}, pass-through filter`, unit, "↑", digits, "median", false),
    f(`flt.${id}.ratio`, test, `${what}: filtered ÷ no filter`, "×", "↑", 2, "median", false),
    f(`flt.${id}.cpuRatio`, test, `${what}: tcpgate CPU per unit, filtered ÷ no filter`, "×", "↓", 2, "median", false),
  ];
}

/**
 * One load of the workers test: in the tcpgate column `workers: n`, in the HAProxy column
 * `nbthread n` (not run with auto), so ×HAProxy compares equal thread counts; and the
 * scaling row, 2 threads ÷ 1 of the same round, for each.
 */
function workersFigures(load: string, what: string, rate: string, per: string, cpuDigits: number): FigureSpec[] {
  const test = "9 workers";
  const threads = (n: (typeof WORKERS_THREADS)[number]) =>
    n === "auto" ? "workers: auto (HAProxy: not run)" : `workers: ${n} / nbthread ${n}`;
  return [
    ...WORKERS_THREADS.map((n) => f(`wk.${load}.rps.${n}`, test, `${what}; ${threads(n)}`, "req/s", "↑", 0)),
    f(`wk.${load}.scale`, test, `${rate}, 2 threads ÷ 1 (workers, nbthread)`, "×", "↑", 2, "median", false),
    ...WORKERS_THREADS.map((n) => f(`wk.${load}.p99.${n}`, test, `latency p99; ${threads(n)}`, "ms", "↓", 3)),
    ...WORKERS_THREADS.map((n) =>
      f(`wk.${load}.cpu.${n}`, test, `proxy CPU per ${per}; ${threads(n)}`, "µs", "↓", cpuDigits),
    ),
    ...(load === "redis"
      ? []
      : [f(`wk.${load}.errors`, test, `${what}: wrk errors, every thread count`, "count", "0", 0, "sum", false)]),
  ];
}

export type Samples = Record<string, Partial<Record<ProxyName, number[]>>>;

export function record(samples: Samples, id: string, proxy: ProxyName, value: number | null): void {
  if (value === null || !Number.isFinite(value)) return;
  if (!FIGURES.some((figure) => figure.id === id)) throw new Error(`unknown figure ${id}`);
  const byProxy = samples[id] ?? {};
  samples[id] = byProxy;
  const list = byProxy[proxy] ?? [];
  byProxy[proxy] = list;
  list.push(value);
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[mid] ?? Number.NaN) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
}

export function combined(figure: FigureSpec, values: number[] | undefined): number | null {
  if (!values || values.length === 0) return null;
  if (figure.combine === "sum") return values.reduce((a, b) => a + b, 0);
  if (figure.combine === "min") return Math.min(...values);
  return median(values);
}

export type Summary = Record<string, Partial<Record<ProxyName, number | null>>>;

export function summarise(samples: Samples): Summary {
  const summary: Summary = {};
  for (const figure of FIGURES) {
    const byProxy: Partial<Record<ProxyName, number | null>> = {};
    for (const proxy of Object.keys(PROXY_LABELS) as ProxyName[]) {
      byProxy[proxy] = combined(figure, samples[figure.id]?.[proxy]);
    }
    summary[figure.id] = byProxy;
  }
  return summary;
}

const fmt = (value: number | null | undefined, digits: number): string =>
  value === null || value === undefined
    ? "—"
    : value.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });

const ratio = (value: number | null | undefined, reference: number | null | undefined): string =>
  value === null || value === undefined || reference === null || reference === undefined || reference === 0
    ? "—"
    : `${(value / reference).toFixed(2)}×`;

/** The one table: figure rows, with each proxy's value and its ratios to HAProxy and to direct; rows of tests not run are left out. */
export function markdownTable(summary: Summary): string {
  const head = [
    "test",
    "figure",
    "unit",
    "better",
    "direct",
    "HAProxy",
    "HAProxy ×direct",
    "tcpgate",
    "tcpgate ×HAProxy",
    "tcpgate ×direct",
    "node pipe",
    "pipe ×HAProxy",
    "pipe ×direct",
  ];
  const rows = [`| ${head.join(" | ")} |`, `|${head.map((_, i) => (i < 4 ? "---" : "---:")).join("|")}|`];
  for (const figure of FIGURES) {
    const v = summary[figure.id] ?? {};
    if (Object.values(v).every((value) => value === null || value === undefined)) continue;
    const r = (proxy: ProxyName, reference: ProxyName) => (figure.ratios ? ratio(v[proxy], v[reference]) : "—");
    rows.push(
      `| ${[
        figure.test,
        figure.label,
        figure.unit,
        figure.better,
        fmt(v.direct, figure.digits),
        fmt(v.haproxy, figure.digits),
        r("haproxy", "direct"),
        fmt(v.tcpgate, figure.digits),
        r("tcpgate", "haproxy"),
        r("tcpgate", "direct"),
        fmt(v["node-pipe"], figure.digits),
        r("node-pipe", "haproxy"),
        r("node-pipe", "direct"),
      ].join(" | ")} |`,
    );
  }
  return rows.join("\n");
}
