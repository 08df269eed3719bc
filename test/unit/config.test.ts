// The config loader: every class of error, each asserted as the exact
// "file:line:col: key.path: message" line an operator sees, and the normalised result.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { describe, test } from "node:test";
import { type LoadResult, loadConfigFile, MAX_CONFIG_BYTES, parseConfig } from "../../src/config/load.ts";
import { normalise } from "../../src/config/runtime.ts";
import { configSchema, listenerSchema } from "../../src/config/schema.ts";
import { tempConfig } from "../support/cli.ts";

const FILE = "proxy.yaml";

function errorsOf(result: LoadResult): string[] {
  assert.equal(result.ok, false, "the config was accepted");
  return result.ok ? [] : result.errors;
}

/** The exact list of error lines for a config text. */
function expectErrors(yaml: string, expected: string[]): void {
  assert.deepEqual(errorsOf(parseConfig(yaml, FILE)), expected);
}

/** Each expected line is among the errors (other errors in the file are asserted elsewhere). */
function expectErrorsInclude(yaml: string, expected: string[]): void {
  const errors = errorsOf(parseConfig(yaml, FILE));
  for (const line of expected)
    assert.ok(errors.includes(line), `missing ${JSON.stringify(line)} in\n${errors.join("\n")}`);
}

function expectOk(yaml: string) {
  const result = parseConfig(yaml, FILE);
  assert.deepEqual(result.ok ? [] : result.errors, []);
  assert.ok(result.ok);
  return result.config;
}

/** A one-listener config with extra lines appended to the listener (indented 4). */
const withListener = (extra = "") =>
  `version: 1\nlisteners:\n  - name: web\n    listen: 127.0.0.1:8080\n    targets: [127.0.0.1:9000]\n${extra}`;

// --- YAML itself ----------------------------------------------------------------------

test("YAML syntax errors name line and column", () => {
  expectErrors(`version: 1\nlisteners:\n  - name: web\n    listen: "127.0.0.1:8080\n`, [
    'proxy.yaml:5:1: Missing closing "quote',
  ]);
  expectErrors(`version: 1\nlisteners:\n  - name: web\n    listen: [127.0.0.1:8080}\n`, [
    "proxy.yaml:4:28: Flow sequence in block collection must be sufficiently indented and end with a ]",
  ]);
  expectErrors(`version: 1\nlisteners:\n\t- name: web\n`, ["proxy.yaml:3:1: Tabs are not allowed as indentation"]);
  // The yaml package reports this one twice at one place; it is shown once.
  expectErrors(`version: 1\n  listeners: []\n`, [
    "proxy.yaml:1:10: Nested mappings are not allowed in compact mappings",
  ]);
});

test("duplicate keys are errors, in block and flow maps", () => {
  expectErrors(`version: 1\n${withListener().slice("version: 1\n".length)}version: 1\n`, [
    'proxy.yaml:6:1: duplicate key "version"',
  ]);
  expectErrors(
    `version: 1\nlisteners:\n  - name: web\n    listen: 127.0.0.1:8080\n    targets:\n      - {address: 127.0.0.1:1, address: 127.0.0.1:2}\n`,
    ['proxy.yaml:6:32: duplicate key "address"'],
  );
});

test("more than one YAML document is an error at the second", () => {
  expectErrors(`${withListener()}---\nversion: 1\n`, ["proxy.yaml:6:1: only one YAML document is allowed"]);
});

test("a %YAML 1.1 directive does not bring back 1.1 booleans: NO stays a string", () => {
  const config = expectOk(
    `%YAML 1.1\n---\nversion: 1\nlisteners:\n  - name: NO\n    listen: 127.0.0.1:8080\n    targets: [127.0.0.1:9000]\n`,
  );
  assert.equal(config.listeners[0]?.name, "NO");
  expectErrors(`%YAML 1.1\n---\n${withListener("    inspect: NO\n")}`, [
    'proxy.yaml:8:14: listeners[0].inspect: must be true or false, not the string "NO"',
  ]);
  expectErrors(withListener("    inspect: yes\n"), [
    'proxy.yaml:6:14: listeners[0].inspect: must be true or false, not the string "yes"',
  ]);
});

test("aliases: a few are fine, an alias bomb is refused, a missing anchor is named", () => {
  expectOk(`version: 1\nacls:\n  office: &office [10.20.0.0/16]\n  also: *office\n${withListener().slice(11)}`);
  const bomb = [
    "a: &a [x, x, x, x, x, x, x, x, x]",
    "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]",
    "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]",
    "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]",
    "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]",
    "f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]",
    "g: [*f, *f, *f, *f, *f, *f, *f, *f, *f]",
  ].join("\n");
  expectErrors(`${bomb}\n`, ["proxy.yaml: too many alias expansions (limit 100); write the values out instead"]);
  expectErrors(`version: 1\nacls:\n  office: *nowhere\n${withListener().slice(11)}`, [
    "proxy.yaml:3:11: no anchor &nowhere before this alias",
  ]);
});

test("YAML tags and directives outside the core schema are refused", () => {
  expectErrors(`version: !custom 1\n`, ["proxy.yaml:1:10: Unresolved tag: !custom"]);
  expectErrors(`%YAML 2.0\n---\n${withListener()}`, ["proxy.yaml:1:7: Unsupported YAML version 2.0"]);
});

// --- the file as bytes ----------------------------------------------------------------

test("an empty file, a comment-only file and a bare document marker are errors", () => {
  for (const text of ["", "\n\n", "# nothing here\n", "---\n"]) expectErrors(text, ["proxy.yaml: the file is empty"]);
});

test("invalid UTF-8 and NUL bytes are refused", () => {
  const bytes = Buffer.concat([Buffer.from("version: 1\nlisteners:\n  - name: caf"), Buffer.from([0xc3, 0x28])]);
  assert.deepEqual(errorsOf(parseConfig(bytes, FILE)), ["proxy.yaml: the file is not valid UTF-8"]);
  assert.deepEqual(errorsOf(parseConfig("version: 1\u0000\n", FILE)), ["proxy.yaml: the file contains NUL bytes"]);
});

test("a UTF-8 byte order mark is allowed", () => {
  const result = parseConfig(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(withListener())]), FILE);
  assert.ok(result.ok);
});

/** A valid config padded with comments to exactly `size` bytes. */
function paddedConfig(size: number): string {
  const body = withListener();
  const line = `# ${"x".repeat(77)}\n`;
  let text = body + line.repeat(Math.floor((size - body.length) / line.length));
  text += `#${"x".repeat(size - text.length - 2)}\n`;
  assert.equal(Buffer.byteLength(text), size);
  return text;
}

