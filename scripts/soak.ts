// The soak: a real tcpgate (node dist/cli.js) under mixed traffic for a chosen time, with
// a reload every second and targets killed and restarted now and then. Every byte sent is
// checked when it comes back. At the end it prints what was verified and exits non-zero if
// any byte was lost or corrupted, any connection failed without a deliberate cause, a
// reload was rejected, the counters do not add up, or tcpgate died.
//
//   npm run soak                  five minutes
//   npm run soak -- 600           ten minutes (or SOAK_SECONDS=600)
//
// Traffic: bulk transfers (1-8 MiB, hashed with sha256 both ways and compared byte by
// byte), many short connections, idle connections that must survive every reload, and
// probes of a connection limit. Listener "stable" has a target that is never touched: any
// failure there counts. Listener "churn" has two targets that are SIGKILLed and restarted:
// a connection cut or refused there while a target is down is expected, and counted as
// interrupted or refused; the bytes it did get must still be exactly the bytes sent.
import { type Cipher, createCipheriv, createHash, type Hash, randomBytes, randomInt } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { connect, createServer, type Socket } from "node:net";
import { fetchAdmin } from "../test/support/admin.ts";
import { ChildEcho } from "../test/support/child-target.ts";
import { binNodeFlags, type Running, startTcpgate, tempConfig } from "../test/support/cli.ts";
import { delay, freePort } from "../test/support/net.ts";

const argSeconds = process.argv.slice(2).find((a) => /^\d+$/.test(a) || a.startsWith("--seconds="));
const SECONDS = Number(argSeconds?.replace("--seconds=", "") ?? process.env.SOAK_SECONDS ?? 300);
/** Scales the number of traffic workers (1 = the default mix). */
const LOAD = Number(process.env.SOAK_LOAD ?? 1);
if (!(SECONDS > 0) || !(LOAD > 0)) {
  process.stderr.write("usage: tsx scripts/soak.ts [seconds] (or SOAK_SECONDS; SOAK_LOAD scales the traffic)\n");
  process.exit(2);
}

const stats = {
  attempted: 0,
  completed: 0,
  bytesVerified: 0,
  bulkTransfers: 0,
  shortConnections: 0,
  idlePings: 0,
  /** Closed by tcpgate before an answer, for a reason we caused: every churn target down, or a limit. */
  refused: 0,
  refusedByLimit: 0,
  /** Cut by a deliberate target kill; what did arrive was checked and correct. */
  interrupted: 0,
  /** Ended or errored with no deliberate cause. */
  failed: 0,
  /** A clean end with bytes missing. */
  lost: 0,
  /** Bytes that came back different from those sent. */
  corrupted: 0,
  reloads: { applied: 0, rejected: 0, unchanged: 0, unanswered: 0 },
  restarts: 0,
  peakRssBytes: 0,
};
const problems: string[] = [];
/** Client ports of failed connections, to find tcpgate's own line about them at the end. */
const suspects: { index: number; listener: string; port: number }[] = [];
function problem(
  kind: "failed" | "lost" | "corrupted",
  text: string,
  client?: { listener: string; port: number },
): void {
  stats[kind]++;
  if (problems.length >= 20) return;
  if (client) suspects.push({ index: problems.length, ...client });
  problems.push(`${kind}: ${text}`);
}

// ---- targets and tcpgate ----

/**
 * A free port below the ephemeral range: a port that is bound again and again (a restarted
 * target, a listener that comes and goes) must not be taken meanwhile by one of the soak's
 * own outgoing connections, or the bind would fail for a reason of our making.
 */
async function quietPort(): Promise<number> {
  const [low = 32768] = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/).map(Number);
  for (let i = 0; i < 100; i++) {
    const port = randomInt(10_000, Math.max(10_001, low));
    const server = createServer();
    const free = await new Promise<boolean>((resolve) => {
      server.once("error", () => resolve(false));
      server.listen(port, "127.0.0.1", () => resolve(true));
    });
    if (free) {
      await new Promise((resolve) => server.close(resolve));
      return port;
    }
  }
  throw new Error("no free port below the ephemeral range");
}

