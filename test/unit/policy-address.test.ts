import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import ipaddr from "ipaddr.js";
import type { Rule } from "../../src/config/runtime.ts";
import { compileRules, type Match, parseClientAddress } from "../../src/policy/address-match.ts";
import { rule } from "../support/rules.ts";

const v4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((p) => p.join("."));
const v6 = fc
  .array(fc.nat(0xffff), { minLength: 8, maxLength: 8 })
  .map((p) => ipaddr.fromByteArray(partsToBytes(p)).toString());

function partsToBytes(parts: number[]): number[] {
  return parts.flatMap((p) => [p >> 8, p & 0xff]);
}

/** A CIDR from any address and prefix: mask the address so it is valid. */
const cidrOf = (address: string, prefix: number): string => {
  const range = ipaddr.parseCIDR(`${address}/${prefix}`);
  const network = ipaddr.IPv4.isValid(address)
    ? ipaddr.IPv4.networkAddressFromCIDR(`${address}/${prefix}`)
    : ipaddr.IPv6.networkAddressFromCIDR(`${address}/${prefix}`);
  return `${network.toString()}/${range[1]}`;
};
const v4Cidr = fc.tuple(v4, fc.nat(32)).map(([a, p]) => cidrOf(a, p));
const v6Cidr = fc.tuple(v6, fc.nat(128)).map(([a, p]) => cidrOf(a, p));

/**
 * The reference: every range of every entry, with ipaddr.js doing the matching; the longest
 * prefix wins, the first written among equals. An entry written IPv4-mapped
 * (::ffff:a.b.c.d/96 or longer) names IPv4 clients, as the matcher documents.
 */
function naive(rules: Rule[], client: string): string | undefined {
  const address = ipaddr.process(client);
  let best: { found: string; prefix: number } | undefined;
  rules.forEach((r, index) => {
    for (const c of r.cidrs) {
      let range: ipaddr.IPv4 | ipaddr.IPv6 = c.address;
      let prefix = c.prefix;
      if (range.kind() === "ipv6" && (range as ipaddr.IPv6).isIPv4MappedAddress() && prefix >= 96) {
        range = (range as ipaddr.IPv6).toIPv4Address();
        prefix -= 96;
      }
      const matches = range.kind() === address.kind() && address.match(range as never, prefix);
      if (matches && (!best || prefix > best.prefix)) best = { found: `${r.source}|${index}|${c.text}`, prefix };
    }
  });
  return best?.found;
}

const shown = (m: Match | undefined) => m && `${m.rule}|${m.index}|${m.cidr}`;

const mappedCidr = fc.tuple(v4, fc.integer({ min: 96, max: 128 })).map(([a, p]) => cidrOf(`::ffff:${a}`, p));