test("the size cap is 1 MiB: a file of exactly 1 MiB loads, one byte more is refused", () => {
  assert.equal(MAX_CONFIG_BYTES, 1024 * 1024);
  assert.ok(parseConfig(paddedConfig(MAX_CONFIG_BYTES), FILE).ok);
  expectErrors(paddedConfig(MAX_CONFIG_BYTES + 1), ["proxy.yaml: the file is larger than 1 MiB"]);
  // Strings are measured in bytes, not characters.
  const multibyte = `# ${"é".repeat(MAX_CONFIG_BYTES / 2)}\n${withListener()}`;
  expectErrors(multibyte, ["proxy.yaml: the file is larger than 1 MiB"]);
});

test("loadConfigFile: errors name the file as given; missing files, directories, too large, bad UTF-8", async () => {
  const file = tempConfig(withListener("    idleTimeout: soon\n"));
  try {
    assert.deepEqual(errorsOf(await loadConfigFile(file.path)), [
      `${file.path}:6:18: listeners[0].idleTimeout: "soon" is not a duration (e.g. 500ms, 5s, 15m, 8h, 1d)`,
    ]);
    file.write(paddedConfig(MAX_CONFIG_BYTES + 1));
    assert.deepEqual(errorsOf(await loadConfigFile(file.path)), [`${file.path}: the file is larger than 1 MiB`]);
    file.write("");
    assert.deepEqual(errorsOf(await loadConfigFile(file.path)), [`${file.path}: the file is empty`]);
    file.write(Buffer.from([0x76, 0x3a, 0x20, 0xff, 0x0a]) as unknown as string);
    assert.deepEqual(errorsOf(await loadConfigFile(file.path)), [`${file.path}: the file is not valid UTF-8`]);
    assert.deepEqual(errorsOf(await loadConfigFile(`${file.dir}/missing.yaml`)), [
      `${file.dir}/missing.yaml: cannot read the config: no such file`,
    ]);
    assert.deepEqual(errorsOf(await loadConfigFile(file.dir)), [
      `${file.dir}: cannot read the config: it is a directory`,
    ]);
    file.write(withListener());
    const loaded = await loadConfigFile(file.path);
    assert.ok(loaded.ok);
    assert.equal(loaded.sha256, createHash("sha256").update(withListener()).digest("hex"));
  } finally {
    file.remove();
  }
});

// --- the schema -----------------------------------------------------------------------

test("unknown keys are errors, with a did-you-mean from the keys valid at that place", () => {
  expectErrors(withListener("    idelTimeout: 5s\n    colour: blue\n"), [
    'proxy.yaml:6:5: listeners[0].idelTimeout: unknown key "idelTimeout" (did you mean idleTimeout?)',
    'proxy.yaml:7:5: listeners[0].colour: unknown key "colour"',
  ]);
  // "listener" at the top is "listeners", not a listener's "listen".
  expectErrors("version: 1\nlistener: []\n", [
    "proxy.yaml:1:1: listeners: is required",
    'proxy.yaml:2:1: listener: unknown key "listener" (did you mean listeners?)',
  ]);
  expectErrors(`version: 1\ndefaults:\n  ConnectTimeout: 1s\n${withListener().slice(11)}`, [
    'proxy.yaml:3:3: defaults.ConnectTimeout: unknown key "ConnectTimeout" (did you mean connectTimeout?)',
  ]);
  expectErrors(withListener().replace("targets: [127.0.0.1:9000]", "targets:\n      - adress: 127.0.0.1:9000"), [
    "proxy.yaml:6:9: listeners[0].targets[0].address: is required",
    'proxy.yaml:6:9: listeners[0].targets[0].adress: unknown key "adress" (did you mean address?)',
  ]);
  expectErrors(`version: 1\nbase: &base {listen: 127.0.0.1:1}\n${withListener().slice(11)}`, [
    'proxy.yaml:2:1: base: unknown key "base"',
  ]);
});

test("YAML merge keys are not supported, and say so", () => {
  expectErrors(withListener("    <<: {idleTimeout: 5s}\n"), [
    'proxy.yaml:6:5: listeners[0]["<<"]: unknown key "<<" (YAML merge keys are not supported; write the keys out)',
  ]);
});

test("wrong types say what was expected and what was found", () => {
  expectErrors(
    "version: 1\nlisteners:\n  - name: 5\n    listen: 8080\n    targets: 127.0.0.1:9000\n    idleTimeout: 30\n",
    [
      "proxy.yaml:3:11: listeners[0].name: must be a string, not number 5",
      'proxy.yaml:4:13: listeners[0].listen: must be an "ip:port" or ":port" string, not number 8080',
      'proxy.yaml:5:14: listeners[0].targets: must be a list, not the string "127.0.0.1:9000"',
      'proxy.yaml:6:18: listeners[0].idleTimeout: must be a duration such as "5s", not number 30',
    ],
  );
  expectErrors("- version: 1\n", ["proxy.yaml:1:1: must be a map, not a list"]);
  expectErrors("listeners\n", ['proxy.yaml:1:1: must be a map, not the string "listeners"']);
  expectErrors("version: 1\nlisteners:\n", ["proxy.yaml:2:11: listeners: must be a list, not null"]);
  expectErrors(withListener().replace("[127.0.0.1:9000]", "[5]"), [
    'proxy.yaml:5:15: listeners[0].targets[0]: must be a "host:port" string or an {address, weight} map, not number 5',
  ]);
  expectErrors(`version: 1\nlog:\n  level: loud\n${withListener().slice(11)}`, [
    'proxy.yaml:3:10: log.level: must be one of "trace", "debug", "info", "warn", "error", not the string "loud"',
  ]);
  expectErrors(withListener("    balance: fastest\n"), [
    'proxy.yaml:6:14: listeners[0].balance: must be one of "round-robin", "least-connections", "random", "source-hash", not the string "fastest"',
  ]);
});

test("version must be 1", () => {
  expectErrors(withListener().replace("version: 1", "version: 2"), [
    "proxy.yaml:1:10: version: must be 1, not number 2",
  ]);
  expectErrors(withListener().replace("version: 1", 'version: "1"'), [
    'proxy.yaml:1:10: version: must be 1, not the string "1"',
  ]);
});

test("missing required keys are named at the map that lacks them", () => {
  expectErrors("version: 1\nlisteners:\n  - name: web\n", [
    "proxy.yaml:3:5: listeners[0].listen: is required",
    "proxy.yaml:3:5: listeners[0].targets: is required (or routes, or both)",
  ]);
  expectErrors(withListener().replace("version: 1\n", ""), ["proxy.yaml:1:1: version: is required"]);
  expectErrors("version: 1\n", ["proxy.yaml:1:1: listeners: is required"]);
  expectErrors("version: 1\nlisteners: []\n", ["proxy.yaml:2:12: listeners: must have at least 1 entry"]);
  expectErrors(withListener().replace("[127.0.0.1:9000]", "[]"), [
    "proxy.yaml:5:14: listeners[0].targets: must have at least 1 entry",
  ]);
});