const stable = await ChildEcho.start();
const churn = [await ChildEcho.start(await quietPort()), await ChildEcho.start(await quietPort())];
/**
 * What the churn targets went through. A connection that overlapped a kill (from the
 * signal until the process is gone: a dying target still completes handshakes, then
 * resets them) may be cut; one that saw every target down may be refused. One that ran
 * while a single target was down must be served by the other: that is failover, and a
 * failure there counts.
 */
const churnState = { killsStarted: 0, killsDone: 0, allDownSpells: 0, allDown: false };
type ChurnSeen = typeof churnState;

const ports = {
  stable: await freePort(),
  churn: await freePort(),
  limited: await freePort(),
  spare: await quietPort(),
};
const admin = await freePort();

/** Two configs that differ in something real, applied alternately. */
function configText(variant: 0 | 1): string {
  const listeners = [
    `  - name: stable`,
    `    listen: 127.0.0.1:${ports.stable}`,
    `    targets: ["${stable.address}"]`,
    `    idleTimeout: ${variant ? "30s" : "31s"}`,
    ...(variant ? [`    deny: [127.0.0.99]`] : []),
    `  - name: churn`,
    `    listen: 127.0.0.1:${ports.churn}`,
    `    targets: ["${churn[0]?.address}", "${churn[1]?.address}"]`,
    `    balance: ${variant ? "round-robin" : "least-connections"}`,
    `    connectTimeout: 1s`,
    `    healthCheck: { interval: 500ms, timeout: 500ms, fall: 2, rise: 1 }`,
    `  - name: limited`,
    `    listen: 127.0.0.1:${ports.limited}`,
    `    targets: ["${stable.address}"]`,
    `    maxConnections: 2`,
    // A listener that comes and goes with every other reload.
    ...(variant
      ? [`  - name: spare`, `    listen: 127.0.0.1:${ports.spare}`, `    targets: ["${stable.address}"]`]
      : []),
  ];
  return [
    "version: 1",
    "shutdownTimeout: 5s",
    `admin: { listen: "127.0.0.1:${admin}" }`,
    "log: { level: warn }",
    "listeners:",
    ...listeners,
    "",
  ].join("\n");
}

const config = tempConfig(configText(0));
let tcpgate: Running;
try {
  // Logs at warn: a line per bridge would only fill this process's memory. Ready is when
  // the admin endpoint answers.
  tcpgate = startTcpgate(["--config", config.path, "--no-watch"], { nodeArgs: binNodeFlags() });
  const until = Date.now() + 10_000;
  for (;;) {
    const up = await fetchAdmin(admin, "/healthz", { timeoutMs: 1000 }).then(
      (r) => r.status === 200,
      () => false,
    );
    if (up) break;
    if (Date.now() > until || tcpgate.child.exitCode !== null) {
      await tcpgate.stop("SIGKILL");
      throw new Error(`tcpgate did not start: ${tcpgate.stderr()}`);
    }
    await delay(100);
  }
} catch (error) {
  config.remove();
  await Promise.all([stable.kill(), ...churn.map((t) => t.kill())]);
  throw error;
}
let stopping = false;
let died: string | undefined;
tcpgate.exited.then((code) => {
  if (!stopping) died = `tcpgate exited with ${code ?? tcpgate.child.signalCode} during the soak`;
});

let deadline = Date.now() + SECONDS * 1000;
let signalled: string | undefined;
// Stopped early, the soak still stops its children and reports (and fails: it was cut short).
for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.once(signal, () => {
    signalled = signal;
    deadline = 0;
  });
}
const running = () => Date.now() < deadline && died === undefined;

// ---- verified streams ----

const ZEROS = Buffer.alloc(256 * 1024);

/** A deterministic random stream: AES-128-CTR over zeros. Two with the same key agree byte for byte. */
function keystream(key: Buffer, iv: Buffer): (n: number) => Buffer {
  const cipher: Cipher = createCipheriv("aes-128-ctr", key, iv);
  return (n) => cipher.update(ZEROS.subarray(0, n));
}

type Ending = "complete" | "short-end" | "error" | "timeout" | "corrupt";

