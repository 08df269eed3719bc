// The workers test: how tcpgate's rates grow with its event loops (`workers: 1`, `2` and
// `auto`), beside HAProxy with `nbthread 1` and `2`, all five in the same round, in an
// order that rotates from round to round. Each starts fresh and is warmed up like the
// other rate tests, then carries wrk with Connection: close (a new connection per
// request), wrk keep-alive and redis-benchmark GET. Its CPU is the process's over all its
// threads (/proc/<pid>/stat), so the worker threads are counted. The scaling figure,
// 2 threads ÷ 1, divides figures of the same round.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { type RateResult, redisGet, redisRequestsFor, warmUp, wrk } from "./load-tools.ts";
import { measured, runTool } from "./proc.ts";
import { type ProxySetup, startProxy, type Threads, tcpgateCommand, tcpgateYaml } from "./proxies.ts";
import { record, type Samples, WORKERS_THREADS } from "./report.ts";

export interface WorkersConfig {
  proxy: "tcpgate" | "haproxy";
  threads: Threads;
}

type Load = "close" | "ka" | "redis";

/** tcpgate with every thread count of the table; HAProxy (when it runs) with the numeric ones. */
export function workersConfigs(haproxy: boolean): WorkersConfig[] {
  const tcpgate = WORKERS_THREADS.map((threads): WorkersConfig => ({ proxy: "tcpgate", threads }));
  const numeric = WORKERS_THREADS.filter((threads) => threads !== "auto");
  return [...tcpgate, ...(haproxy ? numeric.map((threads): WorkersConfig => ({ proxy: "haproxy", threads })) : [])];
}

const label = (c: WorkersConfig): string =>
  c.proxy === "tcpgate" ? `tcpgate workers: ${c.threads}` : `HAProxy nbthread ${c.threads}`;

/**
 * Why the workers test cannot run, as a note, or undefined when it can: tcpgate itself is
 * asked (`--check` of a `workers: 2` config, on the Node that will run it), so the rule
 * (SO_REUSEPORT: Node 22.12 or later) lives in tcpgate only.
 */
export async function workersSkipReason(setup: ProxySetup, nodeVersion: string): Promise<string | undefined> {
  const config = join(setup.dir, "workers-check.yaml");
  const ports = setup.listen.tcpgate;
  writeFileSync(config, tcpgateYaml([{ name: "check", listen: ports.http, target: setup.backends.http }], 2), {
    mode: 0o644,
  });
  const { command, args } = tcpgateCommand(setup);
  const run = await runTool(command, [...args, "--config", config, "--check"], 30_000);
  if (run.code === 0) return undefined;
  const said = (run.stderr.trim() || run.stdout.trim() || `exit ${run.code}`)
    .split("\n")[0]
    ?.replace(`${config}: `, "");
  return (
    `workers: skipped: tcpgate on Node ${nodeVersion} refuses \`workers: 2\` ("${said}"). Run the bench with ` +
    "`--node PATH` (or `BENCH_NODE=PATH`) naming a Node 22.12 or later (SO_REUSEPORT); tcpgate and the node pipe " +
    "proxy then run on it in every test"
  );
}

/** Said under the table whenever the test ran on a machine where the clients cannot have cores of their own. */
export function coresNote(cores: number): string | undefined {
  // Two workers, wrk and nginx (or redis-benchmark and redis) are four busy threads.
  if (cores >= 4) return undefined;
  return (
    `workers: this machine has ${cores} cores, and the load generator (wrk, redis-benchmark) and the backend ` +
    "(nginx, redis) compete with the workers for them: `workers: 2` cannot have two cores to itself, so the " +
    `2 ÷ 1 figures understate what a machine with cores to spare gives; \`workers: auto\` is ${cores} here`
  );
}

export interface WorkersRound {
  setup: ProxySetup;
  seconds: number;
  /** 0-based: the order of the configurations rotates with it. */
  round: number;
  configs: WorkersConfig[];
  /** Whether redis-benchmark and redis-server are there. */
  redis: boolean;
  samples: Samples;
  /** Runs one configuration; a failure is noted and the round goes on. */
  attempt(what: string, work: () => Promise<void>): Promise<void>;
  say(message: string): void;
  note(message: string): void;
}

export async function workersRound(r: WorkersRound): Promise<void> {
  const order = r.configs.map((_, i) => r.configs[(i + r.round) % r.configs.length] as WorkersConfig);
  r.say(`round ${r.round + 1}: workers: ${order.map(label).join(", ")}`);
  const rates = new Map<string, Partial<Record<Load, number>>>();
  for (const config of order) {
    await r.attempt(`round ${r.round + 1} workers, ${label(config)}`, async () => {
      rates.set(`${config.proxy} ${config.threads}`, await oneConfig(config, r));
    });
  }
  for (const load of ["close", "ka", "redis"] as const) {
    for (const proxy of ["tcpgate", "haproxy"] as const) {
      const one = rates.get(`${proxy} 1`)?.[load];
      const two = rates.get(`${proxy} 2`)?.[load];
      if (one && two) record(r.samples, `wk.${load}.scale`, proxy, two / one);
    }
  }
}

/** One configuration, started fresh: its three loads, recorded; their rates returned for the scaling rows. */
async function oneConfig(config: WorkersConfig, r: WorkersRound): Promise<Partial<Record<Load, number>>> {
  const rates: Partial<Record<Load, number>> = {};
  const keep = (load: Load, what: string, { result, cpu }: { result: RateResult; cpu: number | null }) => {
    const cpuUs = cpu === null ? null : (cpu / result.requests) * 1e6;
    const id = (figure: string) => `wk.${load}.${figure}.${config.threads}`;
    record(r.samples, id("rps"), config.proxy, result.rps);
    record(r.samples, id("p99"), config.proxy, result.p99ms);
    record(r.samples, id("cpu"), config.proxy, cpuUs);
    if (load !== "redis") record(r.samples, `wk.${load}.errors`, config.proxy, result.errors);
    if (result.errors > 0) r.note(`round ${r.round + 1}: ${label(config)}, ${what}: ${result.errors} wrk errors`);
    rates[load] = result.rps;
    r.say(
      `  ${label(config)} ${what}: ${result.rps.toFixed(0)} req/s, p99 ${result.p99ms} ms, CPU ${cpuUs?.toFixed(1) ?? "—"} µs`,
    );
  };
  const proxy = await startProxy(config.proxy, r.setup, config.threads);
  try {
    const { http, redis } = proxy.ports;
    await warmUp(http);
    keep("close", "wrk close", await measured(proxy.pid, () => wrk(http, r.seconds, true)));
    keep("ka", "wrk keep-alive", await measured(proxy.pid, () => wrk(http, r.seconds, false)));
    if (r.redis) {
      const requests = await redisRequestsFor(redis, r.seconds, 1);
      keep("redis", "redis GET", await measured(proxy.pid, () => redisGet(redis, requests, 1, r.seconds)));
    }
  } finally {
    await proxy.stop();
  }
  return rates;
}
