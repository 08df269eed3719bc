// Weighted random with the "power of two choices": draw two targets by weight and take
// the one with fewer open bridges per weight. As even as least-connections under load,
// without its herd behaviour when several proxies share the same targets.
import type { Candidate, Strategy } from "./strategy.ts";

export class Random implements Strategy {
  constructor(private readonly random: () => number = Math.random) {}

  pick<T extends Candidate>(candidates: readonly T[]): T {
    const a = this.draw(candidates);
    const b = this.draw(candidates);
    return b.open / b.config.weight < a.open / a.config.weight ? b : a;
  }

  private draw<T extends Candidate>(candidates: readonly T[]): T {
    let total = 0;
    for (const c of candidates) total += c.config.weight;
    let point = this.random() * total;
    for (const c of candidates) {
      point -= c.config.weight;
      if (point < 0) return c;
    }
    return candidates[candidates.length - 1] as T;
  }
}