/**
 * Sends `size` bytes, half-closes, and checks every byte that comes back (an echo) against
 * the same stream. Resolves with how it ended and how many bytes came back correct.
 */
function transfer(
  port: number,
  size: number,
  timeoutMs: number,
): Promise<{ ending: Ending; received: number; detail: string; port: number }> {
  stats.attempted++;
  const key = randomBytes(16);
  const iv = randomBytes(16);
  const next = keystream(key, iv);
  const expect = keystream(key, iv);
  const sentHash: Hash = createHash("sha256");
  const gotHash: Hash = createHash("sha256");
  return new Promise((resolve) => {
    const socket = connect({ port, host: "127.0.0.1" });
    let received = 0;
    let sent = 0;
    let settled = false;
    let localPort = 0;
    socket.once("connect", () => {
      localPort = socket.localPort ?? 0;
    });
    const done = (ending: Ending, detail = "") => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ ending, received, detail, port: localPort });
    };
    const timer = setTimeout(() => done("timeout", `${received} of ${size} bytes after ${timeoutMs} ms`), timeoutMs);
    socket.on("data", (chunk: Buffer) => {
      const wanted = expect(chunk.length);
      if (!chunk.equals(wanted) || received + chunk.length > size) {
        done("corrupt", `bytes differ at offset ${received}..${received + chunk.length} of ${size}`);
        return;
      }
      gotHash.update(chunk);
      received += chunk.length;
    });
    socket.on("end", () => {
      if (received < size) return done("short-end", `${received} of ${size} bytes, then a clean end`);
      const [a, b] = [sentHash.digest("hex"), gotHash.digest("hex")];
      done(a === b ? "complete" : "corrupt", a === b ? "" : `sha256 ${b} != ${a}`);
    });
    socket.on("error", (error: NodeJS.ErrnoException) => done("error", error.code ?? error.message));
    socket.on("close", () => done("error", `closed after ${received} of ${size} bytes`));
    const pump = () => {
      while (sent < size) {
        const chunk = next(Math.min(ZEROS.length, size - sent));
        sentHash.update(chunk);
        sent += chunk.length;
        if (!socket.write(chunk)) return;
      }
      socket.end();
    };
    socket.on("drain", pump);
    socket.once("connect", pump);
  });
}

/** Counts one finished stream: verified, expected (churn), or a problem. */
function account(
  listener: "stable" | "churn" | "limited",
  result: { ending: Ending; received: number; detail: string; port: number },
  seen: ChurnSeen,
  what: string,
): void {
  stats.bytesVerified += result.received;
  if (result.ending === "complete") {
    stats.completed++;
    return;
  }
  if (result.ending === "corrupt") {
    problem("corrupted", `${what} on ${listener}: ${result.detail}`);
    return;
  }
  const excused =
    listener === "churn" &&
    (churnState.killsStarted !== seen.killsDone || seen.allDown || churnState.allDownSpells !== seen.allDownSpells);
  if (excused) {
    if (result.received === 0) stats.refused++;
    else stats.interrupted++;
    return;
  }
  if (result.ending === "short-end")
    problem("lost", `${what} on ${listener}: ${result.detail}`, { listener, port: result.port });
  else problem("failed", `${what} on ${listener}: ${result.ending} ${result.detail}`, { listener, port: result.port });
}

// ---- traffic ----

async function bulkWorker(listener: "stable" | "churn", maxMiB: number): Promise<void> {
  while (running()) {
    const seen = { ...churnState };
    const size = randomInt(1024 * 1024, maxMiB * 1024 * 1024 + 1);
    const result = await transfer(ports[listener], size, 60_000);
    stats.bulkTransfers++;
    account(listener, result, seen, `a ${size}-byte transfer`);
    await delay(randomInt(0, Math.ceil(100 / LOAD)));
  }
}

async function shortWorker(listener: "stable" | "churn"): Promise<void> {
  while (running()) {
    const seen = { ...churnState };
    const result = await transfer(ports[listener], randomInt(1, 4097), 10_000);
    stats.shortConnections++;
    account(listener, result, seen, "a short connection");
    await delay(randomInt(2, Math.ceil(10 / LOAD)));
  }
}

