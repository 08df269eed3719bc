// Fewest open bridges relative to weight; among equals, take turns so that a burst of
// new clients to idle targets is spread rather than piled onto the first.
import type { Candidate, Strategy } from "./strategy.ts";

export class LeastConnections implements Strategy {
  private turn = 0;

  pick<T extends Candidate>(candidates: readonly T[]): T {
    let lowest = Number.POSITIVE_INFINITY;
    const tied: T[] = [];
    for (const c of candidates) {
      const load = c.open / c.config.weight;
      if (load < lowest) {
        lowest = load;
        tied.length = 0;
      }
      if (load === lowest) tied.push(c);
    }
    this.turn = (this.turn + 1) % 1_000_000_007;
    return tied[this.turn % tied.length] as T;
  }
}
