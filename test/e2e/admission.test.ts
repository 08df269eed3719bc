// Admission end to end (SPEC §2 "Admission, in this order") through the real CLI and real
// sockets. Loopback source addresses (127.0.0.2, 127.0.0.3, …) play different clients,
// and every target counts the connections it accepted, so "a refused client costs no
// target a connection" is checked from the target's side, not taken from a log line.
import assert from "node:assert/strict";
import type { Socket } from "node:net";
import { after, before, describe, test } from "node:test";
import {
  type CountingServer,
  echoes,
  hasIPv6Loopback,
  keepBusy,
  startCountingEcho,
  wildcardIsDualStack,
} from "../support/admission.ts";
import { type Gate, runTcpgate, startGate, tempConfig } from "../support/cli.ts";
import { endOf, freePort, freePorts, type Refused } from "../support/net.ts";
import { windowFromNow } from "../support/schedule.ts";

/** Every test is bounded in time: a hang fails it instead of stalling the suite. */
const BOUNDED = { timeout: 20_000 };

/** A whole config file: short shutdown so a failed test never waits long on open bridges. */
const config = (body: string) => `version: 1\nshutdownTimeout: 1s\n${body}`;

function assertRefused(result: Refused, what: string): void {
  assert.notEqual(result.how, "timeout", `${what}: the connection should have been closed at once`);
  assert.equal(result.bytes, 0, `${what}: a refused client receives no byte`);
  assert.ok(result.ms < 1500, `${what}: closed after ${Math.round(result.ms)} ms, not at once`);
}

/** The refusal line for a client: its fields, and one line only for that connection. */
async function assertRefusalLine(
  gate: Gate,
  result: Refused,
  expected: { listener: string; client: string; reason: string; rule: string },
): Promise<void> {
  const line = await gate.refusalLine(result);
  assert.equal(line.listener, expected.listener);
  assert.equal(line.client, expected.client);
  assert.equal(line.reason, expected.reason);
  assert.equal(line.rule, expected.rule);
  assert.equal(line.msg, `refused: ${expected.reason}: ${expected.rule}`);
  const lines = gate.logs.slice(result.from).filter((l) => l.clientPort === result.port && l.reason !== undefined);
  assert.equal(lines.length, 1, "one log line per refused connection");
}

/** Closes a client and waits for its bridge's end line, so its slot is free again. */
async function closeBridge(gate: Gate, socket: Socket): Promise<void> {
  socket.end();
  await gate.bridgeEnd(socket);
  socket.destroy();
}

