import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { ListenerConfig, Rule } from "../../src/config/runtime.ts";
import { compileRules, parseClientAddress } from "../../src/policy/address-match.ts";
import { RuleHits } from "../../src/proxy/rule-hits.ts";
import { rule } from "../support/rules.ts";

const lists = (allow: Rule[], deny: Rule[]) => ({ allow, deny }) as unknown as ListenerConfig;
const cidr = (text: string) => rule(text, [text]);

/** Records one hit for client against the list, as the listener does with a decision's entry. */
function hit(hits: RuleHits, list: Rule[], kind: "allow" | "deny", client: string, at: number): void {
  const entry = compileRules(list, kind).match(parseClientAddress(client) as never);
  assert.ok(entry, `${client} should match`);
  hits.record(entry, at);
}

describe("rule hit counters", () => {
  test("count per entry, with the time of the last hit, and list every entry", () => {
    const allow = [cidr("10.0.0.0/8"), rule("office", ["192.168.0.0/16"])];
    const deny = [cidr("10.9.0.0/16")];
    const hits = RuleHits.of(lists(allow, deny));
    hit(hits, allow, "allow", "10.1.1.1", 1000);
    hit(hits, allow, "allow", "10.1.1.2", 2000);
    hit(hits, deny, "deny", "10.9.1.1", 3000);
    assert.deepEqual(hits.snapshot(), {
      allow: [
        { rule: "10.0.0.0/8", hits: 2, lastHitAt: 2000 },
        { rule: "office", hits: 0, lastHitAt: undefined },
      ],
      deny: [{ rule: "10.9.0.0/16", hits: 1, lastHitAt: 3000 }],
    });
  });

  test("a reload keeps the counts of the entries it keeps, wherever they moved, and only those", () => {
    const allow = [cidr("10.0.0.0/8"), rule("office", ["192.168.0.0/16"]), cidr("10.0.0.0/8")];
    const deny = [cidr("10.9.0.0/16")];
    const before = RuleHits.of(lists(allow, deny));
    hit(before, allow, "allow", "10.1.1.1", 1000);
    hit(before, allow, "allow", "192.168.1.1", 2000);
    hit(before, deny, "deny", "10.9.1.1", 3000);
    // office moves to the front, the duplicate goes, a new entry comes, the deny entry goes to allow.
    const after = RuleHits.of(
      lists([rule("office", ["192.168.0.0/16"]), cidr("10.0.0.0/8"), cidr("10.9.0.0/16")], [cidr("172.16.0.0/12")]),
      before,
    );
    assert.deepEqual(after.snapshot(), {
      allow: [
        { rule: "office", hits: 1, lastHitAt: 2000 },
        { rule: "10.0.0.0/8", hits: 1, lastHitAt: 1000 },
        { rule: "10.9.0.0/16", hits: 0, lastHitAt: undefined },
      ],
      deny: [{ rule: "172.16.0.0/12", hits: 0, lastHitAt: undefined }],
    });
  });
});
