// Fuzzed config files for the loader (parseConfig and loadConfigFile): valid configs,
// and mutations of them (wrong types, unknown keys, bad CIDRs, huge numbers, deep nesting,
// alias bombs, text cut and spliced), oversized files, binary junk, invalid UTF-8 and
// random bytes. Whatever it is given, the loader returns (in bounded time, in a worker
// thread the test can terminate) either a config or a non-empty list of one-line errors,
// each naming its place: "file:line:col: ..." or "file: ...".
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import fc from "fast-check";
import { stringify } from "yaml";
import { MAX_CONFIG_BYTES } from "../../src/config/load.ts";
import { type LoaderWorker, type Outcome, type Request, startLoaderWorker } from "../support/config-worker.ts";

const FILE = "fuzz.yaml";
/** Runs per property; FUZZ_RUNS raises it for a longer search. */
const RUNS = Number(process.env.FUZZ_RUNS ?? 300);
const BOUNDED = { timeout: 40_000 };

let worker: LoaderWorker;
let slowest = { ms: 0, what: "" };

/** Fails unless the outcome is a config, or errors that each carry a location on one line. */
function checkOutcome(outcome: Outcome, file: string, what: string): void {
  if ("hang" in outcome) assert.fail(`the loader did not return within ${Math.round(outcome.ms)} ms on ${what}`);
  if ("threw" in outcome) assert.fail(`the loader threw on ${what}: ${outcome.threw}`);
  if (outcome.ms > slowest.ms) slowest = { ms: outcome.ms, what };
  if (outcome.ok) {
    assert.ok(outcome.listeners >= 1);
    return;
  }
  assert.ok(outcome.errors.length > 0, `no errors for a rejected ${what}`);
  const escaped = file.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const located = new RegExp(`^${escaped}(?::[1-9][0-9]*:[1-9][0-9]*)?: \\S`);
  for (const error of outcome.errors) {
    assert.match(error, located, `an error without a location for ${what}`);
    assert.ok(
      !/[\p{Cc}\u2028\u2029]/u.test(error),
      `a control character or line break in an error for ${what}: ${JSON.stringify(error)}`,
    );
  }
}

async function parse(input: Uint8Array | string, what: string): Promise<Outcome> {
  const outcome = await worker.run({ kind: "parse", input, file: FILE });
  checkOutcome(outcome, FILE, what);
  return outcome;
}

/** Shown by fast-check instead of a megabyte of input. */
function labelled<T extends string | Uint8Array>(input: T, kind: string): { input: T; toString(): string } {
  const preview = typeof input === "string" ? input.slice(0, 160) : Buffer.from(input.subarray(0, 80)).toString("hex");
  return { input, toString: () => `${kind} (${input.length} long): ${JSON.stringify(preview)}` };
}

// ---- valid configs ----

const octet = fc.integer({ min: 0, max: 255 });
const ipv4 = fc.tuple(octet, octet, octet, octet).map((o) => o.join("."));
/** A CIDR with no host bits set, or a single address. */
const cidr = fc.oneof(
  ipv4,
  fc.tuple(fc.integer({ min: 0, max: 2 ** 32 - 1 }), fc.integer({ min: 0, max: 32 })).map(([n, bits]) => {
    const masked = bits === 0 ? 0 : (n >>> (32 - bits)) << (32 - bits);
    const u = masked >>> 0;
    return `${u >>> 24}.${(u >>> 16) & 255}.${(u >>> 8) & 255}.${u & 255}/${bits}`;
  }),
  fc.constantFrom("2001:db8::/32", "::1", "fe80::/10", "2001:db8:42::/48"),
);
/** Durations up to 24 days: Node's timers stop at 2^31-1 ms, and so does the loader. */
const duration = fc.oneof(
  fc.integer({ min: 1, max: 100_000 }).map((n) => `${n}ms`),
  fc.integer({ min: 1, max: 3600 }).map((n) => `${n}s`),
  fc.integer({ min: 1, max: 1440 }).map((n) => `${n}m`),
  fc.integer({ min: 1, max: 500 }).map((n) => `${n}h`),
  fc.integer({ min: 1, max: 24 }).map((n) => `${n}d`),
);
const port = fc.integer({ min: 1, max: 65535 });
/** Names an object in JavaScript already has are names too: the acl must still be found. */
const aclName = fc.oneof(
  { weight: 10, arbitrary: fc.stringMatching(/^[a-z_][a-z0-9_-]{0,11}$/) },
  { weight: 1, arbitrary: fc.constantFrom("__proto__", "constructor", "toString", "hasOwnProperty", "valueOf") },
);
const clock = fc
  .tuple(fc.integer({ min: 0, max: 23 }), fc.integer({ min: 0, max: 59 }))
  .map(([h, m]) => `${String(h).padStart(2, "0")}:${String(m).padStart(2, "0")}`);

