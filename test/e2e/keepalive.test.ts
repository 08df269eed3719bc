import assert from "node:assert/strict";
import { test } from "node:test";
import { startGate } from "../support/cli.ts";
import { dial, eventually, freePort, startEcho, tcpTimer } from "../support/net.ts";
import { exchange } from "../support/reload.ts";

test("bridges that outlive their first second get TCP keep-alive on both sides", { timeout: 20_000 }, async () => {
  const echo = await startEcho();
  const port = await freePort();
  const gate = await startGate(
    `version: 1\nlisteners:\n  - name: web\n    listen: 127.0.0.1:${port}\n    targets: ["${echo.address}"]\n`,
  );
  try {
    const client = await dial(port);
    // An echo back means the bridge is joined: both of the proxy's sockets exist.
    assert.equal(await exchange(client, "joined", 6), "joined");
    const clientSide = () => tcpTimer(port, client.localPort ?? 0);
    const targetSide = () => {
      const [socket] = echo.sockets;
      return socket ? tcpTimer(socket.remotePort ?? 0, echo.port) : undefined;
    };
    assert.equal(clientSide(), 0, "no keep-alive on a young bridge");
    assert.equal(targetSide(), 0);
    await eventually(() => clientSide() === 2, 5000, "a keep-alive timer on the proxy's client-side socket");
    await eventually(() => targetSide() === 2, 5000, "a keep-alive timer on the proxy's target-side socket");
    client.destroy();
  } finally {
    await gate.close();
    await echo.close();
  }
});
