// Smooth weighted round-robin, as nginx does it: weights 5,1,1 give a a b a c a a,
// spreading the heavy target's turns instead of bunching them.
import type { Candidate, Strategy } from "./strategy.ts";

export class RoundRobin implements Strategy {
  /** Current weight per target key; survives changes to the candidate set. */
  private readonly current = new Map<string, number>();

  pick<T extends Candidate>(candidates: readonly T[]): T {
    let best = candidates[0] as T;
    let bestWeight = Number.NEGATIVE_INFINITY;
    let total = 0;
    for (const c of candidates) {
      const weight = (this.current.get(c.config.key) ?? 0) + c.config.weight;
      this.current.set(c.config.key, weight);
      total += c.config.weight;
      if (weight > bestWeight) {
        best = c;
        bestWeight = weight;
      }
    }
    this.current.set(best.config.key, bestWeight - total);
    return best;
  }
}
