// The load generators, each run to completion under a hard time limit, and what their
// output says: iperf3 (JSON), wrk (its --latency text) and redis-benchmark (--csv).
import { SMALL_FILE } from "./backends.ts";
import { runTool } from "./proc.ts";

export interface BulkResult {
  gbps: number;
  bytes: number;
}

export interface RateResult {
  rps: number;
  requests: number;
  p50ms: number;
  p99ms: number;
  errors: number;
}

/** iperf3 through `port` for `seconds`: `streams` parallel streams, server-to-client when `reverse`. */
export async function iperf3(port: number, seconds: number, streams: number, reverse: boolean): Promise<BulkResult> {
  const args = ["-c", "127.0.0.1", "-p", String(port), "-t", String(seconds), "-P", String(streams), "-J"];
  args.push("--connect-timeout", "3000");
  if (reverse) args.push("-R");
  const run = await runTool("iperf3", args, (seconds + 20) * 1000);
  let report: { error?: string; end?: { sum_received?: { bytes: number; bits_per_second: number } } };
  try {
    report = JSON.parse(run.stdout);
  } catch {
    throw new Error(
      `iperf3: no JSON report (${run.timedOut ? "timed out" : `exit ${run.code}`}): ${run.stderr.trim()}`,
    );
  }
  const sum = report.end?.sum_received;
  if (report.error || !sum) throw new Error(`iperf3: ${report.error ?? "no sum_received in its report"}`);
  return { gbps: sum.bits_per_second / 1e9, bytes: sum.bytes };
}

/** wrk for `seconds` with 50 connections on one thread; `close` sends Connection: close (a connection per request). */
export async function wrk(port: number, seconds: number, close: boolean): Promise<RateResult> {
  const args = ["-t1", "-c50", `-d${seconds}s`, "--latency", "--timeout", "5s"];
  if (close) args.push("-H", "Connection: close");
  args.push(`http://127.0.0.1:${port}${SMALL_FILE}`);
  const run = await runTool("wrk", args, (seconds + 20) * 1000);
  const out = run.stdout;
  const rps = /^Requests\/sec:\s+([\d.]+)/m.exec(out);
  const requests = /^\s*(\d+) requests in/m.exec(out);
  const p50 = /^\s+50%\s+([\d.]+)(us|ms|s)\s*$/m.exec(out);
  const p99 = /^\s+99%\s+([\d.]+)(us|ms|s)\s*$/m.exec(out);
  if (!rps?.[1] || !requests?.[1] || !p50 || !p99) {
    throw new Error(`wrk: unreadable output (${run.timedOut ? "timed out" : `exit ${run.code}`}): ${out}${run.stderr}`);
  }
  const socketErrors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  let errors = Number(non2xx?.[1] ?? 0);
  if (socketErrors) errors += socketErrors.slice(1).reduce((sum, n) => sum + Number(n), 0);
  return {
    rps: Number(rps[1]),
    requests: Number(requests[1]),
    p50ms: toMs(p50[1] ?? "0", p50[2] ?? "ms"),
    p99ms: toMs(p99[1] ?? "0", p99[2] ?? "ms"),
    errors,
  };
}

/** One second of keep-alive load before a rate is measured: the proxy's code paths are hot, its pools filled. */
export async function warmUp(port: number): Promise<void> {
  await wrk(port, 1, false);
}

function toMs(value: string, unit: string): number {
  const n = Number(value);
  return unit === "us" ? n / 1000 : unit === "s" ? n * 1000 : n;
}

/**
 * redis-benchmark counts requests, not seconds: a short run (which also warms the path
 * up) tells how many requests make about `seconds` of the measured run.
 */
export async function redisRequestsFor(port: number, seconds: number, pipeline: number): Promise<number> {
  const calibration = await redisBenchmark(port, pipeline === 1 ? 10_000 : 50_000, pipeline, 30);
  return Math.min(50_000_000, Math.max(10_000, Math.round(calibration.rps * seconds)));
}

/** redis-benchmark GET with 50 clients, `pipeline` requests per round trip; bounded in time all the same. */
export function redisGet(port: number, requests: number, pipeline: number, seconds: number): Promise<RateResult> {
  return redisBenchmark(port, requests, pipeline, seconds * 4 + 20);
}

async function redisBenchmark(port: number, requests: number, pipeline: number, limitS: number): Promise<RateResult> {
  const args = ["-h", "127.0.0.1", "-p", String(port), "-c", "50", "-n", String(requests), "-t", "get"];
  args.push("-P", String(pipeline), "--csv");
  const run = await runTool("redis-benchmark", args, limitS * 1000);
  // "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
  const row = run.stdout
    .split("\n")
    .map((line) => line.replace(/"/g, "").split(","))
    .find((cells) => cells[0] === "GET");
  if (!row || run.timedOut) {
    throw new Error(`redis-benchmark: no result (${run.timedOut ? "timed out" : `exit ${run.code}`}): ${run.stderr}`);
  }
  return { rps: Number(row[1]), requests, p50ms: Number(row[4]), p99ms: Number(row[6]), errors: 0 };
}
