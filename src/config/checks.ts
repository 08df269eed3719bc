// Checks that look across values: names, address clashes, acl references. They run on
// whatever parts of the file are well-formed, even when other parts (or other keys of the
// same listener) failed the schema, so one pass reports every error.
import { formatHostPort, type HostPort, type Parsed, parseListenAddress, parseTargetAddress } from "./address.ts";
import { listenOverlaps } from "./overlap.ts";
import { ACL_NAME, isAclReference, listenerSchema } from "./schema.ts";
import { closest } from "./suggest.ts";
import type { SourceIssue } from "./yaml-source.ts";

type Path = (string | number)[];

function isMap(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

function listAt(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

/**
 * A listener's parts that pass the schema on their own. A listener with an unknown key or
 * a bad timeout fails the schema as a whole, but its name, address, targets and rule lists
 * can still clash or name a missing acl, and those errors belong in the same report.
 */
interface ListenerParts {
  readonly name: string | undefined;
  readonly listen: HostPort | undefined;
  /** The address as written, for messages where its canonical form reads differently. */
  readonly listenText: string;
  /** By index in targets; undefined for an entry whose address does not parse. */
  readonly targets: readonly (HostPort | undefined)[];
  readonly allow: unknown;
  readonly deny: unknown;
  readonly routes: unknown;
  readonly acceptProxyFrom: unknown;
}

/** A target list's addresses by index; undefined for an entry whose address does not parse. */
function targetAddresses(list: unknown): (HostPort | undefined)[] {
  return listAt(list).map((t) => {
    const address = isMap(t) ? t.address : t;
    return typeof address === "string" ? parsedOrUndefined(parseTargetAddress(address)) : undefined;
  });
}

function listenerParts(data: unknown): ListenerParts[] {
  if (!isMap(data)) return [];
  return listAt(data.listeners).map((item) => {
    const raw = isMap(item) ? item : {};
    const name = listenerSchema.shape.name.safeParse(raw.name);
    return {
      name: name.success ? name.data : undefined,
      listen: typeof raw.listen === "string" ? parsedOrUndefined(parseListenAddress(raw.listen)) : undefined,
      listenText: String(raw.listen),
      targets: targetAddresses(raw.targets),
      allow: raw.allow,
      deny: raw.deny,
      routes: raw.routes,
      acceptProxyFrom: isMap(raw.acceptProxy) ? raw.acceptProxy.from : undefined,
    };
  });
}

function parsedOrUndefined<T>(parsed: Parsed<T>): T | undefined {
  return parsed.ok ? parsed.value : undefined;
}

/** acl names the file defines; undefined when `acls` is not a map, so references cannot be judged. */
function aclNames(data: unknown): ReadonlySet<string> | undefined {
  if (!isMap(data) || data.acls === undefined) return new Set();
  return isMap(data.acls) ? new Set(Object.keys(data.acls)) : undefined;
}

export function crossFieldIssues(data: unknown): SourceIssue[] {
  const listeners = listenerParts(data);
  const acls = aclNames(data);
  const issues: SourceIssue[] = [
    ...nameIssues(listeners),
    ...addressIssues(listeners),
    ...adminAddressIssues(data, listeners),
    ...requiredTargetIssues(data),
    ...listeners.flatMap((l, index) => targetIssues(l, index)),
    ...protoAclIssues(data),
  ];
  if (acls) {
    listeners.forEach((l, index) => {
      for (const list of ["allow", "deny"] as const) {
        issues.push(...aclReferenceIssues(l[list], ["listeners", index, list], acls));
      }
      issues.push(...aclReferenceIssues(l.acceptProxyFrom, ["listeners", index, "acceptProxy", "from"], acls));
    });
    if (isMap(data) && isMap(data.defaults)) {
      const defaults = data.defaults;
      for (const list of ["allow", "deny"] as const)
        issues.push(...aclReferenceIssues(defaults[list], ["defaults", list], acls));
      if (isMap(defaults.acceptProxy))
        issues.push(...aclReferenceIssues(defaults.acceptProxy.from, ["defaults", "acceptProxy", "from"], acls));
    }
    if (isMap(data) && isMap(data.admin))
      issues.push(...aclReferenceIssues(data.admin.allow, ["admin", "allow"], acls));
  }
  return issues;
}

/**
 * zod skips a "__proto__" key in a record (it would replace the prototype of the object it
 * builds), so such an acl would vanish without a word, and a deny naming it deny no one.
 */
function protoAclIssues(data: unknown): SourceIssue[] {
  return isMap(data) && isMap(data.acls) && Object.hasOwn(data.acls, "__proto__")
    ? [{ path: ["acls", "__proto__"], message: '"__proto__" cannot be an acl name', atKey: true }]
    : [];
}

function nameIssues(listeners: ListenerParts[]): SourceIssue[] {
  const issues: SourceIssue[] = [];
  const names = new Map<string, number>();
  listeners.forEach((l, index) => {
    if (l.name === undefined) return;
    const first = names.get(l.name);
    if (first === undefined) names.set(l.name, index);
    else
      issues.push({
        path: ["listeners", index, "name"],
        message: `"${l.name}" is already the name of listeners[${first}]`,
      });
  });
  return issues;
}

function addressIssues(listeners: ListenerParts[]): SourceIssue[] {
  const issues: SourceIssue[] = [];
  const bound: Bound[] = [];
  listeners.forEach((l, index) => {
    const address = l.listen;
    if (!address) return;
    const clash = bound.find((b) => listenOverlaps(b.address, address));
    if (clash) {
      issues.push({ path: ["listeners", index, "listen"], message: clashMessage(address, clash, l.listenText) });
    }
    bound.push({ address, index, name: l.name });
  });
  return issues;
}

/** The admin endpoint needs a port of its own, like any listener. */
function adminAddressIssues(data: unknown, listeners: ListenerParts[]): SourceIssue[] {
  if (!isMap(data) || !isMap(data.admin) || typeof data.admin.listen !== "string") return [];
  const admin = parseListenAddress(data.admin.listen);
  if (!admin.ok) return [];
  for (const [index, l] of listeners.entries()) {
    if (l.listen && listenOverlaps(l.listen, admin.value)) {
      const clash = { address: l.listen, index, name: l.name };
      return [{ path: ["admin", "listen"], message: clashMessage(admin.value, clash, data.admin.listen) }];
    }
  }
  return [];
}

/** A listener's address, with its name when the name itself is well-formed. */
interface Bound {
  readonly address: HostPort;
  readonly index: number;
  readonly name: string | undefined;
}

function clashMessage(address: HostPort, clash: Bound, written: string): string {
  const other =
    clash.name === undefined ? `listeners[${clash.index}]` : `listener "${clash.name}" (listeners[${clash.index}])`;
  const mine = formatHostPort(address);
  const theirs = formatHostPort(clash.address);
  // "[::ffff:127.0.0.1]:80" clashes as the IPv4 address it is: say so, or the message reads wrong.
  const shown = written.startsWith("[") && address.family === 4 ? `${written} (IPv4-mapped, so ${mine})` : mine;
  if (mine === theirs) return `${shown} is already the address of ${other}`;
  // Only a wildcard can overlap a different address: say which side is the wildcard.
  return `${shown} overlaps ${theirs} of ${other}: a wildcard address covers every address on its port`;
}

/** A listener needs targets, routes or both: judged on the raw file, so it is said however broken the rest is. */
function requiredTargetIssues(data: unknown): SourceIssue[] {
  if (!isMap(data)) return [];
  return listAt(data.listeners).flatMap((l, index) =>
    isMap(l) && l.targets === undefined && l.routes === undefined
      ? [{ path: ["listeners", index, "targets"], message: "is required (or routes, or both)" }]
      : [],
  );
}

/** No target twice in one list; no server name in two routes. */
function targetIssues(l: ListenerParts, index: number): SourceIssue[] {
  const at: Path = ["listeners", index];
  return [
    ...duplicateTargets(l.targets, [...at, "targets"]),
    ...listAt(l.routes).flatMap((r, i) =>
      isMap(r) ? duplicateTargets(targetAddresses(r.targets), [...at, "routes", i, "targets"]) : [],
    ),
    ...duplicateNames(l.routes, at),
  ];
}

/** A name in a later route than the first to list it could never be reached: first match wins. */
function duplicateNames(routes: unknown, at: Path): SourceIssue[] {
  const issues: SourceIssue[] = [];
  const first = new Map<string, number>();
  listAt(routes).forEach((r, i) => {
    if (!isMap(r)) return;
    listAt(r.sni).forEach((name, j) => {
      if (typeof name !== "string") return;
      const lower = name.toLowerCase();
      const earlier = first.get(lower);
      if (earlier === undefined) first.set(lower, i);
      else
        issues.push({
          path: [...at, "routes", i, "sni", j],
          message: `${name} is already taken by routes[${earlier}] (the first match wins)`,
        });
    });
  });
  return issues;
}

function duplicateTargets(targets: readonly (HostPort | undefined)[], path: Path): SourceIssue[] {
  const issues: SourceIssue[] = [];
  const seen = new Map<string, number>();
  targets.forEach((t, i) => {
    if (!t) return;
    const key = formatHostPort(t);
    const first = seen.get(key);
    if (first === undefined) seen.set(key, i);
    else
      issues.push({
        path: [...path, i],
        message: `${key} is already targets[${first}] (give it a weight instead of listing it twice)`,
      });
  });
  return issues;
}

/** Entries that are well-formed acl names (the schema reports the others) but name no acl. */
function aclReferenceIssues(list: unknown, path: Path, acls: ReadonlySet<string>): SourceIssue[] {
  return listAt(list).flatMap((entry, i) => {
    if (typeof entry !== "string" || !isAclReference(entry) || !ACL_NAME.test(entry) || acls.has(entry)) return [];
    const guess = closest(entry, [...acls]);
    const message = `no acl named "${entry}" in acls${guess ? ` (did you mean ${guess}?)` : ""}`;
    return [{ path: [...path, i], message }];
  });
}
