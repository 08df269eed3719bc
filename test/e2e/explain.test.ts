// `tcpgate explain` through the real CLI: the answer per listener in text and JSON, and
// the exit codes (0 answered, 1 invalid file, 2 bad usage) with one clear line on stderr.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { runTcpgate, tempConfig } from "../support/cli.ts";

const BOUNDED = { timeout: 20_000 };
/** Ten runs of the CLI, one after another: a node start-up each. */
const TEN_RUNS = { timeout: 60_000 };

const CONFIG = `version: 1
acls:
  office: [10.20.0.0/16, "2001:db8:42::/48"]
  quarantine: [10.20.99.0/24]
listeners:
  - name: postgres
    listen: 127.0.0.1:15432
    targets: [127.0.0.1:5432]
    allow: [office, 192.168.20.0/24]
    deny: [quarantine, 10.20.99.128/25]
    schedule:
      timezone: Europe/Berlin
      windows:
        - days: [mon-fri]
          from: "07:00"
          to: "19:00"
  - name: night
    listen: 127.0.0.1:15433
    targets: [127.0.0.1:5432]
    schedule:
      timezone: America/New_York
      windows:
        - days: [fri]
          from: "22:00"
          to: "06:00"
  - name: open
    listen: 127.0.0.1:15434
    targets: [127.0.0.1:5432]
`;

interface ExplainJson {
  address: string;
  client: string;
  mapped: boolean;
  at: string;
  limits: string;
  listeners: {
    listener: string;
    admitted: boolean;
    refusedBy: string | null;
    deny: { rule: string; cidr: string } | null;
    allow: { rule: string; cidr: string } | null;
    allowList: boolean;
    schedule: {
      timezone: string;
      open: boolean;
      window: { index: number; days: string[] | null; from: string; to: string } | null;
      nextOpen: string | null;
    } | null;
  }[];
}

