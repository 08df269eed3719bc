import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { startTcpgate, tempConfig } from "../support/cli.ts";
import { delay, dial, freePort, startEcho } from "../support/net.ts";

/** The timer kind of the socket local → remote in /proc/net/tcp: 0 none, 2 keep-alive. */
function timerOf(localPort: number, remotePort: number): number | undefined {
  const hex = (port: number) => port.toString(16).toUpperCase().padStart(4, "0");
  for (const line of readFileSync("/proc/net/tcp", "utf8").split("\n").slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields[1]?.endsWith(`:${hex(localPort)}`) && fields[2]?.endsWith(`:${hex(remotePort)}`)) {
      return Number.parseInt(fields[5]?.split(":")[0] ?? "", 16);
    }
  }
  return undefined;
}

test("bridges that outlive their first second get TCP keep-alive on both sides", { timeout: 20_000 }, async () => {
  const echo = await startEcho();
  const port = await freePort();
  const config = tempConfig(
    `version: 1\nlisteners:\n  - name: web\n    listen: 127.0.0.1:${port}\n    targets: ["${echo.address}"]\n`,
  );
  const proxy = startTcpgate(["--config", config.path, "--no-watch"]);
  try {
    await proxy.waitForLog((l) => l.msg === "tcpgate started");
    const client = await dial(port);
    await delay(200);
    const clientSide = () => timerOf(port, client.localPort ?? 0);
    const targetSide = () => {
      const [socket] = echo.sockets;
      return socket ? timerOf(socket.remotePort ?? 0, echo.port) : undefined;
    };
    assert.equal(clientSide(), 0, "no keep-alive on a young bridge");
    assert.equal(targetSide(), 0);
    await delay(2300);
    assert.equal(clientSide(), 2, "keep-alive timer on the proxy's client-side socket");
    assert.equal(targetSide(), 2, "keep-alive timer on the proxy's target-side socket");
    client.destroy();
  } finally {
    await proxy.stop();
    await echo.close();
    config.remove();
  }
});
