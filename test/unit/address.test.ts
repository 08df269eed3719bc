// Properties of the strict address and duration parsers (fast-check): what is accepted is
// exactly the canonical form, and what is refused says why.
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import ipaddr from "ipaddr.js";
import {
  formatHostPort,
  parseCidr,
  parseIPv4,
  parseIPv6,
  parseListenAddress,
  parseTargetAddress,
} from "../../src/config/address.ts";
import { formatDuration, MAX_DURATION_MS, parseDuration } from "../../src/config/duration.ts";

const octet = fc.integer({ min: 0, max: 255 });
const quad = fc.tuple(octet, octet, octet, octet);
const port = fc.integer({ min: 1, max: 65535 });
/** IPv6 in every form but "::a.b.c.d", which is refused (tested on its own). */
const ipV6 = fc.ipV6().filter((text) => !/^::(?:[0-9]+\.){3}[0-9]+$/.test(text));

function refused(result: { ok: boolean; error?: string }, fragment: string | RegExp): void {
  assert.equal(result.ok, false, "accepted");
  const error = (result as { error: string }).error;
  if (typeof fragment === "string") assert.ok(error.includes(fragment), error);
  else assert.match(error, fragment);
}

/** The 32-bit network of a quad under a prefix, by plain arithmetic (the oracle). */
function maskV4(parts: readonly number[], prefix: number): string {
  const n = parts.reduce((acc, p) => acc * 256 + p, 0);
  const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  const net = (n & mask) >>> 0;
  return [net >>> 24, (net >>> 16) & 255, (net >>> 8) & 255, net & 255].join(".");
}

// --- IPv4 ---------------------------------------------------------------------------

test("IPv4: every canonical dotted quad is accepted and round-trips", () => {
  fc.assert(
    fc.property(quad, (parts) => {
      const text = parts.join(".");
      const parsed = parseIPv4(text);
      assert.ok(parsed.ok);
      assert.equal(parsed.value.toString(), text);
    }),
  );
});

test("IPv4: a leading zero on any part is refused as possibly octal", () => {
  fc.assert(
    fc.property(quad, fc.nat(3), fc.integer({ min: 1, max: 2 }), (parts, index, zeros) => {
      const padded = parts.map((p, i) => (i === index ? "0".repeat(zeros) + String(p) : String(p)));
      const text = padded.join(".");
      refused(parseIPv4(text), `"${padded[index]}" has a leading zero, which some tools read as octal`);
    }),
  );
});

test("IPv4: fewer than four parts (127.1, 10.1.2) are refused", () => {
  const shortForm = fc.array(fc.integer({ min: 0, max: 16_777_215 }), { minLength: 1, maxLength: 3 });
  fc.assert(
    fc.property(shortForm, (parts) => {
      const text = parts.join(".");
      refused(parseIPv4(text), `"${text}" is not an IPv4 address (it has ${parts.length} part`);
    }),
  );
});

test("IPv4: a hex part is refused", () => {
  fc.assert(
    fc.property(quad, fc.nat(3), (parts, index) => {
      const hex = `0x${(parts[index] ?? 0).toString(16)}`;
      const text = parts.map((p, i) => (i === index ? hex : String(p))).join(".");
      refused(parseIPv4(text), `"${hex}" is not a decimal number`);
    }),
  );
});

test("IPv4: a part above 255 is refused", () => {
  fc.assert(
    fc.property(quad, fc.nat(3), fc.integer({ min: 256, max: 999 }), (parts, index, big) => {
      const text = parts.map((p, i) => (i === index ? big : p)).join(".");
      refused(parseIPv4(text), `"${big}" is more than 255`);
    }),
  );
});

test("IPv4: of fast-check's extended forms (octal, hex, short), only the canonical are accepted", () => {
  fc.assert(
    fc.property(fc.ipV4Extended(), (text) => {
      const parts = text.split(".");
      const canonical = parts.length === 4 && parts.every((p) => /^[0-9]+$/.test(p) && String(Number(p)) === p);
      assert.equal(parseIPv4(text).ok, canonical, text);
    }),
  );
});

test("IPv4: a non-canonical address is refused in listen, targets and CIDRs alike", () => {
  fc.assert(
    fc.property(
      fc.ipV4Extended().filter((text) => !parseIPv4(text).ok),
      port,
      (text, p) => {
        refused(parseListenAddress(`${text}:${p}`), "is not an IPv4 address");
        refused(parseTargetAddress(`${text}:${p}`), "is not an IPv4 address");
        refused(parseCidr(text), "is not an IPv4 address");
        refused(parseCidr(`${text}/32`), "is not an IPv4 address");
      },
    ),
  );
});