/** Connections that sit idle between pings: each must live through every reload. */
async function idleWorker(): Promise<void> {
  stats.attempted++;
  const socket = connect({ port: ports.stable, host: "127.0.0.1" });
  let closed = false;
  socket.on("error", () => {});
  socket.on("close", () => {
    closed = true;
  });
  let inbox = Buffer.alloc(0);
  socket.on("data", (chunk: Buffer) => {
    inbox = Buffer.concat([inbox, chunk]);
  });
  try {
    while (running()) {
      await delay(randomInt(2000, 6000));
      if (!running()) break;
      if (closed) return problem("failed", "an idle connection on stable was closed");
      const ping = randomBytes(32);
      inbox = Buffer.alloc(0);
      socket.write(ping);
      const until = Date.now() + 10_000;
      while (inbox.length < ping.length && !closed && Date.now() < until) await delay(20);
      if (inbox.length < ping.length)
        return problem("failed", `an idle connection's ping got ${inbox.length} of 32 bytes`);
      if (!inbox.equals(ping)) return problem("corrupted", "an idle connection's ping came back different");
      stats.idlePings++;
      stats.bytesVerified += ping.length;
    }
    stats.completed++;
  } finally {
    socket.destroy();
  }
}

/** Two connections fill "limited" (maxConnections 2); a third must be refused. */
async function limitWorker(): Promise<void> {
  while (running()) {
    // The last round's bridges end asynchronously: wait for their slots to come back.
    const until = Date.now() + 5000;
    while ((await openOn("limited")) > 0 && Date.now() < until) await delay(50);
    const held = await Promise.all([transferHeld(), transferHeld()]);
    if (held.every((h) => h.ok)) {
      const third = await transfer(ports.limited, 16, 5000);
      if (third.received === 0 && (third.ending === "error" || third.ending === "short-end")) {
        stats.refused++;
        stats.refusedByLimit++;
      } else problem("failed", `a third connection to limited (maxConnections 2) was served: ${third.ending}`);
    }
    for (const h of held) h.socket?.destroy();
    await delay(200);
  }
}

/** A connection to "limited" that is confirmed bridged (an echo) and kept open. */
async function transferHeld(): Promise<{ ok: boolean; socket?: Socket }> {
  stats.attempted++;
  const socket = connect({ port: ports.limited, host: "127.0.0.1" });
  socket.on("error", () => {});
  const ping = randomBytes(8);
  const ok = await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), 5000);
    let got = Buffer.alloc(0);
    socket.on("data", (c: Buffer) => {
      got = Buffer.concat([got, c]);
      if (got.length >= ping.length) {
        clearTimeout(timer);
        resolve(got.equals(ping));
      }
    });
    socket.once("close", () => {
      clearTimeout(timer);
      resolve(false);
    });
    socket.once("connect", () => socket.write(ping));
  });
  if (ok) {
    stats.completed++;
    stats.bytesVerified += ping.length;
  } else {
    problem("failed", "a connection to limited was not served while below its limit");
  }
  return { ok, socket };
}

// ---- reloads, restarts, memory ----

async function openOn(listener: string): Promise<number> {
  const reply = await fetchAdmin(admin, "/status", { timeoutMs: 5000 });
  const body = JSON.parse(reply.body) as { listeners: { name: string; openBridges: number }[] };
  return body.listeners.find((l) => l.name === listener)?.openBridges ?? 0;
}

interface ReloadState {
  at: string;
  trigger: string;
  outcome: "applied" | "rejected" | "unchanged";
  errors: string[];
}

async function lastReload(): Promise<ReloadState | null> {
  const reply = await fetchAdmin(admin, "/status", { timeoutMs: 5000 });
  return (JSON.parse(reply.body) as { lastReload: ReloadState | null }).lastReload;
}

function countReload(outcome: ReloadState["outcome"], errors: string[]): void {
  stats.reloads[outcome]++;
  if (outcome === "rejected" && problems.length < 20) problems.push(`reload rejected: ${errors.join("; ")}`);
}

