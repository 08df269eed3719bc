// Per-listener hit counters of the allow and deny entries: how many clients each entry
// decided, and when it last did. An accept costs two typed-array writes at the index the
// matcher already knows; the entry's text is only looked at when a reload re-keys them.
import type { ListenerConfig, Rule } from "../config/runtime.ts";
import type { Match, RuleList } from "../policy/address-match.ts";

export interface EntryHits {
  /** The entry as written: an address, a CIDR or an acl name. */
  readonly rule: string;
  readonly hits: number;
  /** Epoch ms of the last hit; undefined when never hit. */
  readonly lastHitAt: number | undefined;
}

export type RuleHitsSnapshot = Record<RuleList, EntryHits[]>;

interface ListCounts {
  readonly rules: readonly string[];
  readonly hits: Float64Array;
  /** Epoch ms; 0 = never. */
  readonly lastHitAt: Float64Array;
}

export class RuleHits {
  private constructor(
    private readonly allow: ListCounts,
    private readonly deny: ListCounts,
  ) {}

  /**
   * Counters for a listener's lists. An entry the previous lists also held (same text,
   * and the same occurrence of that text when it is written twice) keeps its counts, so
   * a reload that keeps an entry keeps its history.
   */
  static of(config: ListenerConfig, previous?: RuleHits): RuleHits {
    return new RuleHits(carry(config.allow, previous?.allow), carry(config.deny, previous?.deny));
  }

  record(entry: Match, nowMs: number): void {
    const counts = entry.list === "allow" ? this.allow : this.deny;
    counts.hits[entry.index] = (counts.hits[entry.index] ?? 0) + 1;
    counts.lastHitAt[entry.index] = nowMs;
  }

  snapshot(): RuleHitsSnapshot {
    return { allow: entries(this.allow), deny: entries(this.deny) };
  }
}

function entries(counts: ListCounts): EntryHits[] {
  return counts.rules.map((rule, i) => {
    const at = counts.lastHitAt[i] ?? 0;
    return { rule, hits: counts.hits[i] ?? 0, lastHitAt: at === 0 ? undefined : at };
  });
}

function carry(rules: readonly Rule[], previous: ListCounts | undefined): ListCounts {
  const texts = rules.map((r) => r.source);
  const counts: ListCounts = {
    rules: texts,
    hits: new Float64Array(texts.length),
    lastHitAt: new Float64Array(texts.length),
  };
  if (!previous) return counts;
  const old = new Map(occurrences(previous.rules).map((key, i) => [key, i]));
  occurrences(texts).forEach((key, i) => {
    const j = old.get(key);
    if (j === undefined) return;
    counts.hits[i] = previous.hits[j] ?? 0;
    counts.lastHitAt[i] = previous.lastHitAt[j] ?? 0;
  });
  return counts;
}

/** "10.0.0.0/8", then "10.0.0.0/8#2" for its second occurrence in the list, and so on. */
function occurrences(texts: readonly string[]): string[] {
  const seen = new Map<string, number>();
  return texts.map((text) => {
    const n = (seen.get(text) ?? 0) + 1;
    seen.set(text, n);
    return n === 1 ? text : `${text}#${n}`;
  });
}