test("listener names and acl names must be well-formed", () => {
  expectErrors(withListener().replace("name: web", 'name: "my web"'), [
    "proxy.yaml:3:11: listeners[0].name: must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
  ]);
  expectErrors(`version: 1\nacls:\n  "my office": [10.0.0.0/8]\n${withListener().slice(11)}`, [
    `proxy.yaml:3:3: acls["my office"]: "my office" is not a valid acl name (letters, digits, '_' and '-', starting with a letter or '_')`,
  ]);
});

// --- addresses ------------------------------------------------------------------------

test("a CIDR with host bits set is an error naming the network meant", () => {
  expectErrors(`version: 1\nacls:\n  office: [10.20.0.0/16, 10.0.0.5/8]\n${withListener().slice(11)}`, [
    'proxy.yaml:3:26: acls.office[1]: "10.0.0.5/8" has host bits set (did you mean 10.0.0.0/8?)',
  ]);
  expectErrorsInclude(withListener("    allow: [192.168.20.0/24, 10.0.0.5/8]\n"), [
    'proxy.yaml:6:30: listeners[0].allow[1]: "10.0.0.5/8" has host bits set (did you mean 10.0.0.0/8?)',
  ]);
  expectErrorsInclude(withListener('    deny: ["2001:db8::1/32"]\n'), [
    'proxy.yaml:6:12: listeners[0].deny[0]: "2001:db8::1/32" has host bits set (did you mean 2001:db8::/32?)',
  ]);
});

test("octal, short and hex IPv4 are refused in listen, targets and allow", () => {
  expectErrors(
    "version: 1\nlisteners:\n  - name: web\n    listen: 010.0.0.1:8080\n    targets: [127.1:9000, 0x7f.0.0.1:9000]\n",
    [
      'proxy.yaml:4:13: listeners[0].listen: "010.0.0.1" is not an IPv4 address ("010" has a leading zero, which some tools read as octal)',
      'proxy.yaml:5:15: listeners[0].targets[0]: "127.1" is not an IPv4 address (it has 2 parts; write all four, a.b.c.d)',
      'proxy.yaml:5:27: listeners[0].targets[1]: "0x7f.0.0.1" is not an IPv4 address ("0x7f" is not a decimal number)',
    ],
  );
  expectErrors("version: 1\nlisteners:\n  - name: web\n    listen: 127.1:8080\n    targets: [010.0.0.1:9000]\n", [
    'proxy.yaml:4:13: listeners[0].listen: "127.1" is not an IPv4 address (it has 2 parts; write all four, a.b.c.d)',
    'proxy.yaml:5:15: listeners[0].targets[0]: "010.0.0.1" is not an IPv4 address ("010" has a leading zero, which some tools read as octal)',
  ]);
  expectErrorsInclude(withListener('    allow: [010.0.0.1, "127.1", 0x7f.0.0.1/8]\n'), [
    'proxy.yaml:6:13: listeners[0].allow[0]: "010.0.0.1" is not an IPv4 address ("010" has a leading zero, which some tools read as octal)',
    'proxy.yaml:6:24: listeners[0].allow[1]: "127.1" is not an IPv4 address (it has 2 parts; write all four, a.b.c.d)',
    'proxy.yaml:6:33: listeners[0].allow[2]: "0x7f.0.0.1" is not an IPv4 address ("0x7f" is not a decimal number)',
  ]);
  // Unquoted, YAML reads 127.1 as a number: still refused.
  expectErrorsInclude(withListener("    allow: [127.1]\n"), [
    "proxy.yaml:6:13: listeners[0].allow[0]: must be an address, a CIDR or an acl name, not number 127.1",
  ]);
  expectErrors(`version: 1\nacls:\n  lan: [0x0a.0.0.0/8]\n${withListener().slice(11)}`, [
    'proxy.yaml:3:9: acls.lan[0]: "0x0a.0.0.0" is not an IPv4 address ("0x0a" is not a decimal number)',
  ]);
});

test("IPv6 in host:port needs brackets; zone ids are refused", () => {
  expectErrors('version: 1\nlisteners:\n  - name: web\n    listen: "::1:8080"\n    targets: ["2001:db8::1:5432"]\n', [
    'proxy.yaml:4:13: listeners[0].listen: "::1:8080": write IPv6 addresses in brackets, "[::1]:port"',
    'proxy.yaml:5:15: listeners[0].targets[0]: "2001:db8::1:5432": write IPv6 addresses in brackets, "[2001:db8::1]:port"',
  ]);
  expectErrors(
    'version: 1\nlisteners:\n  - name: web\n    listen: "[fe80::1%eth0]:8080"\n    targets: ["[fe80::2%eth0]:80"]\n',
    [
      'proxy.yaml:4:13: listeners[0].listen: "fe80::1%eth0": IPv6 zone ids are not supported',
      'proxy.yaml:5:15: listeners[0].targets[0]: "fe80::2%eth0": IPv6 zone ids are not supported',
    ],
  );
  expectErrorsInclude(withListener('    allow: ["fe80::1%eth0"]\n'), [
    'proxy.yaml:6:13: listeners[0].allow[0]: "fe80::1%eth0": IPv6 zone ids are not supported',
  ]);
  expectOk(withListener().replace("127.0.0.1:8080", '"[::1]:8080"').replace("127.0.0.1:9000", '"[2001:db8::1]:5432"'));
});

test("a listen address is an IP literal or :port, never a host name", () => {
  expectErrors(withListener().replace("127.0.0.1:8080", "localhost:8080"), [
    'proxy.yaml:4:13: listeners[0].listen: "localhost:8080": a listen address must be an IP address or ":port", not a host name',
  ]);
});

test("ports must be 1-65535", () => {
  expectErrors(
    "version: 1\nlisteners:\n  - name: web\n    listen: 127.0.0.1:0\n    targets: [127.0.0.1:65536, db.internal:http]\n",
    [
      'proxy.yaml:4:13: listeners[0].listen: "127.0.0.1:0": port must be from 1 to 65535',
      'proxy.yaml:5:15: listeners[0].targets[0]: "127.0.0.1:65536": port must be from 1 to 65535',
      'proxy.yaml:5:32: listeners[0].targets[1]: "db.internal:http": port must be a number from 1 to 65535',
    ],
  );
  expectErrors(withListener().replace("127.0.0.1:8080", '"127.0.0.1"'), [
    'proxy.yaml:4:13: listeners[0].listen: "127.0.0.1" must be "host:port"',
  ]);
});

