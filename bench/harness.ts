// The benchmark: starts the backends, then round after round runs every test group for
// each proxy in turn (the order rotates each round), and ends with one markdown table of
// medians, printed and written to bench/results/ with the raw numbers beside it in JSON.
// bench/run is the entry point: it installs the peers, builds tcpgate, raises the
// open-files limit and sets BENCH_TMP; this file reads its settings from BENCH_* variables.
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { type BackendPorts, startBackends } from "./lib/backends.ts";
import { idleBridges } from "./lib/idle-bridges.ts";
import { iperf3, redisGet, redisRequestsFor, warmUp, wrk } from "./lib/load-tools.ts";
import { availableTools, loadAverage, type Machine, machineFacts } from "./lib/machine.ts";
import {
  freePorts,
  killAllNow,
  measured,
  memoryKiB,
  recordPidsIn,
  runTool,
  stopAll,
  stopChild,
  waitForPort,
} from "./lib/proc.ts";
import {
  PROXY_LABELS,
  type ProxyName,
  type ProxySetup,
  type RunningProxy,
  startProxy,
  startTcpgateWith,
  tcpgateCommand,
  tcpgateYaml,
} from "./lib/proxies.ts";
import { reloadUnderLoad } from "./lib/reload-under-load.ts";
import { FIGURES, markdownTable, record, type Samples, summarise } from "./lib/report.ts";
import { allowList, denyList } from "./lib/rule-lists.ts";
import { coresNote, workersConfigs, workersRound, workersSkipReason } from "./lib/workers.ts";

const TESTS = ["bulk", "rate", "persistent", "idle", "admission", "reload", "front", "filter", "workers"] as const;
const ALL_PROXIES: ProxyName[] = ["direct", "tcpgate", "haproxy", "node-pipe"];

