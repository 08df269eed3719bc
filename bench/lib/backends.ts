// The real servers every proxy forwards to, all on 127.0.0.1 and all started from the
// bench's own temporary folder (own configs, own logs, no system service touched):
// iperf3 (bulk), nginx with one worker serving a small file (HTTP rates), redis-server
// without persistence (persistent request/response), and a Node echo server (idle
// bridges, admission, reload).
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { type Child, runTool, startChild, waitForPort } from "./proc.ts";

export interface BackendPorts {
  iperf: number;
  http: number;
  redis: number;
  echo: number;
}

/** The file wrk fetches: 100 bytes, so headers and connection handling dominate, not bytes. */
export const SMALL_FILE = "/small.txt";

export async function startBackends(dir: string, ports: BackendPorts, tools: Set<string>): Promise<Child[]> {
  const started: Child[] = [];
  const benchDir = new URL("..", import.meta.url).pathname;

  const echo = startChild(
    "echo",
    process.execPath,
    [join(benchDir, "echo-server.mjs"), String(ports.echo)],
    log(dir, "echo"),
  );
  started.push(echo);
  await waitForPort(ports.echo, "echo server", echo);

  if (tools.has("iperf3")) {
    const iperfLog = log(dir, "iperf3-server");
    const iperf = startChild(
      "iperf3 server",
      "iperf3",
      ["-s", "-B", "127.0.0.1", "-p", String(ports.iperf), "--idle-timeout", "30", "--forceflush"],
      iperfLog,
    );
    started.push(iperf);
    // A probe connection would make iperf3 log a failed test: wait for its banner instead.
    const deadline = Date.now() + 10_000;
    while (!readFileSync(iperfLog, "utf8").includes("Server listening")) {
      if (Date.now() > deadline || iperf.proc.exitCode !== null) throw new Error("iperf3 server did not start");
      await sleep(50);
    }
  }

  if (tools.has("nginx")) {
    const root = join(dir, "nginx");
    mkdirSync(join(root, "www"), { recursive: true });
    mkdirSync(join(root, "temp"), { recursive: true });
    writeFileSync(join(root, "www", SMALL_FILE.slice(1)), `${"x".repeat(99)}\n`);
    const temp = (what: string) => `${what}_temp_path ${join(root, "temp", what)};`;
    writeFileSync(
      join(root, "nginx.conf"),
      [
        "daemon off;",
        "master_process off;",
        "worker_processes 1;",
        `pid ${join(root, "nginx.pid")};`,
        `error_log ${join(root, "error.log")} warn;`,
        "events { worker_connections 16384; }",
        "http {",
        "  access_log off;",
        "  default_type text/plain;",
        "  keepalive_requests 10000000;",
        "  keepalive_timeout 120s;",
        `  ${temp("client_body")} ${temp("proxy")} ${temp("fastcgi")} ${temp("uwsgi")} ${temp("scgi")}`,
        "  server {",
        `    listen 127.0.0.1:${ports.http} backlog=4096;`,
        `    root ${join(root, "www")};`,
        "  }",
        "}",
        "",
      ].join("\n"),
    );
    const nginx = startChild(
      "nginx",
      "nginx",
      ["-p", root, "-e", join(root, "error.log"), "-c", join(root, "nginx.conf")],
      log(dir, "nginx"),
    );
    started.push(nginx);
    await waitForPort(ports.http, "nginx", nginx);
  }

  if (tools.has("redis-server")) {
    const redisDir = join(dir, "redis");
    mkdirSync(redisDir, { recursive: true });
    const redis = startChild(
      "redis-server",
      "redis-server",
      [
        "--port",
        String(ports.redis),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--protected-mode",
        "no",
        "--daemonize",
        "no",
        "--dir",
        redisDir,
        "--logfile",
        join(redisDir, "redis.log"),
      ],
      log(dir, "redis"),
    );
    started.push(redis);
    await waitForPort(ports.redis, "redis-server", redis);
    // redis-benchmark GETs this very key: give it a value, so every GET returns 3 bytes.
    await runTool("redis-cli", ["-h", "127.0.0.1", "-p", String(ports.redis), "SET", "key:__rand_int__", "xxx"], 5000);
  }
  return started;
}

function log(dir: string, name: string): string {
  const path = join(dir, "logs");
  if (!existsSync(path)) mkdirSync(path, { recursive: true });
  return join(path, `${name}.log`);
}