const validConfig = fc
  .record({
    acls: fc.option(fc.dictionary(aclName, fc.array(cidr, { minLength: 1, maxLength: 4 }), { maxKeys: 3 }), {
      nil: undefined,
    }),
    ports: fc.uniqueArray(fc.integer({ min: 1024, max: 9000 }), { minLength: 1, maxLength: 4 }),
    adminPort: fc.option(fc.integer({ min: 9001, max: 9999 }), { nil: undefined }),
    seed: fc.array(
      fc.record(
        {
          targets: fc.uniqueArray(port, { minLength: 1, maxLength: 3 }),
          weighted: fc.boolean(),
          balance: fc.constantFrom("round-robin", "least-connections", "random", "source-hash"),
          allow: fc.array(cidr, { maxLength: 3 }),
          deny: fc.array(cidr, { maxLength: 3 }),
          useAcls: fc.boolean(),
          schedule: fc.record({
            timezone: fc.constantFrom("UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata"),
            windows: fc.array(
              fc.record({
                days: fc.subarray(["mon", "tue", "wed", "sat", "fri-mon"], { minLength: 1 }),
                from: clock,
                to: clock,
              }),
              { minLength: 1, maxLength: 3 },
            ),
          }),
          idleTimeout: duration,
          connectTimeout: duration,
          maxConnections: fc.integer({ min: 1, max: 10_000_000 }),
          healthCheck: fc.record({ interval: duration, fall: fc.integer({ min: 1, max: 10 }) }),
          proxyProtocol: fc.constantFrom("v1", "v2"),
          inspect: fc.boolean(),
        },
        { requiredKeys: ["targets", "weighted"] },
      ),
      { minLength: 4, maxLength: 4 },
    ),
    defaults: fc.option(
      fc.record(
        { idleTimeout: duration, maxConnectionsPerClient: fc.integer({ min: 1, max: 1000 }) },
        { requiredKeys: [] },
      ),
      { nil: undefined },
    ),
    level: fc.option(fc.constantFrom("trace", "debug", "info", "warn", "error"), { nil: undefined }),
    shutdownTimeout: fc.option(duration, { nil: undefined }),
  })
  .map(({ acls, ports, adminPort, seed, defaults, level, shutdownTimeout }) => {
    const aclNames = Object.keys(acls ?? {});
    const listeners = ports.map((listenPort, i) => {
      const { targets, weighted, useAcls, ...rest } = seed[i] ?? { targets: [1], weighted: false };
      const listener: Record<string, unknown> = {
        name: `listener-${i}`,
        listen: i % 2 === 0 ? `127.0.0.1:${listenPort}` : `[::1]:${listenPort}`,
        targets: targets.map((p, j) =>
          weighted && j % 2 === 0 ? { address: `10.0.0.1:${p}`, weight: j + 1 } : `10.0.0.1:${p}`,
        ),
        ...rest,
      };
      if (useAcls && aclNames.length > 0 && Array.isArray(listener.allow))
        listener.allow = [...listener.allow, ...aclNames];
      return listener;
    });
    const config: Record<string, unknown> = { version: 1, listeners };
    if (acls) config.acls = acls;
    if (defaults) config.defaults = defaults;
    if (adminPort !== undefined) config.admin = { listen: `127.0.0.1:${adminPort}` };
    if (level) config.log = { level };
    if (shutdownTimeout) config.shutdownTimeout = shutdownTimeout;
    return config;
  });

const asText = (config: unknown, flow: boolean) =>
  flow ? JSON.stringify(config) : stringify(config, { aliasDuplicateObjects: false, lineWidth: 0 });

// ---- mutations ----

type Json = unknown;

/** Every path to a value inside a config object. */
function paths(value: Json, prefix: (string | number)[] = []): (string | number)[][] {
  const out: (string | number)[][] = [prefix];
  if (Array.isArray(value)) {
    for (const [i, v] of value.entries()) out.push(...paths(v, [...prefix, i]));
  } else if (value && typeof value === "object") {
    for (const [k, v] of Object.entries(value)) out.push(...paths(v, [...prefix, k]));
  }
  return out;
}

function setAt(root: Json, path: (string | number)[], value: Json): Json {
  if (path.length === 0) return value;
  const [head, ...rest] = path;
  const copy = (Array.isArray(root) ? [...root] : { ...(root as object) }) as Record<string | number, Json>;
  // defineProperty: "__proto__" is a key like any other here.
  Object.defineProperty(copy, head as string | number, {
    value: setAt(copy[head as string | number], rest, value),
    enumerable: true,
    writable: true,
    configurable: true,
  });
  return copy;
}