/** Every second a real change, applied alternately by SIGHUP and by POST /reload. */
async function reloader(): Promise<void> {
  let variant: 0 | 1 = 0;
  for (let i = 0; running(); i++) {
    const started = Date.now();
    variant = variant ? 0 : 1;
    writeFileSync(config.path, configText(variant));
    try {
      if (i % 2 === 0) {
        const before = await lastReload();
        process.kill(tcpgate.pid, "SIGHUP");
        const until = Date.now() + 5000;
        let after = before;
        while ((after?.at === before?.at || after?.trigger !== "signal") && Date.now() < until) {
          await delay(20);
          after = await lastReload();
        }
        if (after && after !== before && after.at !== before?.at) countReload(after.outcome, after.errors);
        else stats.reloads.unanswered++;
      } else {
        const reply = await fetchAdmin(admin, "/reload", { method: "POST", timeoutMs: 5000 });
        const body = JSON.parse(reply.body) as ReloadState;
        countReload(body.outcome, body.errors ?? []);
      }
    } catch (error) {
      stats.reloads.unanswered++;
      if (problems.length < 20) problems.push(`reload: ${String(error)}`);
    }
    await delay(Math.max(0, 1000 - (Date.now() - started)));
  }
}

/** Every few seconds one churn target (every third time both) is SIGKILLed and restarted. */
async function restarter(): Promise<void> {
  for (let round = 1; running(); round++) {
    await delay(4000);
    if (!running()) break;
    const victims = round % 3 === 0 ? churn : [churn[round % 2] as ChildEcho];
    churnState.killsStarted++;
    if (victims.length === churn.length) {
      churnState.allDown = true;
      churnState.allDownSpells++;
    }
    await Promise.all(victims.map((t) => t.kill("SIGKILL")));
    churnState.killsDone++;
    await delay(randomInt(300, 1200));
    for (const t of victims) {
      try {
        await t.restart();
        stats.restarts++;
      } catch (error) {
        problem("failed", `a churn target could not be restarted: ${String(error)}`);
      }
    }
    churnState.allDown = false;
  }
}