describe("allow and deny", () => {
  test(
    "allow: a listed client is bridged; any other is closed at once, and the target never sees it",
    BOUNDED,
    async () => {
      const target = await startCountingEcho();
      const port = await freePort();
      const gate = await startGate(
        config(`listeners:
  - name: web
    listen: 127.0.0.1:${port}
    targets: ["${target.address}"]
    allow: [127.0.0.2/32]
`),
      );
      try {
        const client = await gate.dial(port, "127.0.0.2");
        await echoes(client, "through the gate");
        const silent = await gate.tryRefused(port, "127.0.0.3");
        assertRefused(silent, "127.0.0.3");
        await assertRefusalLine(gate, silent, {
          listener: "web",
          client: "127.0.0.3",
          reason: "allow",
          rule: "no allow entry matches",
        });
        // A client that talks first is refused just the same: its bytes go nowhere.
        const talker = await gate.tryRefused(port, "127.0.0.4", { send: "let me in" });
        assertRefused(talker, "127.0.0.4 sending at once");
        await assertRefusalLine(gate, talker, {
          listener: "web",
          client: "127.0.0.4",
          reason: "allow",
          rule: "no allow entry matches",
        });
        // The admitted bridge is unaffected by the refusals around it.
        await echoes(client, "still open");
        await closeBridge(gate, client);
        assert.equal(await target.acceptedSoFar(), 1, "the target saw the admitted client only");
        assert.equal(gate.refusals().length, 2);
        assert.equal(await gate.close(), 0);
      } finally {
        await gate.close();
        await target.close();
      }
    },
  );

  test(
    "defaults.allow: enforced on a listener without allow; a listener's own allow replaces it, not merged; explain and --check agree",
    BOUNDED,
    async () => {
      const target = await startCountingEcho();
      const [inheritsPort, ownPort] = await freePorts(2);
      const gate = await startGate(
        config(`defaults:
  allow: [127.0.0.2]
listeners:
  - name: inherits
    listen: 127.0.0.1:${inheritsPort}
    targets: ["${target.address}"]
  - name: own
    listen: 127.0.0.1:${ownPort}
    targets: ["${target.address}"]
    allow: [127.0.0.3]
`),
      );
      try {
        const admitted = await gate.dial(inheritsPort as number, "127.0.0.2");
        await echoes(admitted, "listed in defaults");
        const stranger = await gate.tryRefused(inheritsPort as number, "127.0.0.3");
        assertRefused(stranger, "127.0.0.3 on inherits");
        await assertRefusalLine(gate, stranger, {
          listener: "inherits",
          client: "127.0.0.3",
          reason: "allow",
          rule: "no allow entry matches",
        });
        const own = await gate.dial(ownPort as number, "127.0.0.3");
        await echoes(own, "listed by the listener itself");
        const defaultOnly = await gate.tryRefused(ownPort as number, "127.0.0.2");
        assertRefused(defaultOnly, "127.0.0.2 on own");
        await assertRefusalLine(gate, defaultOnly, {
          listener: "own",
          client: "127.0.0.2",
          reason: "allow",
          rule: "no allow entry matches",
        });
        assert.equal(await target.acceptedSoFar(), 2, "the target saw the admitted clients only");

        const explained = await runTcpgate(["explain", "--config", gate.path, "127.0.0.3", "--json"]);
        assert.equal(explained.code, 0, explained.stderr);
        const answers = (
          JSON.parse(explained.stdout) as { listeners: { listener: string; refusedBy: string | null }[] }
        ).listeners;
        assert.deepEqual(
          answers.map((a) => [a.listener, a.refusedBy]),
          [
            ["inherits", "allow"],
            ["own", null],
          ],
        );
        const checked = await runTcpgate(["--config", gate.path, "--check"]);
        assert.equal(checked.code, 0, checked.stderr);
        assert.deepEqual(
          checked.stdout.split("\n").filter((l) => l.startsWith("    allow:")),
          ["    allow: 127.0.0.2", "    allow: 127.0.0.3"],
        );
      } finally {
        await gate.close();
        await target.close();
      }
    },
  );

  test("deny beats allow; named acls work in both lists; no allow admits all not denied", BOUNDED, async () => {
    const target = await startCountingEcho();
    const [office = 0, guests = 0] = await freePorts(2);
    const gate = await startGate(
      config(`acls:
  office: [127.0.0.2/32, 127.0.0.3/32]
  quarantine: [127.0.0.3/32]
listeners:
  - name: office
    listen: 127.0.0.1:${office}
    targets: ["${target.address}"]
    allow: [office, 127.0.0.4]
    deny: [quarantine, 127.0.0.6/31]
  - name: guests
    listen: 127.0.0.1:${guests}
    targets: ["${target.address}"]
    deny: [office, "::ffff:127.0.0.8/125"]
`),
    );
    try {
      for (const address of ["127.0.0.2", "127.0.0.4"]) {
        const client = await gate.dial(office, address);
        await echoes(client, `hello from ${address}`);
        await closeBridge(gate, client);
      }
      const quarantined = await gate.tryRefused(office, "127.0.0.3");
      assertRefused(quarantined, "127.0.0.3 (in office, and in quarantine)");
      await assertRefusalLine(gate, quarantined, {
        listener: "office",
        client: "127.0.0.3",
        reason: "deny",
        rule: "quarantine (127.0.0.3/32)",
      });
      const inPlace = await gate.tryRefused(office, "127.0.0.7");
      assertRefused(inPlace, "127.0.0.7");
      await assertRefusalLine(gate, inPlace, {
        listener: "office",
        client: "127.0.0.7",
        reason: "deny",
        rule: "127.0.0.6/31",
      });
      const stranger = await gate.tryRefused(office, "127.0.0.5");
      assertRefused(stranger, "127.0.0.5");
      await assertRefusalLine(gate, stranger, {
        listener: "office",
        client: "127.0.0.5",
        reason: "allow",
        rule: "no allow entry matches",
      });

      // No allow list: everyone not denied gets in; the office acl is denied by name.
      const guest = await gate.dial(guests, "127.0.0.5");
      await echoes(guest, "a guest");
      await closeBridge(gate, guest);
      const employee = await gate.tryRefused(guests, "127.0.0.2");
      assertRefused(employee, "127.0.0.2 on guests");
      await assertRefusalLine(gate, employee, {
        listener: "guests",
        client: "127.0.0.2",
        reason: "deny",
        rule: "office (127.0.0.2/32)",
      });
      // A mapped entry stands for the IPv4 range inside it, on a plain IPv4 listener too.
      const mapped = await gate.tryRefused(guests, "127.0.0.9");
      assertRefused(mapped, "127.0.0.9 on guests");
      await assertRefusalLine(gate, mapped, {
        listener: "guests",
        client: "127.0.0.9",
        reason: "deny",
        rule: "::ffff:127.0.0.8/125 (::ffff:7f00:8/125)",
      });
      assert.equal(await target.acceptedSoFar(), 3, "three admitted bridges, not one connection more");
    } finally {
      await gate.close();
      await target.close();
    }
  });

  test("a flood of refused clients logs 20 lines and one summary line for the rest", BOUNDED, async () => {
    const target = await startCountingEcho();
    const port = await freePort();
    const gate = await startGate(
      config(`listeners:
  - name: flood
    listen: 127.0.0.1:${port}
    targets: ["${target.address}"]
    deny: [127.0.0.3]
`),
    );
    try {
      const started = Date.now();
      for (let batch = 0; batch < 10; batch++) {
        const results = await Promise.all(Array.from({ length: 10 }, () => gate.tryRefused(port, "127.0.0.3")));
        for (const r of results) assertRefused(r, "a flooding client");
      }
      // All 100 fell into one 10 s window (the test would be meaningless otherwise).
      assert.ok(Date.now() - started < 9000, "the flood took too long");
      await gate.waitForLog(() => gate.refusals("flood").length >= 20);
      const summary = (l: { msg?: string }) => /more refused in the last/.test(l.msg ?? "");
      assert.equal(gate.logs.filter(summary).length, 0, "the summary waits for the window's end");
      // Stopping flushes the window: the summary line comes out before the process exits.
      assert.equal(await gate.close(), 0);
      // Every line it wrote is in: none came late.
      assert.equal(gate.refusals("flood").length, 20, "individual lines stop at the budget");
      const summaries = gate.logs.filter(summary);
      assert.equal(summaries.length, 1);
      assert.equal(summaries[0]?.msg, "80 more refused in the last 10 s");
      assert.equal(summaries[0]?.listener, "flood");
      assert.equal(summaries[0]?.refused, 80);
      assert.equal(target.accepted(), 0, "the target saw none of the 100");
    } finally {
      await gate.close();
      await target.close();
    }
  });
});