// --- durations --------------------------------------------------------------------------

test("bad durations", () => {
  expectErrors(
    withListener("    connectTimeout: 5sec\n    idleTimeout: 1.5m\n    maxDuration: 0s\n    halfCloseTimeout: 30d\n"),
    [
      'proxy.yaml:6:21: listeners[0].connectTimeout: "5sec" is not a duration (e.g. 500ms, 5s, 15m, 8h, 1d)',
      'proxy.yaml:7:18: listeners[0].idleTimeout: "1.5m" is not a duration (e.g. 500ms, 5s, 15m, 8h, 1d)',
      'proxy.yaml:8:18: listeners[0].maxDuration: "0s": a duration must be more than zero',
      'proxy.yaml:9:23: listeners[0].halfCloseTimeout: "30d" is too long (at most 24d)',
    ],
  );
  expectErrors(`version: 1\nshutdownTimeout: 30\n${withListener().slice(11)}`, [
    'proxy.yaml:2:18: shutdownTimeout: must be a duration such as "5s", not number 30',
  ]);
});

// --- across values ------------------------------------------------------------------------

const listeners = (...entries: [name: string, listen: string][]) =>
  `version: 1\nlisteners:\n${entries
    .map(([name, listen]) => `  - name: ${name}\n    listen: "${listen}"\n    targets: [127.0.0.1:9000]\n`)
    .join("")}`;

test("listener names are unique", () => {
  expectErrors(listeners(["web", "127.0.0.1:1"], ["api", "127.0.0.1:2"], ["web", "127.0.0.1:3"]), [
    'proxy.yaml:9:11: listeners[2].name: "web" is already the name of listeners[0]',
  ]);
});

test("two listeners on one address, or a wildcard over a specific address on one port, clash", () => {
  expectErrors(listeners(["a", "127.0.0.1:1"], ["b", "127.0.0.1:1"]), [
    'proxy.yaml:7:13: listeners[1].listen: 127.0.0.1:1 is already the address of listener "a" (listeners[0])',
  ]);
  // Canonical forms are compared, not the text.
  expectErrors(listeners(["a", "[::0]:1"], ["b", "[0::]:1"]), [
    'proxy.yaml:7:13: listeners[1].listen: [::]:1 is already the address of listener "a" (listeners[0])',
  ]);
  const wildcard = (first: string, second: string) =>
    `proxy.yaml:7:13: listeners[1].listen: ${second} overlaps ${first} of listener "a" (listeners[0]): a wildcard address covers every address on its port`;
  for (const [first, second] of [
    ["127.0.0.1:5", "0.0.0.0:5"],
    ["0.0.0.0:5", "10.1.2.3:5"],
    [":5", "127.0.0.1:5"],
    [":5", "[::1]:5"],
    ["[::]:5", "127.0.0.1:5"],
    ["[::]:5", "0.0.0.0:5"],
    ["[::1]:5", ":5"],
  ]) {
    expectErrors(listeners(["a", first ?? ""], ["b", second ?? ""]), [wildcard(first ?? "", second ?? "")]);
  }
  // No clash: other ports, and IPv4 "any" does not cover IPv6 addresses.
  expectOk(listeners(["a", "0.0.0.0:5"], ["b", "0.0.0.0:6"], ["c", "127.0.0.1:7"], ["d", "127.0.0.2:7"]));
  expectOk(listeners(["a", "0.0.0.0:5"], ["b", "[::1]:5"]));
});

test("a target listed twice is an error (weights exist for that)", () => {
  expectErrors(withListener().replace("[127.0.0.1:9000]", "[127.0.0.1:9000, DB.internal:1, db.internal:1]"), [
    "proxy.yaml:5:46: listeners[0].targets[2]: db.internal:1 is already targets[1] (give it a weight instead of listing it twice)",
  ]);
});

test("acl names used in allow and deny must exist", () => {
  expectErrorsInclude(
    `version: 1\nacls:\n  office: [10.20.0.0/16]\n${withListener("    allow: [office, offce]\n    deny: [quarantine]\n").slice(11)}`,
    [
      'proxy.yaml:8:21: listeners[0].allow[1]: no acl named "offce" in acls (did you mean office?)',
      'proxy.yaml:9:12: listeners[0].deny[0]: no acl named "quarantine" in acls',
    ],
  );
  expectErrorsInclude(`version: 1\nadmin:\n  listen: 127.0.0.1:9901\n  allow: [ops]\n${withListener().slice(11)}`, [
    'proxy.yaml:4:11: admin.allow[0]: no acl named "ops" in acls',
  ]);
  expectErrorsInclude(withListener('    allow: ["not an address"]\n'), [
    'proxy.yaml:6:13: listeners[0].allow[0]: "not an address" is neither an address nor an acl name',
  ]);
});

test("limits must be positive whole numbers", () => {
  expectErrorsInclude(
    `version: 1\ndefaults:\n  maxConnections: 0\n${withListener("    maxConnections: -1\n    maxConnectionsPerClient: 1.5\n").slice(11)}`,
    [
      "proxy.yaml:3:19: defaults.maxConnections: must be at least 1",
      "proxy.yaml:8:21: listeners[0].maxConnections: must be at least 1",
      "proxy.yaml:9:30: listeners[0].maxConnectionsPerClient: must be a whole number, not number 1.5",
    ],
  );
  expectErrors(withListener().replace("[127.0.0.1:9000]", "[{address: 127.0.0.1:9000, weight: 0}]"), [
    "proxy.yaml:5:49: listeners[0].targets[0].weight: must be at least 1",
  ]);
  expectErrors(withListener().replace("[127.0.0.1:9000]", "[{address: 127.0.0.1:9000, weight: 1001}]"), [
    "proxy.yaml:5:49: listeners[0].targets[0].weight: must be at most 1000",
  ]);
});

// --- the whole contract ----------------------------------------------------------------