test("IPv4: the classic ambiguous forms, one by one", () => {
  for (const [text, why] of [
    ["010.0.0.1", '"010" has a leading zero, which some tools read as octal'],
    ["127.1", "it has 2 parts; write all four, a.b.c.d"],
    ["0x7f.0.0.1", '"0x7f" is not a decimal number'],
    ["2130706433", "it has 1 part; write all four, a.b.c.d"],
    ["1.2.3.4.5", "it has 5 parts; write all four, a.b.c.d"],
    ["1..3.4", "a part is empty"],
  ] as const) {
    assert.deepEqual(parseIPv4(text), { ok: false, error: `"${text}" is not an IPv4 address (${why})` });
  }
});

// --- CIDR ---------------------------------------------------------------------------

test("CIDR: any IPv4 address masked to its prefix is accepted and round-trips", () => {
  fc.assert(
    fc.property(quad, fc.integer({ min: 0, max: 32 }), (parts, prefix) => {
      const text = `${maskV4(parts, prefix)}/${prefix}`;
      const parsed = parseCidr(text);
      assert.ok(parsed.ok, text);
      assert.equal(parsed.value.text, text);
      assert.equal(parsed.value.prefix, prefix);
      assert.equal(parsed.value.family, 4);
    }),
  );
});

test("CIDR: an IPv4 address with host bits set is refused, naming the masked network", () => {
  fc.assert(
    fc.property(quad, fc.integer({ min: 0, max: 31 }), (parts, prefix) => {
      const address = parts.join(".");
      const network = maskV4(parts, prefix);
      fc.pre(network !== address);
      const text = `${address}/${prefix}`;
      assert.deepEqual(parseCidr(text), {
        ok: false,
        error: `"${text}" has host bits set (did you mean ${network}/${prefix}?)`,
      });
    }),
  );
});

test('CIDR: "10.0.0.5/8" names 10.0.0.0/8', () => {
  assert.deepEqual(parseCidr("10.0.0.5/8"), {
    ok: false,
    error: '"10.0.0.5/8" has host bits set (did you mean 10.0.0.0/8?)',
  });
});

const v6Bytes = fc.uint8Array({ minLength: 16, maxLength: 16 });

function maskBytes(bytes: Uint8Array, prefix: number): number[] {
  return [...bytes].map((b, i) => {
    const keep = Math.max(0, Math.min(8, prefix - i * 8));
    return b & ((0xff << (8 - keep)) & 0xff);
  });
}

test("CIDR: any IPv6 address masked to its prefix is accepted and round-trips", () => {
  fc.assert(
    fc.property(v6Bytes, fc.integer({ min: 0, max: 128 }), (bytes, prefix) => {
      const network = ipaddr.fromByteArray(maskBytes(bytes, prefix)).toString();
      const text = `${network}/${prefix}`;
      const parsed = parseCidr(text);
      assert.ok(parsed.ok, text);
      assert.equal(parsed.value.text, text);
      assert.equal(parsed.value.family, 6);
    }),
  );
});

test("CIDR: an IPv6 address with host bits set is refused, naming the masked network", () => {
  fc.assert(
    fc.property(v6Bytes, fc.integer({ min: 0, max: 127 }), (bytes, prefix) => {
      const address = ipaddr.fromByteArray([...bytes]).toString();
      const network = ipaddr.fromByteArray(maskBytes(bytes, prefix)).toString();
      fc.pre(network !== address);
      const text = `${address}/${prefix}`;
      assert.deepEqual(parseCidr(text), {
        ok: false,
        error: `"${text}" has host bits set (did you mean ${network}/${prefix}?)`,
      });
    }),
  );
});

test("CIDR: a single address is its own /32 or /128", () => {
  fc.assert(
    fc.property(quad, (parts) => {
      const parsed = parseCidr(parts.join("."));
      assert.ok(parsed.ok);
      assert.equal(parsed.value.text, `${parts.join(".")}/32`);
    }),
  );
  const v6 = parseCidr("2001:DB8::1");
  assert.ok(v6.ok);
  assert.equal(v6.value.text, "2001:db8::1/128");
});

test("CIDR: prefix lengths out of range or written oddly are refused", () => {
  for (const [text, max] of [
    ["10.0.0.0/33", 32],
    ["10.0.0.0/08", 32],
    ["10.0.0.0/", 32],
    ["10.0.0.0/-1", 32],
    ["2001:db8::/129", 128],
  ] as const) {
    assert.deepEqual(parseCidr(text), {
      ok: false,
      error: `"${text}": prefix length must be a number from 0 to ${max}`,
    });
  }
});

// --- IPv6 ---------------------------------------------------------------------------