describe("address families", () => {
  test("a listener on [::1] matches IPv6 rules, and IPv4 rules never match an IPv6 client", BOUNDED, async (t) => {
    if (!(await hasIPv6Loopback())) {
      t.skip("::1 is not available on this host");
      return;
    }
    const target = await startCountingEcho("::1");
    const [allowed, denied, v4only] = [await freePort("::1"), await freePort("::1"), await freePort("::1")];
    const gate = await startGate(
      config(`listeners:
  - name: v6-allow
    listen: "[::1]:${allowed}"
    targets: ["${target.address}"]
    allow: ["::1"]
    deny: [0.0.0.0/0]
  - name: v6-deny
    listen: "[::1]:${denied}"
    targets: ["${target.address}"]
    deny: ["::1/128"]
  - name: v4-only
    listen: "[::1]:${v4only}"
    targets: ["${target.address}"]
    allow: [127.0.0.0/8, 0.0.0.0/0]
`),
    );
    try {
      const client = await gate.dial(allowed, "::1");
      await echoes(client, "over IPv6");
      await closeBridge(gate, client);
      const refused = await gate.tryRefused(denied, "::1");
      assertRefused(refused, "::1 on v6-deny");
      await assertRefusalLine(gate, refused, {
        listener: "v6-deny",
        client: "::1",
        reason: "deny",
        rule: "::1/128",
      });
      const outside = await gate.tryRefused(v4only, "::1");
      assertRefused(outside, "::1 on v4-only");
      await assertRefusalLine(gate, outside, {
        listener: "v4-only",
        client: "::1",
        reason: "allow",
        rule: "no allow entry matches",
      });
      assert.equal(await target.acceptedSoFar(), 1);
    } finally {
      await gate.close();
      await target.close();
    }
  });

  test("on a dual-stack wildcard an IPv4 client (::ffff:127.0.0.2) matches IPv4 rules", BOUNDED, async (t) => {
    if (!(await wildcardIsDualStack())) {
      t.skip("no dual-stack wildcard socket on this host");
      return;
    }
    const target = await startCountingEcho();
    // ":PORT" binds every interface; the test only ever connects through loopback.
    const port = await freePort("::");
    const gate = await startGate(
      config(`listeners:
  - name: wildcard
    listen: ":${port}"
    targets: ["${target.address}"]
    allow: [127.0.0.0/29]
    # The second entry is the mapped form, as the bridge log prints clients of this listener.
    deny: [127.0.0.3/32, "::ffff:127.0.0.5"]
`),
    );
    try {
      const client = await gate.dial(port, "127.0.0.2");
      await echoes(client, "mapped and matched");
      await closeBridge(gate, client);
      const bridged = await gate.bridgeEnd(client);
      assert.match(String(bridged.client), /^(::ffff:)?127\.0\.0\.2$/);
      const denied = await gate.tryRefused(port, "127.0.0.3");
      assertRefused(denied, "127.0.0.3");
      await assertRefusalLine(gate, denied, {
        listener: "wildcard",
        client: "127.0.0.3",
        reason: "deny",
        rule: "127.0.0.3/32",
      });
      const copied = await gate.tryRefused(port, "127.0.0.5");
      assertRefused(copied, "127.0.0.5");
      await assertRefusalLine(gate, copied, {
        listener: "wildcard",
        client: "127.0.0.5",
        reason: "deny",
        rule: "::ffff:127.0.0.5 (::ffff:7f00:5/128)",
      });
      const outside = await gate.tryRefused(port, "127.0.0.9");
      assertRefused(outside, "127.0.0.9");
      await assertRefusalLine(gate, outside, {
        listener: "wildcard",
        client: "127.0.0.9",
        reason: "allow",
        rule: "no allow entry matches",
      });
      const inside = await gate.dial(port, "127.0.0.4");
      await echoes(inside, "127.0.0.4 is in 127.0.0.0/29");
      await closeBridge(gate, inside);
      assert.equal(await target.acceptedSoFar(), 2);
    } finally {
      await gate.close();
      await target.close();
    }
  });
});

