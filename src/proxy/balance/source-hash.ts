// The same client address goes to the same target while the targets stay the same.
// Weighted rendezvous hashing: every (client, target) pair gets a score and the highest
// wins, so removing one of N targets moves only the clients that were on it (about 1/N),
// and when the chosen target fails the next-highest is the stable second choice.
import type { Candidate, Strategy } from "./strategy.ts";

export class SourceHash implements Strategy {
  pick<T extends Candidate>(candidates: readonly T[], clientKey: string): T {
    let best = candidates[0] as T;
    let bestScore = Number.NEGATIVE_INFINITY;
    for (const c of candidates) {
      const score = rendezvousScore(clientKey, c.config.key, c.config.weight);
      if (score > bestScore) {
        best = c;
        bestScore = score;
      }
    }
    return best;
  }
}

/** weight / -ln(u) with u uniform in (0, 1): the weighted rendezvous score. */
export function rendezvousScore(client: string, target: string, weight: number): number {
  const u = (hash32(`${client}\u0000${target}`) + 0.5) / 2 ** 32;
  return weight / -Math.log(u);
}

/** FNV-1a, then murmur3's finaliser so that similar keys spread over the whole range. */
function hash32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