test("every key of SPEC §2 loads: the contract's own example is a valid config", () => {
  const config = expectOk(`version: 1
acls:
  office: [10.20.0.0/16, "2001:db8:42::/48"]
  quarantine: [10.20.99.0/24]
defaults:
  connectTimeout: 5s
  idleTimeout: 15m
  maxConnections: 1000
admin:
  listen: 127.0.0.1:9901
  allow: [127.0.0.1]
log:
  level: info
shutdownTimeout: 30s
listeners:
  - name: postgres
    listen: 0.0.0.0:15432
    targets:
      - 192.168.0.100:5432
      - address: 192.168.0.101:5432
        weight: 2
    balance: least-connections
    allow: [office, 192.168.20.0/24]
    deny: [quarantine]
    schedule:
      timezone: Europe/Berlin
      windows:
        - days: [mon, tue, wed, thu, fri]
          from: "07:00"
          to: "19:00"
    maxConnections: 200
    maxConnectionsPerClient: 10
    maxDuration: 8h
    idleTimeout: 30m
    halfCloseTimeout: 1m
    connectTimeout: 3s
    healthCheck:
      interval: 5s
      timeout: 1s
      fall: 3
      rise: 2
    proxyProtocol: v2
    inspect: false
`);
  const l = config.listeners[0];
  assert.equal(l?.balance, "least-connections");
  assert.deepEqual(l?.healthCheck, { intervalMs: 5000, timeoutMs: 1000, fall: 3, rise: 2 });
  assert.equal(l?.proxyProtocol, "v2");
  assert.equal(config.admin?.listenKey, "127.0.0.1:9901");
  assert.deepEqual(
    config.admin?.allow.map((r) => r.source),
    ["127.0.0.1"],
  );
});

test("health check settings default to interval 5s, timeout 1s, fall 3, rise 2", () => {
  const config = expectOk(withListener("    healthCheck: {}\n"));
  assert.deepEqual(config.listeners[0]?.healthCheck, { intervalMs: 5000, timeoutMs: 1000, fall: 3, rise: 2 });
});

test("the admin endpoint may not share an address with a listener", () => {
  expectErrors(`version: 1\nadmin:\n  listen: ":8080"\n${withListener().slice("version: 1\n".length)}`, [
    'proxy.yaml:3:11: admin.listen: :8080 overlaps 127.0.0.1:8080 of listener "web" (listeners[0]): a wildcard address covers every address on its port',
  ]);
});

// --- every error at once --------------------------------------------------------------------

test("all errors in a file are reported, in file order, schema and cross-field alike", () => {
  const yaml = `version: 1
defaults:
  idleTimeout: forever
listeners:
  - name: web
    listen: 127.0.0.1:8080
    targets: [127.0.0.1:9000]
  - name: web
    listen: 127.0.0.1:8081
    targets: [127.1:9000]
  - name: api
    listen: 127.0.0.1:8082
    targets: [127.0.0.1:9001]
    conectTimeout: 1s
  - name: api2
    listen: 0.0.0.0:8080
    targets: [127.0.0.1:9001]
`;
  // listeners[1] fails the schema (its target), and its name is a duplicate all the same.
  expectErrors(yaml, [
    'proxy.yaml:3:16: defaults.idleTimeout: "forever" is not a duration (e.g. 500ms, 5s, 15m, 8h, 1d)',
    'proxy.yaml:8:11: listeners[1].name: "web" is already the name of listeners[0]',
    'proxy.yaml:10:15: listeners[1].targets[0]: "127.1" is not an IPv4 address (it has 2 parts; write all four, a.b.c.d)',
    'proxy.yaml:14:5: listeners[2].conectTimeout: unknown key "conectTimeout" (did you mean connectTimeout?)',
    'proxy.yaml:16:13: listeners[3].listen: 0.0.0.0:8080 overlaps 127.0.0.1:8080 of listener "web" (listeners[0]): a wildcard address covers every address on its port',
  ]);
});

test("one run reports both an unknown key and a missing acl, even in one listener", () => {
  const yaml = `version: 1
maxconnections: 100
acls:
  office: [10.20.0.0/16]
listeners:
  - name: ssh
    listen: 127.0.0.1:2222
    targets: [10.0.0.5:22, 10.0.0.5:22]
    allow: [ofice]
    maxConection: 10
  - name: ssh
    listen: "[::ffff:127.0.0.1]:2222"
    targets: [10.0.0.6:22]
    deny: [quarantine]
    idleTimeout: never
`;
  expectErrors(yaml, [
    'proxy.yaml:2:1: maxconnections: unknown key "maxconnections" (did you mean defaults.maxConnections?)',
    "proxy.yaml:8:28: listeners[0].targets[1]: 10.0.0.5:22 is already targets[0] (give it a weight instead of listing it twice)",
    'proxy.yaml:9:13: listeners[0].allow[0]: no acl named "ofice" in acls (did you mean office?)',
    'proxy.yaml:10:5: listeners[0].maxConection: unknown key "maxConection" (did you mean maxConnections?)',
    'proxy.yaml:11:11: listeners[1].name: "ssh" is already the name of listeners[0]',
    'proxy.yaml:12:13: listeners[1].listen: [::ffff:127.0.0.1]:2222 (IPv4-mapped, so 127.0.0.1:2222) is already the address of listener "ssh" (listeners[0])',
    'proxy.yaml:14:12: listeners[1].deny[0]: no acl named "quarantine" in acls',
    'proxy.yaml:15:18: listeners[1].idleTimeout: "never" is not a duration (e.g. 500ms, 5s, 15m, 8h, 1d)',
  ]);
  // A clash with a listener whose name is itself broken names it by index only.
  expectErrorsInclude(
    withListener().replace("name: web", 'name: "my web"') +
      "  - name: api\n    listen: 127.0.0.1:8080\n    targets: [127.0.0.1:9001]\n",
    ["proxy.yaml:7:13: listeners[1].listen: 127.0.0.1:8080 is already the address of listeners[0]"],
  );
});

test("a key written one level too high is suggested with its parent", () => {
  expectErrors(`version: 1\nloglevel: debug\nlistner: []\n`, [
    "proxy.yaml:1:1: listeners: is required",
    'proxy.yaml:2:1: loglevel: unknown key "loglevel" (did you mean log.level?)',
    'proxy.yaml:3:1: listner: unknown key "listner" (did you mean listeners?)',
  ]);
  expectErrors(withListener("    timezone: UTC\n    interval: 5s\n"), [
    'proxy.yaml:6:5: listeners[0].timezone: unknown key "timezone" (did you mean schedule.timezone?)',
    'proxy.yaml:7:5: listeners[0].interval: unknown key "interval" (did you mean healthCheck.interval?)',
  ]);
  // Lists are not suggested as parents ("listeners.name" is no key), and far-off words get nothing.
  expectErrors(`${withListener()}name: web\nfrobnicate: 1\n`, [
    'proxy.yaml:6:1: name: unknown key "name"',
    'proxy.yaml:7:1: frobnicate: unknown key "frobnicate"',
  ]);
});

// --- the normalised result --------------------------------------------------------------------

