// Which route a TLS server name takes: each route lists exact names and "*." wildcards
// that stand for exactly one label; names compare case-insensitively; among routes that
// match, the first wins. Pure: compiled once per config load, one or two map probes a lookup.

/** Finds the index of the first route whose names match; undefined when none does. */
export type SniMatcher = (serverName: string) => number | undefined;

export function compileSniRoutes(routes: readonly (readonly string[])[]): SniMatcher {
  const exact = new Map<string, number>();
  const wildcard = new Map<string, number>();
  routes.forEach((names, index) => {
    for (const name of names) {
      const lower = name.toLowerCase();
      const [map, key] = lower.startsWith("*.") ? [wildcard, lower.slice(2)] : [exact, lower];
      if (!map.has(key)) map.set(key, index);
    }
  });
  return (serverName) => {
    // A fully qualified name's trailing dot is no part of the name (clients should not send it).
    const name = serverName.toLowerCase().replace(/\.$/, "");
    const byName = exact.get(name);
    const dot = name.indexOf(".");
    const byParent = dot > 0 ? wildcard.get(name.slice(dot + 1)) : undefined;
    if (byName === undefined) return byParent;
    return byParent === undefined ? byName : Math.min(byName, byParent);
  };
}