test("IPv6: every form fast-check generates is accepted and canonicalised", () => {
  fc.assert(
    fc.property(ipV6, (text) => {
      const parsed = parseIPv6(text);
      assert.ok(parsed.ok, text);
      assert.equal(parsed.value.toString(), ipaddr.IPv6.parse(text).toString());
    }),
  );
});

test("IPv6: the full, zero-padded and compressed forms of one address are the same address", () => {
  fc.assert(
    fc.property(v6Bytes, (bytes) => {
      const address = ipaddr.fromByteArray([...bytes]) as ipaddr.IPv6;
      const canonical = address.toString();
      const padded = address.parts.map((part) => part.toString(16).padStart(4, "0")).join(":");
      for (const form of [address.toNormalizedString(), padded, padded.toUpperCase(), canonical]) {
        const parsed = parseIPv6(form);
        assert.ok(parsed.ok, form);
        assert.equal(parsed.value.toString(), canonical);
      }
    }),
  );
});

test("IPv6: [address]:port is accepted by listen and targets, and round-trips through formatHostPort", () => {
  fc.assert(
    fc.property(ipV6, port, (ip, p) => {
      for (const parse of [parseListenAddress, parseTargetAddress]) {
        const parsed = parse(`[${ip}]:${p}`);
        assert.ok(parsed.ok, ip);
        // An IPv4-mapped address is its IPv4 form (tested below).
        assert.equal(parsed.value.family, ipaddr.IPv6.parse(ip).isIPv4MappedAddress() ? 4 : 6);
        assert.equal(parsed.value.port, p);
        assert.deepEqual(parse(formatHostPort(parsed.value)), parsed);
      }
    }),
  );
});

test("IPv6: an IPv4-mapped listen or target address is its IPv4 form, so equal addresses compare equal", () => {
  fc.assert(
    fc.property(quad, port, (parts, p) => {
      const v4 = parts.join(".");
      const hex = `${((parts[0] << 8) | parts[1]).toString(16)}:${((parts[2] << 8) | parts[3]).toString(16)}`;
      for (const parse of [parseListenAddress, parseTargetAddress]) {
        for (const mapped of [`::ffff:${v4}`, `::FFFF:${hex}`, `0:0:0:0:0:ffff:${v4}`]) {
          assert.deepEqual(parse(`[${mapped}]:${p}`), parse(`${v4}:${p}`), mapped);
        }
      }
    }),
  );
  // Other IPv6 forms that carry an IPv4 address are addresses of their own; the deprecated
  // IPv4-compatible "::a.b.c.d" means one thing to ipaddr.js and another to the kernel.
  for (const parse of [parseListenAddress, parseTargetAddress]) {
    assert.deepEqual(parse("[::127.0.0.1]:80"), {
      ok: false,
      error:
        '"::127.0.0.1" is a deprecated IPv4-compatible address that tools read differently: write ::ffff:127.0.0.1 for the IPv4 address, or ::7f00:1',
    });
  }
  refused(parseCidr("::10.0.0.0/104"), "deprecated IPv4-compatible");
  assert.deepEqual(parseListenAddress("[64:ff9b::10.0.0.1]:80"), {
    ok: true,
    value: { host: "64:ff9b::a00:1", port: 80, family: 6 },
  });
});

test("IPv6: without brackets in host:port it is refused with the bracketed form as the hint", () => {
  fc.assert(
    fc.property(fc.ipV6(), port, (ip, p) => {
      const text = `${ip}:${p}`;
      const error = `"${text}": write IPv6 addresses in brackets, "[${ip}]:port"`;
      assert.deepEqual(parseListenAddress(text), { ok: false, error });
      assert.deepEqual(parseTargetAddress(text), { ok: false, error });
    }),
  );
});

test("IPv6: zone ids are refused everywhere", () => {
  const zone = fc.stringMatching(/^[a-z][a-z0-9]{0,7}$/);
  fc.assert(
    fc.property(fc.ipV6(), zone, port, (ip, z, p) => {
      const scoped = `${ip}%${z}`;
      const error = `"${scoped}": IPv6 zone ids are not supported`;
      assert.deepEqual(parseIPv6(scoped), { ok: false, error });
      assert.deepEqual(parseListenAddress(`[${scoped}]:${p}`), { ok: false, error });
      assert.deepEqual(parseTargetAddress(`[${scoped}]:${p}`), { ok: false, error });
      assert.deepEqual(parseCidr(scoped), { ok: false, error });
    }),
  );
});

test("IPv6: an embedded IPv4 part obeys the IPv4 rules", () => {
  assert.ok(parseIPv6("::ffff:10.1.2.3").ok);
  assert.deepEqual(parseIPv6("::ffff:010.1.2.3"), {
    ok: false,
    error:
      '"::ffff:010.1.2.3": "010.1.2.3" is not an IPv4 address ("010" has a leading zero, which some tools read as octal)',
  });
});

