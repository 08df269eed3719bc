// Target selection. A Balancer yields, for one new bridge, the targets to try in order;
// strategies differ only in that order.
import type { TargetConfig } from "../config/runtime.ts";

export interface Balancer {
  /** Next target to try, never one in `tried`; undefined once all have been tried. */
  next(tried: ReadonlySet<TargetConfig>): TargetConfig | undefined;
}

/**
 * Smooth weighted round-robin, as nginx does it: weights 5,1,1 give a a b a c a a,
 * spreading the heavy target's turns instead of bunching them.
 */
export class RoundRobin implements Balancer {
  private readonly current: number[];

  constructor(private readonly targets: readonly TargetConfig[]) {
    this.current = targets.map(() => 0);
  }

  next(tried: ReadonlySet<TargetConfig>): TargetConfig | undefined {
    let best = -1;
    let total = 0;
    for (let i = 0; i < this.targets.length; i++) {
      const target = this.targets[i] as TargetConfig;
      if (tried.has(target)) continue;
      total += target.weight;
      this.current[i] = (this.current[i] ?? 0) + target.weight;
      if (best < 0 || (this.current[i] ?? 0) > (this.current[best] ?? 0)) best = i;
    }
    if (best < 0) return undefined;
    this.current[best] = (this.current[best] ?? 0) - total;
    return this.targets[best];
  }
}