test("normalisation: built-in defaults fill every gap", () => {
  const config = expectOk(withListener());
  assert.deepEqual(config, {
    listeners: [
      {
        name: "web",
        listen: { host: "127.0.0.1", port: 8080, family: 4 },
        listenKey: "127.0.0.1:8080",
        targets: [{ address: { host: "127.0.0.1", port: 9000, family: 4 }, key: "127.0.0.1:9000", weight: 1 }],
        routes: [],
        balance: "round-robin",
        allow: [],
        deny: [],
        schedule: undefined,
        maxConnections: undefined,
        maxConnectionsPerClient: undefined,
        connectTimeoutMs: 5_000,
        idleTimeoutMs: 15 * 60_000,
        maxDurationMs: undefined,
        halfCloseTimeoutMs: 60_000,
        healthCheck: undefined,
        proxyProtocol: undefined,
        inspect: false,
        recheck: false,
        acceptProxy: undefined,
        filter: undefined,
      },
    ],
    admin: undefined,
    logLevel: "info",
    shutdownTimeoutMs: 30_000,
    workers: 1,
  });
});

test("normalisation: listeners inherit from defaults unless they set their own; durations in ms", () => {
  const config = expectOk(`version: 1
defaults:
  connectTimeout: 2s
  idleTimeout: 30m
  maxDuration: 8h
  halfCloseTimeout: 500ms
log:
  level: debug
shutdownTimeout: 1m
listeners:
  - name: inherits
    listen: ":2222"
    targets: [127.0.0.1:22]
  - name: overrides
    listen: "[::1]:8443"
    targets:
      - DB.Internal:5432
      - address: "[2001:DB8::1]:5432"
        weight: 3
    connectTimeout: 1s
    idleTimeout: 1d
    maxDuration: 90s
    halfCloseTimeout: 2m
`);
  assert.equal(config.logLevel, "debug");
  assert.equal(config.shutdownTimeoutMs, 60_000);
  const [inherits, overrides] = config.listeners;
  assert.deepEqual(
    [inherits?.connectTimeoutMs, inherits?.idleTimeoutMs, inherits?.maxDurationMs, inherits?.halfCloseTimeoutMs],
    [2_000, 30 * 60_000, 8 * 3_600_000, 500],
  );
  assert.deepEqual(
    [overrides?.connectTimeoutMs, overrides?.idleTimeoutMs, overrides?.maxDurationMs, overrides?.halfCloseTimeoutMs],
    [1_000, 86_400_000, 90_000, 120_000],
  );
  assert.deepEqual(inherits?.listen, { host: "", port: 2222, family: undefined });
  assert.equal(inherits?.listenKey, ":2222");
  assert.equal(overrides?.listenKey, "[::1]:8443");
  assert.deepEqual(
    overrides?.targets.map((t) => [t.key, t.weight, t.address.family]),
    [
      ["db.internal:5432", 1, undefined],
      ["[2001:db8::1]:5432", 3, 6],
    ],
  );
});

test("acceptProxy: from is required and non-empty, names known acls; timeout 3 s unless set; defaults hold it too", () => {
  const config = expectOk(
    `version: 1\nacls:\n  lbs: [10.0.0.0/24]\ndefaults:\n  acceptProxy:\n    from: [lbs]\n${withListener().slice(11)}  - name: own\n    listen: 127.0.0.1:8081\n    targets: [127.0.0.1:9000]\n    acceptProxy: {from: [192.0.2.1], timeout: 500ms}\n`,
  );
  const [inherits, own] = config.listeners;
  assert.deepEqual(
    inherits?.acceptProxy?.from.map((r) => [r.source, r.cidrs.map((c) => c.text)]),
    [["lbs", ["10.0.0.0/24"]]],
  );
  assert.equal(inherits?.acceptProxy?.timeoutMs, 3_000);
  assert.equal(own?.acceptProxy?.timeoutMs, 500);
  assert.equal(own?.acceptProxy?.from[0]?.source, "192.0.2.1");
  expectErrorsInclude(withListener("    acceptProxy: {from: [balancers]}\n"), [
    'proxy.yaml:6:26: listeners[0].acceptProxy.from[0]: no acl named "balancers" in acls',
  ]);
  expectErrorsInclude(`version: 1\ndefaults:\n  acceptProxy: {from: [lbs]}\n${withListener().slice(11)}`, [
    'proxy.yaml:3:24: defaults.acceptProxy.from[0]: no acl named "lbs" in acls',
  ]);
  assert.equal(parseConfig(withListener("    acceptProxy: {from: []}\n"), FILE).ok, false);
  assert.equal(parseConfig(withListener("    acceptProxy: {timeout: 1s}\n"), FILE).ok, false);
});

test("routes: each takes targets and what it leaves out from its listener; targets optional beside them", () => {
  const config = expectOk(`version: 1
listeners:
  - name: tls
    listen: 127.0.0.1:8443
    balance: least-connections
    proxyProtocol: v1
    healthCheck: {interval: 2s}
    routes:
      - sni: [DB.example.com]
        targets: [127.0.0.1:5432]
      - sni: ["*.apps.example.com", apps.example.com]
        targets: [127.0.0.1:9001, {address: 127.0.0.1:9002, weight: 2}]
        balance: source-hash
        proxyProtocol: v2
        healthCheck: {interval: 1s, fall: 5}
`);
  const [l] = config.listeners;
  assert.deepEqual(l?.targets, []);
  const [db, apps] = l?.routes ?? [];
  assert.deepEqual(
    [db?.key, db?.balance, db?.proxyProtocol, db?.healthCheck?.intervalMs],
    ["DB.example.com", "least-connections", "v1", 2_000],
  );
  assert.deepEqual(
    [apps?.key, apps?.balance, apps?.proxyProtocol, apps?.healthCheck?.fall, apps?.targets.map((t) => t.weight)],
    ["*.apps.example.com,apps.example.com", "source-hash", "v2", 5, [1, 2]],
  );
});

test("routes: server names are DNS names or one-label wildcards, in one route only; targets once each", () => {
  const routes = (lines: string) => withListener(`    routes:\n${lines}`);
  expectErrorsInclude(
    routes('      - sni: ["*", "a.*.example.com", "-x.example.com"]\n        targets: [127.0.0.1:1]\n'),
    [
      'proxy.yaml:7:15: listeners[0].routes[0].sni[0]: "*" is not a server name (a DNS name, or "*." and a name for exactly one more label)',
      'proxy.yaml:7:20: listeners[0].routes[0].sni[1]: "a.*.example.com" is not a server name (a DNS name, or "*." and a name for exactly one more label)',
      'proxy.yaml:7:39: listeners[0].routes[0].sni[2]: "-x.example.com" is not a server name (a DNS name, or "*." and a name for exactly one more label)',
    ],
  );
  expectErrors(
    routes(
      "      - sni: [a.example.com]\n        targets: [127.0.0.1:1]\n      - sni: [b.example.com, A.Example.com]\n        targets: [127.0.0.1:1, 127.0.0.1:1]\n",
    ),
    [
      "proxy.yaml:9:30: listeners[0].routes[1].sni[1]: A.Example.com is already taken by routes[0] (the first match wins)",
      "proxy.yaml:10:32: listeners[0].routes[1].targets[1]: 127.0.0.1:1 is already targets[0] (give it a weight instead of listing it twice)",
    ],
  );
  expectErrorsInclude(routes("      - sni: [a.example.com]\n"), [
    "proxy.yaml:7:9: listeners[0].routes[0].targets: is required",
  ]);
});

