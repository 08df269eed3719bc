// Blocklist-sized rule lists for the admission test, the same on every run (a fixed
// seed): a mix of IPv4 hosts, /24s and /16s and some IPv6 prefixes, none inside
// 127.0.0.0/8. The allow list ends with 127.0.0.1/32, so a matcher that scans entries in
// order does the whole list before it admits the bench's client.

function generator(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    // xorshift32
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state;
  };
}

export function ruleList(count: number, seed: number): string[] {
  const next = generator(seed);
  const seen = new Set<string>();
  while (seen.size < count) {
    const kind = next() % 10;
    let entry: string;
    if (kind === 9) {
      const word = () => (next() % 0xffff).toString(16);
      entry = next() % 2 ? `2001:db8:${word()}::/48` : `2001:db8:${word()}:${word()}::${word()}/128`;
    } else {
      let a = 1 + (next() % 223);
      if (a === 127) a = 128;
      const b = next() % 256;
      const c = next() % 256;
      const d = next() % 256;
      entry = kind < 4 ? `${a}.${b}.${c}.${d}/32` : kind < 8 ? `${a}.${b}.${c}.0/24` : `${a}.${b}.0.0/16`;
    }
    seen.add(entry);
  }
  return [...seen];
}

export const denyList = (count: number): string[] => ruleList(count, 0xdecaf);
export const allowList = (count: number): string[] => [...ruleList(count - 1, 0xc0ffee), "127.0.0.1/32"];