function rss(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB$`, "m").exec(status)?.[1] ?? 0) * 1024;
  return { rss: kb("VmRSS"), hwm: kb("VmHWM") };
}

async function memoryWatch(): Promise<void> {
  while (running()) {
    try {
      stats.peakRssBytes = Math.max(stats.peakRssBytes, rss(tcpgate.pid).hwm);
    } catch {
      // Gone: the exit handler says why.
    }
    await delay(1000);
  }
}

// ---- the run ----

const startedAt = Date.now();
process.stdout.write(
  `soak: ${SECONDS} s against tcpgate pid ${tcpgate.pid} (node ${binNodeFlags().join(" ")}, load ×${LOAD})\n`,
);
const times = (n: number) => Math.max(1, Math.round(n * LOAD));
const workers = [
  ...Array.from({ length: times(2) }, () => bulkWorker("stable", 8)),
  ...Array.from({ length: times(1) }, () => bulkWorker("churn", 4)),
  ...Array.from({ length: times(3) }, () => shortWorker("stable")),
  ...Array.from({ length: times(2) }, () => shortWorker("churn")),
  ...Array.from({ length: times(10) }, () => idleWorker()),
  limitWorker(),
  reloader(),
  restarter(),
  memoryWatch(),
];
const progress = setInterval(() => {
  const s = Math.round((Date.now() - startedAt) / 1000);
  process.stdout.write(
    `  ${s}s: ${stats.attempted} connections, ${(stats.bytesVerified / 1024 / 1024).toFixed(0)} MiB verified, ${stats.reloads.applied} reloads, ${stats.restarts} restarts, ${stats.failed + stats.lost + stats.corrupted} problems\n`,
  );
}, 10_000);
await Promise.all(workers);
clearInterval(progress);

// ---- the end: a quiet moment, the books, a clean stop ----

const checks: string[] = [];
let exitCode: number | null = null;
try {
  if (died === undefined) {
    for (const t of churn) await t.restart();
    stats.peakRssBytes = Math.max(stats.peakRssBytes, rss(tcpgate.pid).hwm);
    type ListenerStatus = {
      name: string;
      openBridges: number;
      accepted: number;
      closed: number;
      refused: Record<string, number>;
    };
    let listeners: ListenerStatus[] = [];
    const until = Date.now() + 10_000;
    do {
      await delay(100);
      listeners = (JSON.parse((await fetchAdmin(admin, "/status")).body) as { listeners: ListenerStatus[] }).listeners;
    } while (listeners.some((l) => l.openBridges > 0) && Date.now() < until);
    let accepted = 0;
    for (const l of listeners) {
      const refused = Object.values(l.refused).reduce((a, b) => a + b, 0);
      accepted += l.accepted;
      if (l.openBridges !== 0) checks.push(`${l.name}: ${l.openBridges} bridges still open at the end`);
      if (l.accepted !== refused + l.closed + l.openBridges)
        checks.push(
          `${l.name}: accepted ${l.accepted} != refused ${refused} + closed ${l.closed} + open ${l.openBridges}`,
        );
    }
    if (accepted !== stats.attempted)
      checks.push(`tcpgate accepted ${accepted} connections, the soak made ${stats.attempted}`);
    if (stats.reloads.rejected + stats.reloads.unanswered > 0) checks.push("some reloads were not applied");
    if (stats.reloads.applied === 0) checks.push("no reload was applied");
    stopping = true;
    exitCode = await tcpgate.stop("SIGTERM", 15_000);
    if (exitCode !== 0) checks.push(`tcpgate exited with ${exitCode} after SIGTERM`);
  }
} catch (error) {
  checks.push(`the final checks failed: ${String(error)}`);
} finally {
  stopping = true;
  await tcpgate.stop("SIGKILL", 1000);
  config.remove();
  await Promise.all([stable.kill(), ...churn.map((t) => t.kill())]);
}

const mib = (n: number) => (n / 1024 / 1024).toFixed(1);
const lines = [
  `soak finished after ${Math.round((Date.now() - startedAt) / 1000)} s`,
  `  bytes verified:        ${stats.bytesVerified} (${mib(stats.bytesVerified)} MiB, each compared with what was sent; bulk also by sha256)`,
  `  connections attempted: ${stats.attempted} (${stats.bulkTransfers} bulk, ${stats.shortConnections} short, ${times(10)} idle with ${stats.idlePings} pings, the rest limit probes)`,
  `  completed:             ${stats.completed}`,
  `  refused (expected):    ${stats.refused} (${stats.refused - stats.refusedByLimit} while every churn target was deliberately down, ${stats.refusedByLimit} at maxConnections)`,
  `  interrupted (expected):${stats.interrupted} (cut by a target kill; bytes received were correct)`,
  `  failed:                ${stats.failed}`,
  `  lost:                  ${stats.lost}`,
  `  corrupted:             ${stats.corrupted}`,
  `  reloads:               ${stats.reloads.applied} applied, ${stats.reloads.rejected} rejected, ${stats.reloads.unchanged} unchanged, ${stats.reloads.unanswered} unanswered`,
  `  target restarts:       ${stats.restarts}`,
  `  peak RSS of tcpgate:   ${stats.peakRssBytes} bytes (${mib(stats.peakRssBytes)} MiB, VmHWM)`,
  `  tcpgate:               ${died ?? `alive throughout, exit ${exitCode} after SIGTERM`}`,
  ...problems.map((p) => `  ! ${p}`),
  ...checks.map((c) => `  ! ${c}`),
];
if (signalled) checks.push(`stopped early by ${signalled}`);
// tcpgate logs at warn: a bridge whose targets could not be reached has a line that says why.
for (const { index, listener, port } of suspects) {
  const line = tcpgate.logs.findLast((l) => l.listener === listener && l.clientPort === port);
  if (line)
    problems[index] += ` (tcpgate, client port ${port}: ${line.msg}, ${JSON.stringify(line.errors ?? line.end)})`;
}
const ok = died === undefined && stats.failed + stats.lost + stats.corrupted === 0 && checks.length === 0;
process.stdout.write(`${lines.join("\n")}\n${ok ? "PASS" : "FAIL"}\n`);
process.stdout.write(`${JSON.stringify({ soak: { ok, seconds: SECONDS, ...stats, died: died ?? null, checks } })}\n`);
process.exit(ok ? 0 : 1);