test("normalisation: the result is deeply frozen", () => {
  const config = expectOk(withListener());
  const listener = config.listeners[0];
  assert.ok(listener);
  for (const value of [config, config.listeners, listener, listener.listen, listener.targets, listener.targets[0]]) {
    assert.ok(Object.isFrozen(value));
  }
  assert.throws(() => {
    (listener as { idleTimeoutMs: number }).idleTimeoutMs = 1;
  }, TypeError);
  assert.throws(() => {
    (config.listeners as unknown[]).push({});
  }, TypeError);
});

test("normalisation: acl names in allow and deny resolve to their parsed ranges", () => {
  const raw = configSchema.parse({
    version: 1,
    acls: { office: ["10.20.0.0/16", "2001:db8:42::/48"] },
    listeners: [
      {
        name: "web",
        listen: "127.0.0.1:8080",
        targets: ["127.0.0.1:9000"],
        allow: ["office", "192.168.20.7"],
        deny: ["10.20.99.0/24"],
      },
    ],
  });
  const listener = normalise(raw).listeners[0];
  assert.deepEqual(
    listener?.allow.map((rule) => [rule.source, rule.cidrs.map((c) => c.text)]),
    [
      ["office", ["10.20.0.0/16", "2001:db8:42::/48"]],
      ["192.168.20.7", ["192.168.20.7/32"]],
    ],
  );
  assert.deepEqual(
    listener?.deny.map((rule) => rule.cidrs.map((c) => c.text)),
    [["10.20.99.0/24"]],
  );
  assert.ok(Object.isFrozen(listener?.allow[0]?.cidrs[0]));
});

test("schedule: days and day ranges expand, wrapping ranges cross Sunday, unknown zones are errors", () => {
  const config = expectOk(
    withListener(`    schedule:
      timezone: Europe/Berlin
      windows:
        - days: [mon-wed, sat]
          from: "07:00"
          to: "24:00"
        - days: [fri-mon]
          from: "22:00"
          to: "06:00"
        - from: "12:00"
          to: "13:00"
`),
  );
  const schedule = config.listeners[0]?.schedule;
  assert.equal(schedule?.timezone, "Europe/Berlin");
  assert.deepEqual(
    schedule?.windows.map((w) => w.days),
    [["mon", "tue", "wed", "sat"], ["mon", "fri", "sat", "sun"], undefined],
  );
  expectErrors(
    withListener(`    schedule:
      timezone: Mars/Olympus_Mons
      windows:
        - days: [monday]
          from: "7:00"
          to: "24:01"
`),
    [
      'proxy.yaml:7:17: listeners[0].schedule.timezone: unknown time zone "Mars/Olympus_Mons"',
      'proxy.yaml:9:18: listeners[0].schedule.windows[0].days[0]: must be a day (mon, tue, wed, thu, fri, sat, sun) or a range such as "mon-fri"',
      'proxy.yaml:10:17: listeners[0].schedule.windows[0].from: must be a time "HH:MM" from "00:00" to "24:00"',
      'proxy.yaml:11:15: listeners[0].schedule.windows[0].to: must be a time "HH:MM" from "00:00" to "24:00"',
    ],
  );
});

test("limits from defaults are inherited and may be overridden per listener", () => {
  const config = expectOk(`version: 1
defaults:
  maxConnections: 1000
  maxConnectionsPerClient: 10
listeners:
  - name: a
    listen: 127.0.0.1:8080
    targets: [127.0.0.1:9000]
  - name: b
    listen: 127.0.0.1:8081
    targets: [127.0.0.1:9000]
    maxConnections: 5
`);
  assert.deepEqual(
    config.listeners.map((l) => [l.maxConnections, l.maxConnectionsPerClient]),
    [
      [1000, 10],
      [5, 10],
    ],
  );
});

test("defaults takes every listener key but name, listen, targets and routes", () => {
  const listenerKeys = Object.keys(listenerSchema.shape).filter(
    (k) => !["name", "listen", "targets", "routes"].includes(k),
  );
  const defaults = configSchema.shape.defaults.unwrap();
  assert.deepEqual(Object.keys(defaults.shape).sort(), listenerKeys.sort());
  for (const key of ["name", "listen", "targets", "routes"]) {
    assert.equal(parseConfig(`version: 1\ndefaults:\n  ${key}: x\n${withListener().slice(11)}`, FILE).ok, false, key);
  }
});

