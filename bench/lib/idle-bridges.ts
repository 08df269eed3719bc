// Idle bridges: N connections opened through the proxy to the echo server, each proved
// end to end with one echoed message, then held with no traffic; the proxy's RSS is read
// before and after, and at the end every connection must still echo.
import net from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { memoryKiB } from "./proc.ts";

export interface IdleResult {
  /** Connections asked for, opened and echoing, and still echoing after the hold. */
  asked: number;
  opened: number;
  echoedAfterHold: number;
  /** Proxy RSS per open connection, KiB (null without a proxy process). */
  rssPerConnKiB: number | null;
  rssBeforeKiB: number | null;
  rssAfterKiB: number | null;
  openSeconds: number;
}

const MESSAGE = Buffer.from("ping\n");
const OPEN_CONCURRENCY = 200;

class Conn {
  readonly socket: net.Socket;
  private received = 0;
  private waiter: (() => void) | undefined;
  failed = false;

  constructor(port: number) {
    this.socket = net.connect({ port, host: "127.0.0.1" });
    this.socket.on("data", (chunk: Buffer) => {
      this.received += chunk.length;
      this.wake();
    });
    this.socket.on("error", () => this.fail());
    this.socket.on("close", () => this.fail());
  }

  private fail(): void {
    this.failed = true;
    this.wake();
  }

  private wake(): void {
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.();
  }

  /** Sends one message and waits for all of it back; false on error, close or timeout. */
  async echo(timeoutMs: number): Promise<boolean> {
    if (this.failed) return false;
    const want = this.received + MESSAGE.length;
    this.socket.write(MESSAGE);
    const deadline = Date.now() + timeoutMs;
    while (this.received < want && !this.failed) {
      const left = deadline - Date.now();
      if (left <= 0) return false;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    return this.received >= want && !this.failed;
  }
}

export async function idleBridges(
  port: number,
  count: number,
  holdMs: number,
  pid: number | null,
): Promise<IdleResult> {
  const rssBeforeKiB = pid === null ? null : memoryKiB(pid);
  const conns: Conn[] = [];
  const started = Date.now();
  let opened = 0;
  let next = 0;
  // A bounded number of connects in flight: the listen backlog is not what is measured.
  const opener = async () => {
    while (next < count) {
      next += 1;
      const conn = new Conn(port);
      conns.push(conn);
      if (await conn.echo(10_000)) opened += 1;
    }
  };
  try {
    await Promise.all(Array.from({ length: OPEN_CONCURRENCY }, opener));
    const openSeconds = (Date.now() - started) / 1000;
    await sleep(holdMs);
    const rssAfterKiB = pid === null ? null : memoryKiB(pid);
    const echoes = await Promise.all(conns.map((conn) => conn.echo(20_000)));
    const echoedAfterHold = echoes.filter(Boolean).length;
    const rssPerConnKiB =
      rssBeforeKiB === null || rssAfterKiB === null || opened === 0 ? null : (rssAfterKiB - rssBeforeKiB) / opened;
    return { asked: count, opened, echoedAfterHold, rssPerConnKiB, rssBeforeKiB, rssAfterKiB, openSeconds };
  } finally {
    for (const conn of conns) conn.socket.destroy();
    await sleep(500);
  }
}