function settings() {
  const env = process.env;
  const quick = env.BENCH_QUICK === "1";
  const num = (name: string, fallback: number) => {
    const value = env[name];
    if (value === undefined || value === "") return fallback;
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a whole number ≥ 1, not ${value}`);
    return n;
  };
  const list = <T extends string>(name: string, all: readonly T[]): T[] => {
    const value = env[name];
    if (!value) return [...all];
    const picked = value.split(",").map((s) => s.trim());
    for (const p of picked)
      if (!all.includes(p as T)) throw new Error(`${name}: unknown "${p}" (one of ${all.join(", ")})`);
    return all.filter((a) => picked.includes(a));
  };
  const via = env.BENCH_RELOAD_VIA ?? "file";
  if (via !== "file" && via !== "sighup") throw new Error("BENCH_RELOAD_VIA is file or sighup");
  return {
    quick,
    seconds: num("BENCH_SECONDS", quick ? 2 : 5),
    rounds: num("BENCH_ROUNDS", quick ? 1 : 3),
    idle: num("BENCH_IDLE", quick ? 1000 : 10_000),
    reloads: num("BENCH_RELOADS", quick ? 10 : 50),
    reloadClients: num("BENCH_RELOAD_CLIENTS", 4),
    reloadVia: via as "file" | "sighup",
    rules: num("BENCH_RULES", 10_000),
    proxies: list("BENCH_PROXIES", ALL_PROXIES),
    /** The Node.js that runs tcpgate (and the node pipe proxy): bench/run's --node, else this one. */
    node: env.BENCH_NODE || process.execPath,
    tests: list("BENCH_TESTS", TESTS),
  };
}
type Settings = ReturnType<typeof settings>;

const notes: string[] = [];
/** Set on SIGINT/SIGTERM: no new test starts, and failures from children being stopped are not noted. */
let stopping = false;
const samples: Samples = {};
const started = Date.now();

function say(message: string): void {
  const t = ((Date.now() - started) / 1000).toFixed(0).padStart(4);
  process.stderr.write(`[bench ${t}s] ${message}\n`);
}

function note(message: string): void {
  notes.push(message);
  say(`NOTE: ${message}`);
}

async function attempt(what: string, work: () => Promise<void>): Promise<void> {
  try {
    await work();
  } catch (error) {
    if (stopping) return;
    note(`${what} failed: ${error instanceof Error ? error.message : String(error)}`.slice(0, 600));
  }
}

async function withProxy(name: ProxyName, setup: ProxySetup, work: (proxy: RunningProxy) => Promise<void>) {
  const proxy = await startProxy(name, setup);
  try {
    await work(proxy);
  } finally {
    await proxy.stop();
  }
}

// ---- the test groups, for one proxy in one round ---------------------------------------

async function bulk(proxy: RunningProxy, s: Settings): Promise<void> {
  const runs: [string, number, boolean, string][] = [
    ["bulk1", 1, false, "1 stream"],
    ["bulk4", 4, false, "4 streams"],
    ["bulkR", 1, true, "reverse"],
  ];
  for (const [id, streams, reverse, what] of runs) {
    const { result, cpu } = await measured(proxy.pid, () => iperf3(proxy.ports.iperf, s.seconds, streams, reverse));
    const cpuPerGB = cpu === null ? null : cpu / (result.bytes / 1e9);
    record(samples, `${id}.gbps`, proxy.name, result.gbps);
    record(samples, `${id}.cpu`, proxy.name, cpuPerGB);
    say(`  ${proxy.name} iperf3 ${what}: ${result.gbps.toFixed(2)} Gbit/s, CPU ${cpuPerGB?.toFixed(3) ?? "—"} s/GB`);
    await sleep(300);
  }
  if (proxy.pid !== null) record(samples, "bulk.peakRss", proxy.name, memoryKiB(proxy.pid, "VmHWM") / 1024);
}

async function connectionRate(proxy: RunningProxy, s: Settings): Promise<void> {
  await warmUp(proxy.ports.http);
  const { result, cpu } = await measured(proxy.pid, () => wrk(proxy.ports.http, s.seconds, true));
  const cpuPerConn = cpu === null ? null : (cpu / result.requests) * 1e6;
  record(samples, "close.rps", proxy.name, result.rps);
  record(samples, "close.p50", proxy.name, result.p50ms);
  record(samples, "close.p99", proxy.name, result.p99ms);
  record(samples, "close.cpu", proxy.name, cpuPerConn);
  record(samples, "close.errors", proxy.name, result.errors);
  say(
    `  ${proxy.name} wrk close: ${result.rps.toFixed(0)} req/s, p99 ${result.p99ms} ms, CPU ${cpuPerConn?.toFixed(1) ?? "—"} µs`,
  );
}

async function persistent(proxy: RunningProxy, s: Settings, tools: Set<string>): Promise<void> {
  if (tools.has("redis-benchmark") && tools.has("redis-server")) {
    for (const pipeline of [1, 16]) {
      const id = `redis${pipeline}`;
      const requests = await redisRequestsFor(proxy.ports.redis, s.seconds, pipeline);
      const { result, cpu } = await measured(proxy.pid, () =>
        redisGet(proxy.ports.redis, requests, pipeline, s.seconds),
      );
      const cpuPerReq = cpu === null ? null : (cpu / result.requests) * 1e6;
      record(samples, `${id}.rps`, proxy.name, result.rps);
      record(samples, `${id}.p50`, proxy.name, result.p50ms);
      record(samples, `${id}.p99`, proxy.name, result.p99ms);
      record(samples, `${id}.cpu`, proxy.name, cpuPerReq);
      say(`  ${proxy.name} redis -P ${pipeline}: ${result.rps.toFixed(0)} req/s, p99 ${result.p99ms} ms`);
    }
  }
  if (tools.has("wrk") && tools.has("nginx")) {
    await warmUp(proxy.ports.http);
    const { result, cpu } = await measured(proxy.pid, () => wrk(proxy.ports.http, s.seconds, false));
    const cpuPerReq = cpu === null ? null : (cpu / result.requests) * 1e6;
    record(samples, "ka.rps", proxy.name, result.rps);
    record(samples, "ka.p50", proxy.name, result.p50ms);
    record(samples, "ka.p99", proxy.name, result.p99ms);
    record(samples, "ka.cpu", proxy.name, cpuPerReq);
    record(samples, "ka.errors", proxy.name, result.errors);
    say(`  ${proxy.name} wrk keep-alive: ${result.rps.toFixed(0)} req/s, p99 ${result.p99ms} ms`);
  }
}

async function idle(proxy: RunningProxy, s: Settings, count: number): Promise<void> {
  // A few bridges first, so that what a proxy sets up once is not charged to the 10,000.
  await idleBridges(proxy.ports.echo, 50, 0, null);
  await sleep(500);
  const result = await idleBridges(proxy.ports.echo, count, s.seconds * 1000, proxy.pid);
  record(samples, "idle.rss", proxy.name, result.rssPerConnKiB);
  record(samples, "idle.opened", proxy.name, result.opened);
  record(samples, "idle.echoed", proxy.name, result.echoedAfterHold);
  record(samples, "idle.openSeconds", proxy.name, result.openSeconds);
  say(
    `  ${proxy.name} idle: ${result.opened}/${count} open, ${result.echoedAfterHold} echo after the hold, ` +
      `RSS ${result.rssBeforeKiB ?? "—"} → ${result.rssAfterKiB ?? "—"} KiB, ${result.rssPerConnKiB?.toFixed(2) ?? "—"} KiB each`,
  );
  if (result.opened < count || result.echoedAfterHold < count) {
    note(`${proxy.name}: idle bridges ${result.opened}/${count} opened, ${result.echoedAfterHold} still echoed`);
  }
}

// ---- tcpgate-only tests -----------------------------------------------------------------

/** A client from `localAddress` sends an HTTP request: the reply's first bytes, "" when closed without a byte. */
function httpProbe(port: number, localAddress: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: "127.0.0.1", localAddress });
    let reply = "";
    const timer = setTimeout(() => socket.destroy(), 3000);
    socket.on("connect", () => socket.write("GET /small.txt HTTP/1.0\r\n\r\n"));
    socket.on("data", (chunk: Buffer) => {
      reply += chunk.toString("latin1");
    });
    socket.on("error", () => {});
    socket.on("close", () => {
      clearTimeout(timer);
      resolve(reply.slice(0, 12));
    });
  });
}

async function admission(setup: ProxySetup, s: Settings, round: number, ports: { open: number; ruled: number }) {
  const deny = JSON.stringify(denyList(s.rules));
  const allow = JSON.stringify(allowList(s.rules));
  const yaml = tcpgateYaml([
    { name: "open", listen: ports.open, target: setup.backends.http },
    {
      name: "ruled",
      listen: ports.ruled,
      target: setup.backends.http,
      extra: `    deny: ${deny}\n    allow: ${allow}`,
    },
  ]);
  const child = startTcpgateWith(setup, "tcpgate-admission", yaml);
  try {
    await waitForPort(ports.open, "tcpgate (admission)", child, 60_000);
    const admitted = await httpProbe(ports.ruled, "127.0.0.1");
    const refused = await httpProbe(ports.ruled, "127.0.0.2");
    const live = admitted.startsWith("HTTP/1.1 200") && refused === "";
    record(samples, "adm.live", "tcpgate", live ? 1 : 0);
    if (!live)
      note(`round ${round + 1}: admission rules not live (127.0.0.1 got "${admitted}", 127.0.0.2 got "${refused}")`);
    await warmUp(ports.open);
    await warmUp(ports.ruled);
    // Each side runs twice, in the order A B B A (B A A B in odd rounds), so neither side
    // always runs on a warmer process or in a quieter second; a side's figure is its mean.
    const sides: Record<"none" | "rules", number> = { none: ports.open, rules: ports.ruled };
    const order: ("none" | "rules")[] =
      round % 2 ? ["rules", "none", "none", "rules"] : ["none", "rules", "rules", "none"];
    const runs: Record<"none" | "rules", { rps: number; cpuUs: number }[]> = { none: [], rules: [] };
    for (const which of order) {
      const { result, cpu } = await measured(child.pid, () => wrk(sides[which], s.seconds, true));
      runs[which].push({ rps: result.rps, cpuUs: ((cpu ?? 0) / result.requests) * 1e6 });
      if (result.errors > 0) note(`round ${round + 1}: admission (${which}): ${result.errors} wrk errors`);
      say(`  tcpgate admission, ${which === "none" ? "no rules" : "rules"}: ${result.rps.toFixed(0)} conn/s`);
    }
    const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / values.length;
    const rates = { none: mean(runs.none.map((r) => r.rps)), rules: mean(runs.rules.map((r) => r.rps)) };
    for (const which of ["none", "rules"] as const) {
      record(samples, `adm.${which}.rps`, "tcpgate", rates[which]);
      record(samples, `adm.${which}.cpu`, "tcpgate", mean(runs[which].map((r) => r.cpuUs)));
    }
    if (rates.none && rates.rules) record(samples, "adm.cost", "tcpgate", (1 - rates.rules / rates.none) * 100);
  } finally {
    await stopChild(child);
  }
}

/** The listeners of the front-of-house test, and what the load writes to each. */
const FRONT = {
  plain: { prefix: "none", extra: "" },
  proxy: { prefix: "proxy-v2", extra: "    acceptProxy: {from: [127.0.0.1]}" },
  routes: { prefix: "none", extra: "    routes:\n      - sni: [bench.example.com]\n        targets: [127.0.0.1:ECHO]" },
} as const;
type FrontSide = keyof typeof FRONT;

/** Connections a second through one listener: FRONT's load for `seconds`, from a process of its own. */
async function frontLoad(port: number, side: FrontSide, seconds: number): Promise<{ rate: number; errors: number }> {
  const script = join(process.cwd(), "bench", "front-load.mjs");
  const args = [script, String(port), String(seconds), "16", FRONT[side].prefix, "bench.example.com"];
  const run = await runTool(process.execPath, args, (seconds + 20) * 1000);
  const result = JSON.parse(run.stdout.trim().split("\n").pop() ?? "{}") as { connections?: number; errors?: number };
  if (result.connections === undefined) throw new Error(`front-load: ${run.stderr || run.stdout}`.slice(0, 300));
  return { rate: result.connections / seconds, errors: result.errors ?? 0 };
}

/**
 * The accept cost of acceptProxy (a PROXY v2 header read before admission) and of routes
 * (the ClientHello peeked before the target is chosen) against a plain listener, each
 * carrying the same ClientHello to the echo backend.
 */
async function front(setup: ProxySetup, s: Settings, round: number, ports: Record<FrontSide, number>) {
  const sides = Object.keys(FRONT) as FrontSide[];
  const yaml = tcpgateYaml(
    sides.map((side) => ({
      name: side,
      listen: ports[side],
      target: setup.backends.echo,
      extra: FRONT[side].extra.replace("ECHO", String(setup.backends.echo)),
    })),
  );
  const child = startTcpgateWith(setup, "tcpgate-front", yaml);
  try {
    await waitForPort(ports.plain, "tcpgate (front)", child, 60_000);
    // Each side twice, the order reversed on the way back (and every other round).
    const order = round % 2 ? [...sides].reverse() : sides;
    const runs: Record<FrontSide, { rate: number; cpuUs: number }[]> = { plain: [], proxy: [], routes: [] };
    for (const side of [...order, ...[...order].reverse()]) {
      const { result, cpu } = await measured(child.pid, () => frontLoad(ports[side], side, s.seconds));
      runs[side].push({ rate: result.rate, cpuUs: ((cpu ?? 0) / (result.rate * s.seconds)) * 1e6 });
      if (result.errors > 0) note(`round ${round + 1}: front (${side}): ${result.errors} failed connections`);
      say(`  tcpgate front, ${side}: ${result.rate.toFixed(0)} conn/s`);
    }
    const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / values.length;
    const rates = Object.fromEntries(sides.map((side) => [side, mean(runs[side].map((r) => r.rate))])) as Record<
      FrontSide,
      number
    >;
    for (const side of sides) {
      record(samples, `fr.${side}.rps`, "tcpgate", rates[side]);
      record(samples, `fr.${side}.cpu`, "tcpgate", mean(runs[side].map((r) => r.cpuUs)));
    }
    for (const side of ["proxy", "routes"] as const) {
      if (rates.plain && rates[side])
        record(samples, `fr.${side}.cost`, "tcpgate", (1 - rates[side] / rates.plain) * 100);
    }
  } finally {
    await stopChild(child);
  }
}

/** The filter a listener pays for at least: one call per chunk each way, nothing changed. */
const PASS_THROUGH_FILTER = "export default () => ({ up: (chunk) => chunk, down: (chunk) => chunk });\n";

type FilterPorts = Record<"iperf" | "redis", { plain: number; filtered: number }>;

/**
 * One tcpgate with a listener with and one without a pass-through filter in front of
 * iperf3 and of redis; each side runs twice, A B B A (B A A B in odd rounds), as admission.
 */
async function filterCost(setup: ProxySetup, s: Settings, round: number, ports: FilterPorts, tools: Set<string>) {
  const module = join(setup.dir, "pass-through.mjs");
  writeFileSync(module, PASS_THROUGH_FILTER, { mode: 0o644 });
  const filter = `    filter: {module: ${JSON.stringify(module)}}`;
  const yaml = tcpgateYaml([
    { name: "iperf-plain", listen: ports.iperf.plain, target: setup.backends.iperf },
    { name: "iperf-filtered", listen: ports.iperf.filtered, target: setup.backends.iperf, extra: filter },
    { name: "redis-plain", listen: ports.redis.plain, target: setup.backends.redis },
    { name: "redis-filtered", listen: ports.redis.filtered, target: setup.backends.redis, extra: filter },
  ]);
  const child = startTcpgateWith(setup, "tcpgate-filter", yaml);
  const order: ("plain" | "filtered")[] =
    round % 2 ? ["filtered", "plain", "plain", "filtered"] : ["plain", "filtered", "filtered", "plain"];
  const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / values.length;
  const recordSides = (id: string, runs: Record<"plain" | "filtered", { value: number; cpu: number }[]>) => {
    const value = { plain: mean(runs.plain.map((r) => r.value)), filtered: mean(runs.filtered.map((r) => r.value)) };
    record(samples, `flt.${id}.plain`, "tcpgate", value.plain);
    record(samples, `flt.${id}.filtered`, "tcpgate", value.filtered);
    record(samples, `flt.${id}.ratio`, "tcpgate", value.filtered / value.plain);
    record(
      samples,
      `flt.${id}.cpuRatio`,
      "tcpgate",
      mean(runs.filtered.map((r) => r.cpu)) / mean(runs.plain.map((r) => r.cpu)),
    );
  };
  try {
    await waitForPort(ports.redis.filtered, "tcpgate (filter)", child);
    if (tools.has("iperf3")) {
      const runs: Record<"plain" | "filtered", { value: number; cpu: number }[]> = { plain: [], filtered: [] };
      for (const which of order) {
        const { result, cpu } = await measured(child.pid, () => iperf3(ports.iperf[which], s.seconds, 1, false));
        runs[which].push({ value: result.gbps, cpu: (cpu ?? 0) / (result.bytes / 1e9) });
        say(`  tcpgate filter, bulk ${which}: ${result.gbps.toFixed(2)} Gbit/s`);
        await sleep(300);
      }
      recordSides("bulk", runs);
    }
    if (tools.has("redis-benchmark") && tools.has("redis-server")) {
      for (const pipeline of [1, 16]) {
        const requests = await redisRequestsFor(ports.redis.plain, s.seconds, pipeline);
        const runs: Record<"plain" | "filtered", { value: number; cpu: number }[]> = { plain: [], filtered: [] };
        for (const which of order) {
          const { result, cpu } = await measured(child.pid, () =>
            redisGet(ports.redis[which], requests, pipeline, s.seconds),
          );
          runs[which].push({ value: result.rps, cpu: ((cpu ?? 0) / result.requests) * 1e6 });
          say(`  tcpgate filter, redis -P ${pipeline} ${which}: ${result.rps.toFixed(0)} req/s`);
        }
        recordSides(`redis${pipeline}`, runs);
      }
    }
  } finally {
    await stopChild(child);
  }
}

async function reload(setup: ProxySetup, s: Settings, round: number, ports: { steady: number; a: number; b: number }) {
  const movingPort = (i: number) => (i % 2 === 0 ? ports.a : ports.b);
  const render = (i: number) =>
    tcpgateYaml([
      { name: "steady", listen: ports.steady, target: setup.backends.echo },
      {
        name: "moving",
        listen: movingPort(i),
        target: setup.backends.echo,
        extra: `    idleTimeout: ${60 + i}s\n    allow: [127.0.0.0/8, 10.${i % 256}.0.0/16]`,
      },
    ]);
  const name = `tcpgate-reload-r${round + 1}`;
  const args = s.reloadVia === "sighup" ? ["--no-watch"] : [];
  const child = startTcpgateWith(setup, name, render(0), args);
  try {
    await waitForPort(ports.steady, "tcpgate (reload)", child);
    await waitForPort(ports.a, "tcpgate (reload)", child);
    // chokidar is ready a moment after the listeners are: an edit before that goes unseen.
    await sleep(1000);
    const result = await reloadUnderLoad({
      configPath: join(setup.dir, `${name}.yaml`),
      render,
      movingPort,
      steadyPort: ports.steady,
      reloads: s.reloads,
      clients: s.reloadClients,
      via: s.reloadVia,
      pid: child.pid,
    });
    record(samples, "rl.written", "tcpgate", result.reloadsWritten);
    record(samples, "rl.confirmed", "tcpgate", result.reloadsConfirmed);
    record(samples, "rl.attempted", "tcpgate", result.attempted);
    record(samples, "rl.echoed", "tcpgate", result.echoed);
    record(samples, "rl.refused", "tcpgate", result.refused);
    record(samples, "rl.reset", "tcpgate", result.reset);
    record(samples, "rl.failed", "tcpgate", result.timedOut + result.otherErrors);
    say(
      `  tcpgate reload: ${result.reloadsConfirmed}/${result.reloadsWritten} reloads applied; ${result.attempted} ` +
        `connections, ${result.echoed} echoed, ${result.refused} refused, ${result.reset} reset, ` +
        `${result.timedOut} timed out, ${result.otherErrors} other ${result.otherCodes.join(" ")}`,
    );
    if (result.reloadsConfirmed < result.reloadsWritten) {
      note(`round ${round + 1}: ${result.reloadsWritten - result.reloadsConfirmed} reloads not seen applied in 5 s`);
    }
    if (result.otherCodes.length) note(`round ${round + 1}: reload client errors: ${result.otherCodes.join(", ")}`);
  } finally {
    await stopChild(child);
  }
  const rejected = readFileSync(join(setup.dir, "logs", `${name}.log`), "utf8").match(/reload rejected/g)?.length ?? 0;
  if (rejected) note(`round ${round + 1}: tcpgate logged ${rejected} rejected reloads (partial writes read mid-save?)`);
}

/** tcpgate runs at warn: any line it logged is worth a look (a refused accept, a target unreachable). */
function noteLogLines(dir: string): void {
  for (const file of readdirSync(join(dir, "logs")).filter((name) => name.startsWith("tcpgate"))) {
    const lines = readFileSync(join(dir, "logs", file), "utf8")
      .split("\n")
      .filter(Boolean);
    if (lines.length)
      note(`${file}: ${lines.length} log line(s) at warn or above, the first: ${lines[0]?.slice(0, 300)}`);
  }
}

// ---- the run ----------------------------------------------------------------------------

/** tcpgate's command line for the header: the Node by name, the flags as they are. */
function tcpgateRunAs(setup: ProxySetup): string {
  const { args } = tcpgateCommand(setup);
  return ["node", ...args.slice(0, -1), "dist/cli.js"].join(" ");
}

function rendered(
  machine: Machine,
  setup: ProxySetup,
  s: Settings,
  loadStart: string,
  loadEnd: string,
  idleCount: number,
): string {
  const summary = summarise(samples);
  const ranWorkers = Object.keys(samples).some((id) => id.startsWith("wk."));
  const minutes = ((Date.now() - started) / 60000).toFixed(1);
  const lines = [
    `# tcpgate bench, ${machine.date.slice(0, 10)}`,
    "",
    `- machine: ${machine.nproc} CPUs (${machine.cpu}), ${machine.memoryGiB} GiB, ${machine.kernel}; open-files limit ${machine.fdLimit}`,
    `- load average (1, 5, 15 min): ${loadStart} at the start, ${loadEnd} at the end; shared machine: expect noise`,
    `- tcpgate ${machine.tcpgate}, run as \`${tcpgateRunAs(setup)} --config … --log-level warn\` (the V8 flags from ` +
      `dist/cli.js's first line) on **Node ${machine.tcpgateNode}**, as is the node pipe proxy; the bench itself on ${machine.node}`,
    `- ${machine.haproxy} (mode tcp, nbthread 1${ranWorkers ? "; nbthread 2 too in the workers test" : ""}); ` +
      `${machine.nginx} (1 worker); ` +
      `${machine.redis}; ${machine.iperf3}; ${machine.wrk}`,
    `- ${s.rounds} round(s), ${s.seconds} s per test, proxies in rotating order; ${idleCount} idle connections; ` +
      `${s.reloads} reloads a round (${s.reloadVia === "file" ? "file rewritten in place, watcher" : "SIGHUP"}), ` +
      `${s.reloadClients} client loops; took ${minutes} min`,
    "- medians over rounds (counts of failures: summed); ×HAProxy and ×direct are value ÷ that column's value, " +
      "so read them with the 'better' arrow; CPU is the proxy process's utime+stime from /proc",
    "",
    markdownTable(summary),
    "",
  ];
  if (notes.length) lines.push("Notes:", "", ...notes.map((n) => `- ${n}`), "");
  return lines.join("\n");
}