test(
  "schedule: a window around now admits, one three hours away refuses, in the schedule's own zone",
  BOUNDED,
  async () => {
    const target = await startCountingEcho();
    const ports = await freePorts(4);
    const now = Date.now();
    // Asia/Kolkata is UTC+05:30 all year (no DST): a window there is 330 minutes off UTC's.
    const KOLKATA = 330;
    const listener = (name: string, port: number | undefined, timezone: string, window: string) => `  - name: ${name}
    listen: 127.0.0.1:${port}
    targets: ["${target.address}"]
    schedule:
      timezone: ${timezone}
      windows:
${window}
`;
    const gate = await startGate(
      config(
        `listeners:\n${[
          listener("utc-open", ports[0], "UTC", windowFromNow(now, 0, -60, 120)),
          listener("utc-closed", ports[1], "UTC", windowFromNow(now, 0, 180, 60)),
          listener("kolkata-open", ports[2], "Asia/Kolkata", windowFromNow(now, KOLKATA, -60, 120)),
          // Now in UTC terms, but read in Kolkata it is 5.5 h later: outside.
          listener("kolkata-closed", ports[3], "Asia/Kolkata", windowFromNow(now, 0, -60, 120)),
        ].join("")}`,
      ),
    );
    try {
      for (const port of [ports[0], ports[2]]) {
        const client = await gate.dial(port ?? 0, "127.0.0.2");
        await echoes(client, "inside the window");
        await closeBridge(gate, client);
      }
      for (const [name, port] of [
        ["utc-closed", ports[1]],
        ["kolkata-closed", ports[3]],
      ] as const) {
        const refused = await gate.tryRefused(port ?? 0, "127.0.0.2");
        assertRefused(refused, name);
        await assertRefusalLine(gate, refused, {
          listener: name,
          client: "127.0.0.2",
          reason: "schedule",
          rule: "outside every window",
        });
      }
      assert.equal(await target.acceptedSoFar(), 2);
    } finally {
      await gate.close();
      await target.close();
    }
  },
);