describe("tcpgate explain", () => {
  let file: ReturnType<typeof tempConfig>;
  before(() => {
    file = tempConfig(CONFIG);
  });
  after(() => file.remove());

  const explain = (...args: string[]) => runTcpgate(["explain", "--config", file.path, ...args]);

  test("text: one line per listener naming the entry or window that decided", BOUNDED, async () => {
    // Monday 2026-11-30 12:00 UTC: 13:00 in Berlin (open), 07:00 in New York (Friday's window is over).
    const { code, stdout, stderr } = await explain("::ffff:10.20.99.200", "--at", "2026-11-30T12:00:00Z");
    assert.equal(stderr, "");
    assert.equal(code, 0);
    assert.deepEqual(stdout.trimEnd().split("\n"), [
      "::ffff:10.20.99.200 is IPv4-mapped IPv6: explained as the IPv4 address 10.20.99.200",
      "10.20.99.200 at 2026-11-30T12:00:00.000Z:",
      "  postgres: refused by deny entry 10.20.99.128/25",
      "  night: refused by schedule: outside every window, next opens 2026-12-04T22:00:00-05:00 (America/New_York); no allow list",
      "  open: admitted: no allow list; no schedule",
      "Limits (maxConnections, maxConnectionsPerClient) are not evaluated: they depend on the open bridges.",
    ]);
    const office = await explain("10.20.1.1", "--listener", "postgres", "--at", "2026-11-30T13:00:00+01:00");
    assert.equal(office.code, 0);
    assert.match(
      office.stdout,
      /^ {2}postgres: admitted: allow entry office \(10\.20\.0\.0\/16\); schedule window mon-fri 07:00-19:00 \(Europe\/Berlin\)$/m,
    );
    assert.doesNotMatch(office.stdout, /night|open:/, "only the listener named");
    const stranger = await explain("2001:db8:43::1", "--listener", "postgres", "--at", "2026-11-30T12:00:00Z");
    assert.match(stranger.stdout, /^ {2}postgres: refused: not in allow$/m);
  });

  test("--json: one object, every step of every listener", BOUNDED, async () => {
    const { code, stdout } = await explain("2001:db8:42::7", "--json", "--at", "2026-11-28T05:30:00+01:00");
    assert.equal(code, 0);
    const doc = JSON.parse(stdout) as ExplainJson;
    assert.deepEqual(
      { ...doc, listeners: [] },
      {
        address: "2001:db8:42::7",
        client: "2001:db8:42::7",
        mapped: false,
        at: "2026-11-28T04:30:00.000Z",
        limits: "not evaluated",
        listeners: [],
      },
    );
    assert.deepEqual(doc.listeners, [
      {
        listener: "postgres",
        admitted: false,
        refusedBy: "schedule",
        deny: null,
        allow: { rule: "office", cidr: "2001:db8:42::/48" },
        allowList: true,
        schedule: { timezone: "Europe/Berlin", open: false, window: null, nextOpen: "2026-11-30T07:00:00+01:00" },
      },
      {
        // Friday 22:00-06:00 in New York: Friday 23:30 there.
        listener: "night",
        admitted: true,
        refusedBy: null,
        deny: null,
        allow: null,
        allowList: false,
        schedule: {
          timezone: "America/New_York",
          open: true,
          window: { index: 0, days: ["fri"], from: "22:00", to: "06:00" },
          nextOpen: null,
        },
      },
      {
        listener: "open",
        admitted: true,
        refusedBy: null,
        deny: null,
        allow: null,
        allowList: false,
        schedule: null,
      },
    ]);
  });

  test(
    "exit 2 with one line on stderr: bad address, bad time, unknown listener, missing arguments",
    TEN_RUNS,
    async () => {
      const cases: [string[], RegExp][] = [
        [["010.1.2.3"], /leading zero/],
        [["10.0.0.0/8"], /a range; give one client address/],
        [["10.1.2.3", "--at", "2026-03-29T02:30"], /--at: .*no UTC offset/],
        [["10.1.2.3", "--at", "yesterday"], /--at: .*not an ISO 8601 time/],
        [["10.1.2.3", "--listener", "nope"], /no listener named "nope" .*\(it has postgres, night, open\)/],
        [[], /explain needs one client address/],
        [["10.1.2.3", "10.1.2.4"], /explain takes one client address, not 2/],
        [["10.1.2.3", "--frobnicate"], /frobnicate/],
      ];
      for (const [args, message] of cases) {
        const { code, stdout, stderr } = await explain(...args);
        assert.equal(code, 2, `${args.join(" ")}: ${stderr}`);
        assert.equal(stdout, "");
        assert.equal(stderr.trimEnd().split("\n").length, 1, `one line: ${stderr}`);
        assert.match(stderr, message);
      }
      const noConfig = await runTcpgate(["explain", "10.1.2.3"]);
      assert.equal(noConfig.code, 2);
      assert.match(noConfig.stderr, /explain needs --config/);
    },
  );

  test("exit 1 on an invalid config file, with its errors", BOUNDED, async () => {
    const bad = tempConfig(
      "version: 1\nlisteners:\n  - name: x\n    listen: 127.0.0.1:1\n    targets: [a:1]\n    allow: [010.0.0.1]\n",
    );
    try {
      const { code, stdout, stderr } = await runTcpgate(["explain", "-c", bad.path, "10.1.2.3"]);
      assert.equal(code, 1);
      assert.equal(stdout, "");
      assert.match(stderr, /proxy\.yaml:6:\d+: listeners\[0\]\.allow\[0\]: .*leading zero/);
    } finally {
      bad.remove();
    }
    const missing = await runTcpgate(["explain", "-c", "/nonexistent/proxy.yaml", "10.1.2.3"]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /no such file/);
  });

  test("--help prints the usage and exits 0", BOUNDED, async () => {
    const { code, stdout } = await runTcpgate(["explain", "--help"]);
    assert.equal(code, 0);
    assert.match(stdout, /tcpgate explain --config <file> <client-address>/);
  });
});