const weird = fc.oneof(
  fc.constantFrom(
    1e308,
    -1e308,
    2 ** 53 + 1,
    -0,
    1e-300,
    Number.POSITIVE_INFINITY,
    Number.NEGATIVE_INFINITY,
    Number.NaN,
    0,
    -1,
    4294967296,
    null,
    true,
    "",
    " ",
    "\t",
    "__proto__",
    "constructor",
    "10.0.0.5/8",
    "010.0.0.1",
    "1.2.3.4/33",
    "1.2.3/24",
    "::ffff:10.0.0.1/200",
    "10.0.0.0/-1",
    "fe80::1%eth0",
    "[::1]",
    "127.0.0.1:99999",
    ":0",
    "999999999999999999999999d",
    "1.5s",
    "-5s",
    "0ms",
    "25d",
    "Mon-Fri",
    "24:01",
    "Mars/Olympus",
  ),
  fc.string({ maxLength: 40 }),
  fc.string({ unit: "binary", maxLength: 20 }),
  fc.integer(),
  fc.double(),
  fc.array(fc.anything({ maxDepth: 2 }), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 8 }), fc.anything({ maxDepth: 1 }), { maxKeys: 3 }),
  fc.integer({ min: 50, max: 300 }).map((depth) => {
    let v: Json = 1;
    for (let i = 0; i < depth; i++) v = i % 2 ? [v] : { deep: v };
    return v;
  }),
);

/** Keys no schema knows, some of them typos of real ones, some made to break a terminal. */
const UNKNOWN_KEYS = [
  "idelTimeout",
  "listener",
  "targts",
  "Allow",
  "<<",
  "__proto__",
  "a\nb",
  "\u001b[31mred",
  "x\u2028y",
  "tab\tkey",
  "",
  " ",
];

const mutated = fc
  .tuple(
    validConfig,
    fc.array(fc.tuple(fc.nat(), fc.constantFrom("replace", "unknown-key", "delete"), weird), {
      minLength: 1,
      maxLength: 3,
    }),
    fc.boolean(),
  )
  .map(([config, edits, flow]) => {
    let value: Json = config;
    for (const [pick, kind, replacement] of edits) {
      const all = paths(value);
      const path = all[pick % all.length] ?? [];
      if (kind === "replace") value = setAt(value, path, replacement);
      else if (kind === "delete" && path.length > 0) value = setAt(value, path, undefined);
      else {
        const objects = all.filter((p) => {
          let v: Json = value;
          for (const s of p) v = (v as Record<string | number, Json>)[s];
          return v !== null && typeof v === "object" && !Array.isArray(v);
        });
        const target = objects[pick % Math.max(1, objects.length)] ?? [];
        value = setAt(value, [...target, UNKNOWN_KEYS[pick % UNKNOWN_KEYS.length] ?? "x"], replacement);
      }
    }
    return labelled(asText(value, flow), "mutated config");
  });

/** Text-level damage to a valid file: cuts, splices, junk characters, invalid UTF-8. */
const damaged = fc
  .tuple(
    validConfig,
    fc.array(
      fc.tuple(
        fc.nat(),
        fc.nat({ max: 40 }),
        fc.oneof(
          fc.constantFrom(
            "\t",
            ":",
            "- ",
            "[",
            "{",
            "]",
            "}",
            "&a ",
            "*a",
            "!!binary ",
            "%YAML 1.1\n",
            '"',
            "'",
            "\n",
            "\u0000",
            "\uFEFF",
            "<<: *a\n",
            "? ",
            "|\n",
            "---\n",
            "...\n",
            "#",
          ),
          fc.string({ maxLength: 10 }),
        ),
      ),
      { minLength: 1, maxLength: 5 },
    ),
    fc.option(fc.uint8Array({ minLength: 1, maxLength: 4 }), { nil: undefined }),
  )
  .map(([config, cuts, junk]) => {
    let text = asText(config, false);
    for (const [at, remove, insert] of cuts) {
      const i = at % (text.length + 1);
      text = text.slice(0, i) + insert + text.slice(i + remove);
    }
    if (!junk) return labelled(text, "damaged config");
    // Raw bytes spliced in: most of them are not valid UTF-8.
    const bytes = Buffer.from(text);
    const i = cuts[0]?.[0] ?? 0;
    const at = i % (bytes.length + 1);
    return labelled(new Uint8Array(Buffer.concat([bytes.subarray(0, at), junk, bytes.subarray(at)])), "damaged bytes");
  });