// --- host:port ----------------------------------------------------------------------

test("ports: 1-65535 are accepted; 0, 65536 and non-numbers are refused", () => {
  fc.assert(
    fc.property(quad, port, (parts, p) => {
      const parsed = parseListenAddress(`${parts.join(".")}:${p}`);
      assert.ok(parsed.ok);
      assert.equal(parsed.value.port, p);
    }),
  );
  fc.assert(
    fc.property(fc.oneof(fc.constant(0), fc.integer({ min: 65536, max: 99999 })), (p) => {
      const text = `127.0.0.1:${p}`;
      const error = `"${text}": port must be from 1 to 65535`;
      assert.deepEqual(parseListenAddress(text), { ok: false, error });
      assert.deepEqual(parseTargetAddress(text), { ok: false, error });
    }),
  );
  for (const text of ["127.0.0.1:", "127.0.0.1:http", "127.0.0.1:-1", "127.0.0.1:123456"]) {
    assert.deepEqual(parseTargetAddress(text), {
      ok: false,
      error: `"${text}": port must be a number from 1 to 65535`,
    });
  }
});

test('listen: ":port" means all interfaces; host names are refused', () => {
  assert.deepEqual(parseListenAddress(":2222"), { ok: true, value: { host: "", port: 2222, family: undefined } });
  assert.deepEqual(parseListenAddress("localhost:80"), {
    ok: false,
    error: '"localhost:80": a listen address must be an IP address or ":port", not a host name',
  });
  assert.deepEqual(parseListenAddress("127.0.0.1"), { ok: false, error: '"127.0.0.1" must be "host:port"' });
});

test("targets: host names are accepted (lower-cased), numeric-looking names must be IPv4", () => {
  const label = fc.stringMatching(/^[a-z][a-z0-9_-]{0,10}[a-z0-9]$/);
  fc.assert(
    fc.property(fc.array(label, { minLength: 1, maxLength: 4 }), port, (labels, p) => {
      const host = labels.join(".");
      const parsed = parseTargetAddress(`${host.toUpperCase()}:${p}`);
      assert.deepEqual(parsed, { ok: true, value: { host, port: p, family: undefined } });
    }),
  );
  assert.deepEqual(parseTargetAddress("db.internal:5432"), {
    ok: true,
    value: { host: "db.internal", port: 5432, family: undefined },
  });
  // "1a.de" is a name: its last label is not a number.
  assert.ok(parseTargetAddress("1a.de:80").ok);
  assert.deepEqual(parseTargetAddress("-bad-:1"), {
    ok: false,
    error: '"-bad-:1": "-bad-" is neither an IP address nor a host name',
  });
  assert.deepEqual(parseTargetAddress(":80"), { ok: false, error: '":80": a target needs a host before the port' });
});

// --- durations ----------------------------------------------------------------------

const UNITS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
const unit = fc.constantFrom(...(Object.keys(UNITS) as (keyof typeof UNITS)[]));

test("durations: every whole number of milliseconds round-trips through formatDuration", () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: MAX_DURATION_MS }), (ms) => {
      assert.deepEqual(parseDuration(formatDuration(ms)), { ok: true, value: ms });
    }),
  );
});

test("durations: n<unit> parses to n times the unit and formats back to the same duration", () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 100_000 }), unit, (n, u) => {
      const ms = n * UNITS[u];
      fc.pre(ms <= MAX_DURATION_MS);
      assert.deepEqual(parseDuration(`${n}${u}`), { ok: true, value: ms });
      const formatted = formatDuration(ms);
      assert.match(formatted, /^[1-9][0-9]*(ms|s|m|h|d)$/);
      assert.deepEqual(parseDuration(formatted), { ok: true, value: ms });
    }),
  );
});

test("durations: above the timer limit (about 24.8 days) they are refused", () => {
  fc.assert(
    fc.property(fc.integer({ min: 25, max: 1_000_000 }), (days) => {
      assert.deepEqual(parseDuration(`${days}d`), { ok: false, error: `"${days}d" is too long (at most 24d)` });
    }),
  );
  assert.ok(parseDuration("24d").ok);
});

test("durations: zero, bare numbers, fractions, signs and other units are refused", () => {
  for (const text of ["0s", "0ms"]) {
    assert.deepEqual(parseDuration(text), { ok: false, error: `"${text}": a duration must be more than zero` });
  }
  for (const text of ["5", "5sec", "1.5s", "-1s", " 5s", "5 s", "5S", "1w", "", "s"]) {
    assert.deepEqual(parseDuration(text), {
      ok: false,
      error: `"${text}" is not a duration (e.g. 500ms, 5s, 15m, 8h, 1d)`,
    });
  }
});