describe("limits", () => {
  test(
    "maxConnections and maxConnectionsPerClient refuse the next client and admit again after one closes",
    BOUNDED,
    async () => {
      const target = await startCountingEcho();
      const [capped = 0, perClient = 0] = await freePorts(2);
      const gate = await startGate(
        config(`listeners:
  - name: capped
    listen: 127.0.0.1:${capped}
    targets: ["${target.address}"]
    maxConnections: 2
  - name: per-client
    listen: 127.0.0.1:${perClient}
    targets: ["${target.address}"]
    maxConnectionsPerClient: 1
`),
      );
      const open: Socket[] = [];
      try {
        // maxConnections: two open bridges fill the listener, whoever holds them.
        const a = await gate.dial(capped, "127.0.0.2");
        const b = await gate.dial(capped, "127.0.0.3");
        open.push(a, b);
        await echoes(a, "a");
        await echoes(b, "b");
        const third = await gate.tryRefused(capped, "127.0.0.4");
        assertRefused(third, "a third client on capped");
        await assertRefusalLine(gate, third, {
          listener: "capped",
          client: "127.0.0.4",
          reason: "limit",
          rule: "maxConnections 2 reached",
        });
        await echoes(a, "a is still fine");
        await closeBridge(gate, a);
        const c = await gate.dial(capped, "127.0.0.4");
        open.push(c);
        await echoes(c, "c got the freed slot");

        // maxConnectionsPerClient: one bridge per address; other addresses are not affected.
        const first = await gate.dial(perClient, "127.0.0.2");
        open.push(first);
        await echoes(first, "first");
        const second = await gate.tryRefused(perClient, "127.0.0.2");
        assertRefused(second, "a second bridge from 127.0.0.2");
        await assertRefusalLine(gate, second, {
          listener: "per-client",
          client: "127.0.0.2",
          reason: "limit",
          rule: "maxConnectionsPerClient 1 reached",
        });
        const other = await gate.dial(perClient, "127.0.0.3");
        open.push(other);
        await echoes(other, "another address");
        await closeBridge(gate, first);
        const again = await gate.dial(perClient, "127.0.0.2");
        open.push(again);
        await echoes(again, "127.0.0.2 again");
        // a, b, c on capped; first, other, again on per-client: six, and no refused one.
        assert.equal(await target.acceptedSoFar(), 6);
      } finally {
        for (const s of open) s.destroy();
        await gate.close();
        await target.close();
      }
    },
  );

  describe("a slot is released exactly once, however the bridge ends", () => {
    let gate: Gate;
    let target: CountingServer;
    let downTarget: CountingServer;
    const ports = new Map<string, number>();

    before(async () => {
      target = await startCountingEcho();
      downTarget = await startCountingEcho();
      for (const name of ["client-reset", "target-reset", "idle-timeout", "connect-failed"]) {
        ports.set(name, await freePort());
      }
      const listener = (name: string, targetAddress: string, extra = "") => `  - name: ${name}
    listen: 127.0.0.1:${ports.get(name)}
    targets: ["${targetAddress}"]
    maxConnectionsPerClient: 2
    connectTimeout: 1s
${extra}`;
      gate = await startGate(
        config(
          `listeners:\n${[
            listener("client-reset", target.address),
            listener("target-reset", target.address),
            listener("idle-timeout", target.address, "    idleTimeout: 300ms\n"),
            listener("connect-failed", downTarget.address),
          ].join("")}`,
        ),
      );
    }, BOUNDED);

    after(async () => {
      await gate?.close();
      await target?.close();
      await downTarget?.close();
    }, BOUNDED);

    /**
     * With maxConnectionsPerClient 2 and one bridge from 127.0.0.2 held open: three more
     * bridges from 127.0.0.2 end the given way one after the other (each admitted only if
     * the one before gave its slot back); then a second held bridge is admitted and a
     * third is refused (it would get in if any ending had given its slot back twice).
     */
    async function releasedOnce(
      name: string,
      endOne: (socket: Socket) => Promise<void> | void,
      hooks: { busy?: boolean; beforeEndings?: () => Promise<void>; afterEndings?: () => Promise<void> } = {},
    ): Promise<void> {
      const port = ports.get(name) ?? 0;
      const held: Socket[] = [];
      const stops: (() => void)[] = [];
      const hold = async (text: string) => {
        const socket = await gate.dial(port, "127.0.0.2");
        held.push(socket);
        await echoes(socket, text);
        // Under a short idleTimeout the held bridges must not idle out themselves.
        if (hooks.busy) stops.push(keepBusy([socket]));
      };
      try {
        await hold("held one");
        await hooks.beforeEndings?.();
        for (let i = 0; i < 3; i++) {
          const socket = await gate.dial(port, "127.0.0.2");
          await endOne(socket);
          const line = await gate.bridgeEnd(socket);
          assert.equal(line.end, name, `ending ${i + 1}: ${JSON.stringify(line)}`);
          socket.destroy();
        }
        await hooks.afterEndings?.();
        await hold("held two");
        const over = await gate.tryRefused(port, "127.0.0.2");
        assertRefused(over, `a third bridge from 127.0.0.2 after ${name}`);
        await assertRefusalLine(gate, over, {
          listener: name,
          client: "127.0.0.2",
          reason: "limit",
          rule: "maxConnectionsPerClient 2 reached",
        });
      } finally {
        for (const stop of stops) stop();
        for (const s of held) s.destroy();
      }
    }

    test("client reset", BOUNDED, async () => {
      await releasedOnce("client-reset", async (socket) => {
        await echoes(socket, "about to reset");
        socket.resetAndDestroy();
      });
    });

    test("target reset", BOUNDED, async () => {
      await releasedOnce("target-reset", async (socket) => {
        await echoes(socket, "about to be reset");
        // The counting echo resets a connection on "RST".
        socket.write("RST");
        // The reset is passed on to us: wait for it (events.once would reject on the error).
        await endOf(socket, 3000);
      });
    });

    test("idle timeout", BOUNDED, async () => {
      await releasedOnce(
        "idle-timeout",
        async (socket) => {
          await echoes(socket, "then silence");
        },
        { busy: true },
      );
    });

    test("connect failure (every target down)", BOUNDED, async () => {
      let revived: CountingServer | undefined;
      try {
        await releasedOnce("connect-failed", () => {}, {
          // Stop listening; the held bridge's connection to the target stays open.
          beforeEndings: async () => {
            downTarget.server.close();
          },
          afterEndings: async () => {
            revived = await startCountingEcho(downTarget.host, downTarget.port);
          },
        });
        assert.equal(revived?.accepted(), 1, "only the second held bridge reached the revived target");
      } finally {
        await revived?.close();
      }
    });
  });
});