describe("defaults: each listener key is inherited, and a listener's own replaces it whole", () => {
  /** Listener "inherits" sets nothing; listener "own" sets `own`; both under `defaults`. */
  const pair = (defaults: string, own: string) => {
    const config = expectOk(
      `version: 1\nacls:\n  office: [10.20.0.0/16]\ndefaults:\n${defaults}listeners:\n` +
        "  - name: inherits\n    listen: 127.0.0.1:8080\n    targets: [127.0.0.1:9000]\n" +
        `  - name: own\n    listen: 127.0.0.1:8081\n    targets: [127.0.0.1:9000]\n${own}`,
    );
    const [inherits, mine] = config.listeners;
    assert.ok(inherits && mine);
    return [inherits, mine] as const;
  };
  const sources = (rules: readonly { source: string }[]) => rules.map((r) => r.source);

  test("balance", () => {
    const [inherits, own] = pair("  balance: source-hash\n", "    balance: random\n");
    assert.deepEqual([inherits.balance, own.balance], ["source-hash", "random"]);
  });

  test("allow and deny: the listener's list replaces the default list, it is not merged; [] undoes it", () => {
    const [inherits, own] = pair(
      "  allow: [office, 192.0.2.0/24]\n  deny: [10.20.99.0/24]\n",
      "    allow: [198.51.100.0/24]\n    deny: []\n",
    );
    assert.deepEqual(sources(inherits.allow), ["office", "192.0.2.0/24"]);
    assert.deepEqual(
      inherits.allow[0]?.cidrs.map((c) => c.text),
      ["10.20.0.0/16"],
    );
    assert.deepEqual(sources(inherits.deny), ["10.20.99.0/24"]);
    assert.deepEqual(sources(own.allow), ["198.51.100.0/24"]);
    assert.deepEqual(own.deny, []);
  });

  test("schedule: the listener's replaces the default; false means always open", () => {
    const defaults = '  schedule: {timezone: UTC, windows: [{days: [mon-fri], from: "07:00", to: "19:00"}]}\n';
    const [inherits, own] = pair(defaults, '    schedule: {windows: [{from: "22:00", to: "06:00"}]}\n');
    assert.deepEqual(inherits.schedule, {
      timezone: "UTC",
      windows: [{ days: ["mon", "tue", "wed", "thu", "fri"], from: "07:00", to: "19:00" }],
    });
    assert.deepEqual(own.schedule, { timezone: undefined, windows: [{ days: undefined, from: "22:00", to: "06:00" }] });
    assert.equal(pair(defaults, "    schedule: false\n")[1].schedule, undefined);
  });

  test("healthCheck: replaced whole, not key by key; false turns checks off", () => {
    const [inherits, own] = pair("  healthCheck: {interval: 2s, fall: 5}\n", "    healthCheck: {timeout: 500ms}\n");
    assert.deepEqual(inherits.healthCheck, { intervalMs: 2_000, timeoutMs: 1_000, fall: 5, rise: 2 });
    assert.deepEqual(own.healthCheck, { intervalMs: 5_000, timeoutMs: 500, fall: 3, rise: 2 });
    assert.equal(pair("  healthCheck: {}\n", "    healthCheck: false\n")[1].healthCheck, undefined);
  });

  test("proxyProtocol: the listener's wins; false sends no header", () => {
    const [inherits, own] = pair("  proxyProtocol: v2\n", "    proxyProtocol: v1\n");
    assert.deepEqual([inherits.proxyProtocol, own.proxyProtocol], ["v2", "v1"]);
    assert.equal(pair("  proxyProtocol: v2\n", "    proxyProtocol: false\n")[1].proxyProtocol, undefined);
  });

  test("inspect", () => {
    const [inherits, own] = pair("  inspect: true\n", "    inspect: false\n");
    assert.deepEqual([inherits.inspect, own.inspect], [true, false]);
  });

  test("acceptProxy and filter: false undoes the default on one listener", () => {
    const [inherits, own] = pair(
      "  acceptProxy: {from: [10.0.0.0/24]}\n  filter: {module: ./f.mjs}\n",
      "    acceptProxy: false\n    filter: false\n",
    );
    assert.equal(inherits.acceptProxy?.from[0]?.source, "10.0.0.0/24");
    assert.equal(inherits.filter?.module, "./f.mjs");
    assert.deepEqual([own.acceptProxy, own.filter], [undefined, undefined]);
  });

  test("routes take balance, healthCheck and proxyProtocol from their listener, so from defaults; false there too", () => {
    const config = expectOk(`version: 1
defaults:
  balance: least-connections
  healthCheck: {interval: 2s}
  proxyProtocol: v2
listeners:
  - name: tls
    listen: 127.0.0.1:8443
    routes:
      - sni: [a.example.com]
        targets: [127.0.0.1:9001]
      - sni: [b.example.com]
        targets: [127.0.0.1:9002]
        healthCheck: false
        proxyProtocol: false
`);
    const [a, b] = config.listeners[0]?.routes ?? [];
    assert.deepEqual([a?.balance, a?.healthCheck?.intervalMs, a?.proxyProtocol], ["least-connections", 2_000, "v2"]);
    assert.deepEqual([b?.balance, b?.healthCheck, b?.proxyProtocol], ["least-connections", undefined, undefined]);
  });

  test("errors in defaults name their place; acl names in its allow and deny must exist", () => {
    expectErrors(
      `version: 1\ndefaults:\n  allow: [offce]\n  deny: [quarantine]\n  proxyProtocol: v3\n  healthCheck: true\n${withListener().slice(11)}`,
      [
        'proxy.yaml:3:11: defaults.allow[0]: no acl named "offce" in acls',
        'proxy.yaml:4:10: defaults.deny[0]: no acl named "quarantine" in acls',
        'proxy.yaml:5:18: defaults.proxyProtocol: must be "v1", "v2" or false, not the string "v3"',
        "proxy.yaml:6:16: defaults.healthCheck: must be a map or false, not boolean true",
      ],
    );
    expectErrors(withListener("    schedule: true\n    filter: {module: ./f.mjs, options: 1}\n"), [
      "proxy.yaml:6:15: listeners[0].schedule: must be a map or false, not boolean true",
    ]);
  });
});

test("filter: a listener's replaces the one in defaults; options are any YAML value; the module is loaded later", () => {
  const yaml = (listenerFilter: string) =>
    `version: 1\ndefaults:\n  filter: {module: ./guard.mjs, options: {deny: [FLUSHALL]}}\nlisteners:\n` +
    "  - name: a\n    listen: 127.0.0.1:8080\n    targets: [127.0.0.1:9000]\n" +
    `  - name: b\n    listen: 127.0.0.1:8081\n    targets: [127.0.0.1:9000]\n${listenerFilter}`;
  const [a, b] = expectOk(
    yaml("    filter:\n      module: ./log.mjs\n      options: [1, two, {three: 3}]\n"),
  ).listeners;
  assert.deepEqual(a?.filter, { module: "./guard.mjs", options: { deny: ["FLUSHALL"] }, loaded: undefined });
  assert.deepEqual(b?.filter, { module: "./log.mjs", options: [1, "two", { three: 3 }], loaded: undefined });
  const plain = expectOk(withListener("    filter: {module: ./f.mjs}\n")).listeners[0];
  assert.deepEqual(plain?.filter, { module: "./f.mjs", options: undefined, loaded: undefined });
});

test("filter: a module is required, a string, and the only other key is options", () => {
  expectErrors(withListener("    filter: {options: 1}\n"), [
    "proxy.yaml:6:13: listeners[0].filter.module: is required",
  ]);
  expectErrors(withListener("    filter: {module: 5}\n"), [
    "proxy.yaml:6:22: listeners[0].filter.module: must be a path to an ES module, not number 5",
  ]);
  expectErrors(withListener('    filter: {module: ""}\n'), [
    "proxy.yaml:6:22: listeners[0].filter.module: must not be empty",
  ]);
  expectErrors(withListener("    filter: {module: ./f.mjs, option: 1}\n"), [
    'proxy.yaml:6:31: listeners[0].filter.option: unknown key "option" (did you mean options?)',
  ]);
  expectErrors(withListener("    filter: ./f.mjs\n"), [
    'proxy.yaml:6:13: listeners[0].filter: must be a map or false, not the string "./f.mjs"',
  ]);
});
