// A balancing strategy chooses one target among the candidates for a new bridge.
// Candidates are the targets that are up and not yet tried for this bridge, so a
// strategy never has to think about health or failover.
import type { TargetConfig } from "../../config/runtime.ts";

/** What a strategy may look at: the target's config and its open bridges. */
export interface Candidate {
  readonly config: TargetConfig;
  readonly open: number;
}

export interface Strategy {
  /** candidates is never empty. clientKey is the client's address (for source-hash). */
  pick<T extends Candidate>(candidates: readonly T[], clientKey: string): T;
}