describe("reload", () => {
  test(
    "tightening allow by editing the file: the open bridge keeps echoing, a new one is refused",
    BOUNDED,
    async () => {
      const target = await startCountingEcho();
      const port = await freePort();
      const listener = (allow: string) =>
        config(`listeners:
  - name: office
    listen: 127.0.0.1:${port}
    targets: ["${target.address}"]
    allow: [${allow}]
`);
      const gate = await startGate(listener("127.0.0.2/32, 127.0.0.3/32"), { watch: true });
      const open: Socket[] = [];
      try {
        const leaving = await gate.dial(port, "127.0.0.3");
        open.push(leaving);
        await echoes(leaving, "before the edit");
        gate.write(listener("127.0.0.2/32"));
        await gate.waitApplied(1);
        const refused = await gate.tryRefused(port, "127.0.0.3");
        assertRefused(refused, "127.0.0.3 after the edit");
        await assertRefusalLine(gate, refused, {
          listener: "office",
          client: "127.0.0.3",
          reason: "allow",
          rule: "no allow entry matches",
        });
        await echoes(leaving, "after the edit, still bridged");
        const staying = await gate.dial(port, "127.0.0.2");
        open.push(staying);
        await echoes(staying, "127.0.0.2 is still allowed");
        assert.equal(await target.acceptedSoFar(), 2);
        assert.equal(gate.logs.filter((l) => typeof l.end === "string").length, 0, "no bridge ended during the reload");
      } finally {
        for (const s of open) s.destroy();
        await gate.close();
        await target.close();
      }
    },
  );

  test("lowering maxConnections below the open bridges (SIGHUP) refuses new clients, drops none", BOUNDED, async () => {
    const target = await startCountingEcho();
    const port = await freePort();
    const listener = (max: number) =>
      config(`listeners:
  - name: shrinking
    listen: 127.0.0.1:${port}
    targets: ["${target.address}"]
    maxConnections: ${max}
`);
    const gate = await startGate(listener(5));
    const open: Socket[] = [];
    try {
      for (const address of ["127.0.0.2", "127.0.0.3", "127.0.0.4"]) {
        const socket = await gate.dial(port, address);
        open.push(socket);
        await echoes(socket, `open from ${address}`);
      }
      gate.write(listener(2));
      process.kill(gate.pid, "SIGHUP");
      await gate.waitApplied(1);
      const expectRefused = async (what: string) => {
        const refused = await gate.tryRefused(port, "127.0.0.5");
        assertRefused(refused, what);
        await assertRefusalLine(gate, refused, {
          listener: "shrinking",
          client: "127.0.0.5",
          reason: "limit",
          rule: "maxConnections 2 reached",
        });
      };
      await expectRefused("a new client with 3 open of 2");
      for (const [i, socket] of open.entries()) await echoes(socket, `bridge ${i} survived the reload`);
      const [first, second, third] = open;
      assert.ok(first && second && third);
      await closeBridge(gate, first);
      await expectRefused("a new client with 2 open of 2");
      await closeBridge(gate, second);
      const admitted = await gate.dial(port, "127.0.0.5");
      open.push(admitted);
      await echoes(admitted, "room again");
      await echoes(third, "the third never noticed");
      assert.equal(target.accepted(), 4);
    } finally {
      for (const s of open) s.destroy();
      await gate.close();
      await target.close();
    }
  });
});