async function main(): Promise<void> {
  const s = settings();
  const repoRoot = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
  const dir = process.env.BENCH_TMP ?? mkdtempSync(join(os.tmpdir(), "tcpgate-bench-"));
  mkdirSync(join(dir, "logs"), { recursive: true });
  recordPidsIn(join(dir, "pids"));
  say(`work folder ${dir}; ${JSON.stringify(s)}`);

  const tools = availableTools();
  const machine = machineFacts(repoRoot, s.node);
  const loadStart = loadAverage();
  const fdLimit = Number(machine.fdLimit) || 1024;
  // Each bridge holds two descriptors in the proxy; keep some for everything else.
  const idleCount = Math.min(s.idle, Math.floor((fdLimit - 200) / 2));
  if (idleCount < s.idle && s.tests.includes("idle")) {
    note(
      `idle bridges: ${idleCount} instead of ${s.idle}: the open-files limit is ${fdLimit} and cannot be raised here`,
    );
  }

  const proxies = s.proxies.filter((p) => {
    if (p === "haproxy" && !tools.has("haproxy")) {
      note("HAProxy is not installed: no HAProxy column, no ratios to it");
      return false;
    }
    return true;
  });
  const need: Record<string, string[]> = {
    bulk: ["iperf3"],
    rate: ["wrk", "nginx"],
    persistent: [],
    idle: [],
    admission: ["wrk", "nginx"],
    reload: [],
    front: [],
    filter: [],
    workers: ["wrk", "nginx"],
  };
  let tests = s.tests.filter((t) => {
    const missing = (need[t] ?? []).filter((tool) => !tools.has(tool));
    if (missing.length) note(`${t}: skipped, ${missing.join(" and ")} not installed`);
    return missing.length === 0;
  });
  if (tests.includes("persistent") && !tools.has("redis-benchmark"))
    note("redis-benchmark not installed: no redis rows");

  const [iperf, http, redis, echo, ...rest] = await freePorts(4 + 3 * 4 + 2 + 3 + 3 + 4);
  const take = (): number => {
    const port = rest.shift();
    if (port === undefined) throw new Error("out of ports");
    return port;
  };
  const backends: BackendPorts = { iperf: iperf ?? 0, http: http ?? 0, redis: redis ?? 0, echo: echo ?? 0 };
  const four = (): BackendPorts => ({ iperf: take(), http: take(), redis: take(), echo: take() });
  const setup: ProxySetup = {
    dir,
    repoRoot,
    node: s.node,
    backends,
    listen: { tcpgate: four(), haproxy: four(), "node-pipe": four() },
    fdLimit,
  };
  const admissionPorts = { open: take(), ruled: take() };
  const reloadPorts = { steady: take(), a: take(), b: take() };
  const frontPorts = { plain: take(), proxy: take(), routes: take() };
  const filterPorts: FilterPorts = {
    iperf: { plain: take(), filtered: take() },
    redis: { plain: take(), filtered: take() },
  };

  if (tests.includes("workers") && proxies.includes("tcpgate")) {
    const skip = await workersSkipReason(setup, machine.tcpgateNode);
    if (skip) {
      note(skip);
      tests = tests.filter((t) => t !== "workers");
    } else {
      const cores = coresNote(os.availableParallelism());
      if (cores) note(cores);
    }
  }
  const workers = workersConfigs(proxies.includes("haproxy"));

  say(`backends on 127.0.0.1: ${JSON.stringify(backends)}`);
  await startBackends(dir, backends, tools);

  for (let round = 0; round < s.rounds; round++) {
    const order = proxies.map((_, i) => proxies[(i + round) % proxies.length] as ProxyName);
    say(`round ${round + 1}/${s.rounds}: ${order.join(", ")}`);
    for (const test of tests) {
      if (stopping) break;
      if (test === "workers") {
        if (!proxies.includes("tcpgate")) continue;
        await workersRound({
          setup,
          seconds: s.seconds,
          round,
          configs: workers,
          redis: tools.has("redis-benchmark") && tools.has("redis-server"),
          samples,
          attempt,
          say,
          note,
        });
        continue;
      }
      if (test === "admission" || test === "reload" || test === "front" || test === "filter") {
        if (!proxies.includes("tcpgate")) continue;
        say(`round ${round + 1}: ${test}`);
        if (test === "admission")
          await attempt(`round ${round + 1} admission`, () => admission(setup, s, round, admissionPorts));
        else if (test === "front") await attempt(`round ${round + 1} front`, () => front(setup, s, round, frontPorts));
        else if (test === "filter")
          await attempt(`round ${round + 1} filter`, () => filterCost(setup, s, round, filterPorts, tools));
        else await attempt(`round ${round + 1} reload`, () => reload(setup, s, round, reloadPorts));
        continue;
      }
      say(`round ${round + 1}: ${test}`);
      for (const name of order) {
        if (stopping) break;
        await attempt(`round ${round + 1} ${test} ${name}`, () =>
          withProxy(name, setup, async (proxy) => {
            if (test === "bulk") await bulk(proxy, s);
            else if (test === "rate") await connectionRate(proxy, s);
            else if (test === "persistent") await persistent(proxy, s, tools);
            else await idle(proxy, s, idleCount);
          }),
        );
      }
    }
  }

  const loadEnd = loadAverage();
  await stopAll();
  noteLogLines(dir);

  const markdown = rendered(machine, setup, s, loadStart, loadEnd, idleCount);
  process.stdout.write(`\n${markdown}`);
  const full = !s.quick && s.proxies.length === ALL_PROXIES.length && s.tests.length === TESTS.length;
  const stem =
    process.env.BENCH_OUT ??
    join(repoRoot, "bench", "results", `${new Date().toLocaleDateString("sv-SE")}${full ? "" : "-quick"}`);
  mkdirSync(join(stem, ".."), { recursive: true });
  writeFileSync(`${stem}.md`, markdown);
  const figures = Object.fromEntries(FIGURES.map((fig) => [fig.id, { ...fig, samples: samples[fig.id] ?? {} }]));
  const raw = { machine, settings: s, idleCount, loadStart, loadEnd, proxies, tests, notes, labels: PROXY_LABELS };
  writeFileSync(`${stem}.json`, `${JSON.stringify({ ...raw, summary: summarise(samples), figures }, null, 2)}\n`);
  say(`wrote ${stem}.md and ${stem}.json`);
}

process.on("exit", killAllNow);
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.on(signal, () => {
    say(`${signal}: stopping everything the bench started`);
    stopping = true;
    void stopAll().finally(() => process.exit(130));
  });
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    say(`failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    void stopAll().finally(() => process.exit(1));
  },
);
