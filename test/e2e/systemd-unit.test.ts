import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { ROOT } from "../support/cli.ts";

const UNIT = join(ROOT, "examples", "tcpgate.service");

test("the systemd unit runs unprivileged, reloads with SIGHUP and is hardened", () => {
  const unit = readFileSync(UNIT, "utf8");
  for (const line of [
    "User=tcpgate",
    "AmbientCapabilities=CAP_NET_BIND_SERVICE",
    "ExecReload=/bin/kill -HUP $MAINPID",
    "LimitNOFILE=65536",
    "NoNewPrivileges=yes",
    "ProtectSystem=strict",
    // The admin socket's folder: /run/tcpgate, writable by the service though ProtectSystem=strict.
    "RuntimeDirectory=tcpgate",
  ]) {
    assert.ok(unit.split("\n").includes(line), `missing ${line}`);
  }
  // The stop timeout must outlast the default shutdownTimeout (30s), or systemd kills open bridges.
  const stop = Number(/^TimeoutStopSec=(\d+)s$/m.exec(unit)?.[1]);
  assert.ok(stop > 30, `TimeoutStopSec=${stop}s`);
});

const analyze = spawnSync("systemd-analyze", ["--version"]).status === 0;

test("systemd-analyze verify accepts the unit", { skip: !analyze && "systemd-analyze is not installed" }, () => {
  // verify exits non-zero and prints the reason for any unknown directive or bad value.
  const output = execFileSync("systemd-analyze", ["verify", UNIT], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
  });
  assert.equal(output.trim(), "");
});