test("--check prints the admission rules: deny, allow, schedule and limits", BOUNDED, async () => {
  const file = tempConfig(
    config(`acls:
  office: [127.0.0.2/32, 127.0.0.3/32]
  quarantine: [127.0.0.3/32]
defaults:
  maxConnectionsPerClient: 2
listeners:
  - name: office
    listen: 127.0.0.1:15432
    targets: ["127.0.0.1:5432"]
    allow: [office, 127.0.0.4, "::1"]
    deny: [quarantine, 127.0.0.6/31]
    schedule:
      timezone: UTC
      windows:
        - days: [mon-fri]
          from: "07:00"
          to: "19:00"
        - days: [sat]
          from: "22:00"
          to: "06:00"
    maxConnections: 10
  - name: open
    listen: 127.0.0.1:15433
    targets: ["127.0.0.1:5433"]
`),
  );
  try {
    const { code, stdout, stderr } = await runTcpgate(["--config", file.path, "--check"]);
    assert.equal(code, 0, stderr);
    const lines = stdout.split("\n");
    const office = lines.slice(lines.findIndex((l) => l.startsWith("  office:")));
    const at = (prefix: string) => office.find((l) => l.startsWith(prefix));
    assert.equal(at("    deny:"), "    deny: quarantine (127.0.0.3/32), 127.0.0.6/31");
    assert.equal(at("    allow:"), "    allow: office (127.0.0.2/32, 127.0.0.3/32), 127.0.0.4, ::1");
    assert.equal(at("    schedule"), "    schedule (UTC): mon,tue,wed,thu,fri 07:00-19:00; sat 22:00-06:00");
    assert.equal(at("    limits:"), "    limits: 10 bridges, 2 per client");
    // A listener without rules prints none, except the limit it inherits from defaults.
    const open = lines.slice(lines.findIndex((l) => l.startsWith("  open:")));
    assert.deepEqual(
      open.filter((l) => /^ {4}(deny|allow|schedule|limits)/.test(l)),
      ["    limits: 2 per client"],
    );
  } finally {
    file.remove();
  }
});