/** Anchors that each alias the previous level several times: the billion laughs. */
const aliasBomb = fc
  .tuple(fc.integer({ min: 2, max: 12 }), fc.integer({ min: 2, max: 12 }), fc.boolean())
  .map(([width, depth, flow]) => {
    const lines = [`a0: &a0 ["lol", "lol"]`];
    for (let d = 1; d < depth; d++)
      lines.push(`a${d}: &a${d} [${Array.from({ length: width }, () => `*a${d - 1}`).join(", ")}]`);
    const text = flow
      ? `version: 1\n${lines.join("\n")}\nlisteners: [{name: x, listen: "127.0.0.1:1", targets: *a${depth - 1}}]\n`
      : `${lines.join("\n")}\nversion: 1\n`;
    return labelled(text, `alias bomb ${width}^${depth}`);
  });

/** Nine "lol"s, nine times over, nine levels deep: about 387 million strings if expanded. */
const LAUGHS = [
  'a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]',
  ..."bcdefghi".split("").map((x, i) => `${x}: &${x} [${Array(9).fill(`*${"abcdefghi"[i]}`).join(", ")}]`),
  "version: 1",
  "listeners: *i",
].join("\n");

const tokens = [
  "version",
  "listeners",
  ":",
  " ",
  "\n",
  "  ",
  "- ",
  "[",
  "]",
  "{",
  "}",
  ",",
  "&x",
  "*x",
  "!!str",
  "1",
  "name",
  "listen",
  "127.0.0.1:80",
  '"',
  "'",
  "#",
  "?",
  "|",
  ">",
  "---",
  "\t",
  "<<",
];
const soup = fc.array(fc.constantFrom(...tokens), { maxLength: 200 }).map((t) => labelled(t.join(""), "token soup"));