describe("compiled address matcher", () => {
  test("agrees with a naive loop over every entry, IPv4 and IPv6 (mapped clients included)", () => {
    const rules = fc.array(
      fc.tuple(
        fc.constantFrom("office", "lab", "vpn", ""),
        fc.array(fc.oneof(v4Cidr, v6Cidr, mappedCidr), { minLength: 1, maxLength: 4 }),
      ),
      { maxLength: 8 },
    );
    const client = fc.oneof(
      v4,
      v6,
      v4.map((a) => `::ffff:${a}`),
    );
    fc.assert(
      fc.property(rules, client, (spec, remote) => {
        const list = spec.map(([name, cidrs]) => rule(name === "" ? (cidrs[0] as string) : name, cidrs));
        const parsed = parseClientAddress(remote);
        assert.ok(parsed);
        const found = compileRules(list, "allow").match(parsed);
        assert.equal(shown(found), naive(list, remote));
      }),
      { numRuns: 2000 },
    );
  });

  test("matches clients near the edges of the ranges they are drawn from", () => {
    // Random rules rarely contain random clients: draw the client from inside or just outside a rule.
    fc.assert(
      fc.property(
        fc.array(v4Cidr, { minLength: 1, maxLength: 6 }),
        fc.nat(5),
        fc.integer({ min: -1, max: 1 }),
        (cidrs, pick, edge) => {
          const list = [rule("list", cidrs)];
          const [base, prefix] = ipaddr.IPv4.parseCIDR(cidrs[pick % cidrs.length] as string);
          const first = base.toByteArray().reduce((n, b) => n * 256 + b, 0);
          const size = 2 ** (32 - prefix);
          const probe = edge < 0 ? first - 1 : edge > 0 ? first + size : first + size - 1;
          if (probe < 0 || probe > 0xffffffff) return;
          const remote = [24, 16, 8, 0].map((s) => Math.floor(probe / 2 ** s) % 256).join(".");
          const found = compileRules(list, "allow").match(parseClientAddress(remote) as never);
          assert.equal(shown(found), naive(list, remote));
        },
      ),
      { numRuns: 2000 },
    );
  });

  test("an IPv4-mapped client matches IPv4 entries; IPv4 rules never match IPv6 clients", () => {
    const m = compileRules([rule("ten", ["10.0.0.0/8"]), rule("v6", ["2001:db8::/32"])], "deny");
    assert.deepEqual(m.match(parseClientAddress("::ffff:10.1.2.3") as never), {
      list: "deny",
      rule: "ten",
      index: 0,
      cidr: "10.0.0.0/8",
    });
    assert.equal(m.match(parseClientAddress("::a01:203") as never), undefined);
    assert.equal(m.match(parseClientAddress("::ffff:11.1.2.3") as never), undefined);
    assert.deepEqual(m.match(parseClientAddress("2001:db8::1") as never), {
      list: "deny",
      rule: "v6",
      index: 1,
      cidr: "2001:db8::/32",
    });
    const all4 = compileRules([rule("0.0.0.0/0", ["0.0.0.0/0"])], "allow");
    assert.equal(all4.match(parseClientAddress("::1") as never), undefined);
    assert.ok(all4.match(parseClientAddress("127.0.0.1") as never));
  });

  test("reports the most specific matching entry, wherever it is in the list", () => {
    const m = compileRules(
      [
        rule("wide", ["10.0.0.0/8"]),
        rule("office", ["192.168.0.0/16", "10.1.2.0/24"]),
        rule("10.1.0.0/16", ["10.1.0.0/16"]),
        rule("::ffff:10.1.2.3", ["::ffff:10.1.2.3/128"]),
      ],
      "deny",
    );
    const at = (client: string) => shown(m.match(parseClientAddress(client) as never));
    assert.equal(at("10.2.2.3"), "wide|0|10.0.0.0/8");
    assert.equal(at("10.1.9.9"), "10.1.0.0/16|2|10.1.0.0/16");
    // An acl counts as the range inside it that matched: here its /24 beats the /16.
    assert.equal(at("10.1.2.4"), "office|1|10.1.2.0/24");
    // A mapped entry is the IPv4 /32 it stands for, the most specific of all.
    assert.equal(at("10.1.2.3"), "::ffff:10.1.2.3|3|::ffff:a01:203/128");
  });

  test("between entries of the same range, the first written wins", () => {
    const m = compileRules(
      [rule("a", ["10.0.0.0/8"]), rule("b", ["10.0.0.0/8"]), rule("10.0.0.0/8", ["10.0.0.0/8"])],
      "allow",
    );
    assert.equal(shown(m.match(parseClientAddress("10.9.9.9") as never)), "a|0|10.0.0.0/8");
  });

  test("10,000 entries compile and still answer exactly", () => {
    const cidrs = Array.from({ length: 10_000 }, (_, i) => `${10 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}.0/24`);
    const m = compileRules([rule("blocklist", cidrs)], "deny");
    assert.equal(m.size, 10_000);
    assert.ok(m.match(parseClientAddress("10.39.15.77") as never));
    assert.equal(m.match(parseClientAddress("11.0.0.1") as never), undefined);
  });
});
