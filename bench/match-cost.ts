// Cost of one admission lookup, in nanoseconds, for a typical rule list and for
// 10,000-entry blocklists: `npx tsx bench/match-cost.ts`. It times the compiled matcher
// the listener uses, over a fixed set of client addresses (bounded: 2,000,000 lookups),
// then the whole decision an accept asks for, hit counter included, with the admission
// test's 10,000-entry deny and allow lists and with no rules.
import { parseConfig } from "../src/config/load.ts";
import type { ListenerConfig, Rule } from "../src/config/runtime.ts";
import { compileRules, parseClientAddress } from "../src/policy/address-match.ts";
import { compilePolicy } from "../src/policy/admission.ts";
import { RuleHits } from "../src/proxy/rule-hits.ts";
import { rule } from "../test/support/rules.ts";
import { allowList, denyList } from "./lib/rule-lists.ts";

const typical = [rule("office", ["10.20.0.0/16", "192.168.20.0/24"]), rule("vpn", ["172.16.0.0/12"])];
const blocklist24 = [
  rule(
    "blocklist",
    Array.from({ length: 10_000 }, (_, i) => `11.${i >> 8}.${i & 255}.0/24`),
  ),
];
const mixed = [
  rule(
    "blocklist",
    Array.from(
      { length: 10_000 },
      (_, i) => `${12 + (i % 200)}.${(i * 7) & 255}.${(i * 13) & 255}.0/${16 + (i % 17)}`,
    ).map((c) => {
      const [address, prefix] = c.split("/");
      const p = Number(prefix);
      const n = (address ?? "").split(".").reduce((a, b) => a * 256 + Number(b), 0);
      const masked = Math.floor(n / 2 ** (32 - p)) * 2 ** (32 - p);
      return `${[24, 16, 8, 0].map((s) => Math.floor(masked / 2 ** s) % 256).join(".")}/${p}`;
    }),
  ),
];
const clients = Array.from({ length: 1000 }, (_, i) =>
  parseClientAddress(`${10 + (i % 50)}.${i & 255}.${(i * 3) & 255}.${i % 251}`),
);

function nsPerLookup(rules: Rule[]): number {
  const matcher = compileRules(rules, "deny");
  let hits = 0;
  const rounds = 2000;
  const start = process.hrtime.bigint();
  for (let r = 0; r < rounds; r++) for (const c of clients) if (c && matcher.match(c)) hits++;
  const ns = Number(process.hrtime.bigint() - start) / (rounds * clients.length);
  if (hits < 0) console.log(hits);
  return ns;
}

for (const [name, rules] of [
  ["3 entries (typical)", typical],
  ["10,000 × /24", blocklist24],
  ["10,000, prefixes /16–/32", mixed],
] as const) {
  nsPerLookup(rules as Rule[]); // warm-up
  console.log(`${name}: ${nsPerLookup(rules as Rule[]).toFixed(0)} ns per lookup`);
}
const parseStart = process.hrtime.bigint();
for (let i = 0; i < 1_000_000; i++) parseClientAddress("::ffff:10.20.30.40");
console.log(
  `parse a client address (IPv4-mapped): ${(Number(process.hrtime.bigint() - parseStart) / 1e6).toFixed(0)} ns`,
);

/** One accept's admission as the listener does it: parse, decide, count the deciding entry. */
function nsPerAdmission(config: ListenerConfig): number {
  const policy = compilePolicy(config);
  const hits = RuleHits.of(config);
  const open = { total: 0, fromClient: 0 };
  const rounds = 1_000_000;
  let admitted = 0;
  const start = process.hrtime.bigint();
  for (let i = 0; i < rounds; i++) {
    const client = parseClientAddress("::ffff:127.0.0.1");
    if (!client) continue;
    const decision = policy.decide(client, 0, open);
    if (decision.entry) hits.record(decision.entry, i);
    if (decision.admit) admitted++;
  }
  const ns = Number(process.hrtime.bigint() - start) / rounds;
  if (admitted !== rounds) throw new Error(`127.0.0.1 admitted ${admitted} times of ${rounds}`);
  return ns;
}

const listenerWith = (lists: { allow?: string[]; deny?: string[] }): ListenerConfig => {
  const loaded = parseConfig(
    JSON.stringify({
      version: 1,
      listeners: [{ name: "l", listen: "127.0.0.1:1", targets: ["127.0.0.1:2"], ...lists }],
    }),
    "bench",
  );
  if (!loaded.ok) throw new Error(loaded.errors.join("\n"));
  return loaded.config.listeners[0] as ListenerConfig;
};
const ruled = listenerWith({ allow: allowList(10_000), deny: denyList(10_000) });
const open = listenerWith({});
for (const [name, config] of [
  ["admission, no rules", open],
  ["admission, 10,000 deny + 10,000 allow, counted", ruled],
] as const) {
  nsPerAdmission(config); // warm-up
  console.log(`${name}: ${nsPerAdmission(config).toFixed(0)} ns per accept`);
}