describe("fuzzed config", () => {
  before(async () => {
    worker = await startLoaderWorker();
  });
  after(async () => {
    await worker?.close();
  });

  test("valid configs are accepted, and every acl a rule names stands for its ranges", BOUNDED, async () => {
    await fc.assert(
      fc.asyncProperty(validConfig, fc.boolean(), async (config, flow) => {
        const outcome = await parse(asText(config, flow), "a valid config");
        const acls = (config.acls ?? {}) as Record<string, string[]>;
        if (Object.hasOwn(acls, "__proto__")) {
          // JavaScript cannot hold it as a plain key: refused, by name.
          assert.ok("errors" in outcome && outcome.errors.some((e) => e.includes('"__proto__" cannot be an acl name')));
          return;
        }
        assert.ok("rules" in outcome, `rejected: ${JSON.stringify(outcome)}\n${asText(config, false)}`);
        for (const [source, ranges] of outcome.rules) {
          const expected = Object.hasOwn(acls, source) ? acls[source]?.length : 1;
          assert.equal(ranges, expected, `rule ${source} stands for ${ranges} ranges`);
        }
      }),
      { numRuns: RUNS },
    );
  });

  test("mutated configs: wrong types, unknown keys, bad CIDRs, huge numbers, deep nesting", BOUNDED, async () => {
    await fc.assert(
      fc.asyncProperty(mutated, async ({ input }) => {
        await parse(input, "a mutated config");
      }),
      { numRuns: RUNS * 2 },
    );
  });

  test("damaged text, invalid UTF-8, alias bombs, token soup, random bytes and strings", BOUNDED, async () => {
    const junk = fc.oneof(
      damaged,
      aliasBomb,
      soup,
      fc.uint8Array({ maxLength: 2048 }).map((b) => labelled(b, "random bytes")),
      fc.string({ unit: "binary", maxLength: 500 }).map((s) => labelled(s, "random string")),
    );
    await fc.assert(
      fc.asyncProperty(junk, async ({ input }) => {
        await parse(input, "junk");
      }),
      { numRuns: RUNS * 3 },
    );
  });

  test("nesting, size and alias limits, each answered with a located error and quickly", BOUNDED, async (t) => {
    const big = (n: number, fill: string) => fill.repeat(Math.ceil(n / fill.length)).slice(0, n);
    const cases: [string, string | Uint8Array, RegExp][] = [
      ["500,000 nested flow lists (1 MB)", `${"[".repeat(500_000)}${"]".repeat(500_000)}`, /nested more than/],
      [
        "nested flow maps",
        `version: 1\nlisteners: ${"{a: ".repeat(200_000)}1${"}".repeat(200_000)}`,
        /nested more than/,
      ],
      ["an unclosed flow list", `a: ${"[".repeat(1_000_000)}`, /nested more than/],
      ["dashes on one line", `${"- ".repeat(300_000)}x`, /nested more than/],
      [
        "a block staircase",
        Array.from({ length: 1000 }, (_, i) => `${" ".repeat(i)}a:`).join("\n"),
        /nested more than/,
      ],
      ["a billion laughs", LAUGHS, /alias/],
      ["one byte over 1 MiB", big(MAX_CONFIG_BYTES + 1, "# padding\n"), /larger than 1 MiB/],
      ["10 MB", big(10 * 1024 * 1024, "x"), /larger than 1 MiB/],
      ["invalid UTF-8", new Uint8Array([0x76, 0x65, 0x72, 0xc3, 0x28, 0x3a, 0x20, 0x31]), /not valid UTF-8/],
      ["NUL bytes", "version: 1\u0000", /NUL/],
      ["an empty file", "", /empty/],
      ["only a comment", "# nothing here\n", /empty/],
    ];
    for (const [what, input, expected] of cases) {
      const outcome = await parse(input, what);
      assert.ok("errors" in outcome, `${what} was accepted`);
      assert.match(outcome.errors.join("\n"), expected, what);
      assert.ok(outcome.ms < 3000, `${what} took ${Math.round(outcome.ms)} ms`);
      t.diagnostic(`${what}: ${Math.round(outcome.ms)} ms: ${outcome.errors[0]?.slice(0, 100)}`);
    }
    // Exactly at the cap is still read: a valid config padded with a comment to 1 MiB.
    const valid = 'version: 1\nlisteners: [{name: a, listen: "127.0.0.1:1", targets: ["127.0.0.1:2"]}]\n';
    const padded = `${valid}${"#".repeat(MAX_CONFIG_BYTES - valid.length - 1)}\n`;
    assert.equal(Buffer.byteLength(padded), MAX_CONFIG_BYTES);
    const outcome = await parse(padded, "a valid config of exactly 1 MiB");
    assert.ok("ok" in outcome && outcome.ok, JSON.stringify(outcome).slice(0, 300));
  });

  test(
    "loadConfigFile: files of every kind of junk, a 10 MB file, a directory, a device, a FIFO, a missing file",
    BOUNDED,
    async () => {
      const dir = mkdtempSync(join(tmpdir(), "tcpgate-fuzz-"));
      try {
        const load = async (path: string, what: string, insecure = false) => {
          const outcome = await worker.run({ kind: "load", path, insecure } satisfies Request);
          checkOutcome(outcome, path, what);
          return outcome;
        };
        const huge = join(dir, "huge.yaml");
        writeFileSync(huge, Buffer.alloc(10 * 1024 * 1024, 0x61), { mode: 0o644 });
        const tooBig = await load(huge, "a 10 MB file");
        assert.ok("errors" in tooBig && /larger than 1 MiB/.test(tooBig.errors[0] ?? ""));
        assert.ok(tooBig.ms < 3000, `reading a 10 MB file took ${tooBig.ms} ms: only the first MiB should be read`);
        const missing = await load(join(dir, "missing.yaml"), "a missing file");
        assert.ok("errors" in missing && /no such file/.test(missing.errors[0] ?? ""));
        const directory = await load(dir, "a directory");
        assert.ok("errors" in directory);
        const device = await load("/dev/null", "/dev/null", true);
        assert.ok("errors" in device && /not a regular file/.test(device.errors[0] ?? ""));
        // A FIFO nobody writes to: opening and reading it must not wait for a writer.
        const fifo = join(dir, "fifo.yaml");
        execFileSync("mkfifo", ["-m", "644", fifo]);
        const piped = await load(fifo, "a FIFO");
        assert.ok("errors" in piped && /not a regular file/.test(piped.errors[0] ?? ""));

        let n = 0;
        const anything = fc.oneof(
          mutated,
          damaged,
          aliasBomb,
          fc.uint8Array({ maxLength: 1024 }).map((b) => labelled(b, "random bytes")),
        );
        await fc.assert(
          fc.asyncProperty(anything, async ({ input }) => {
            const path = join(dir, `fuzz-${n++}.yaml`);
            writeFileSync(path, input, { mode: 0o644 });
            try {
              await load(path, "a fuzzed file");
            } finally {
              rmSync(path, { force: true });
            }
          }),
          { numRuns: Math.ceil(RUNS / 2) },
        );
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );

  test("every run was quick", (t) => {
    t.diagnostic(`slowest run: ${Math.round(slowest.ms)} ms (${slowest.what})`);
    assert.ok(slowest.ms < 3000, `the slowest run took ${Math.round(slowest.ms)} ms (${slowest.what})`);
  });
});
