// Checks that look across values: names, address clashes, acl references, and the
// keys whose features have not landed yet. They run on whatever parts of the file are
// well-formed, even when other parts failed the schema, so one pass reports every error.
import { formatHostPort, type HostPort, parseListenAddress, parseTargetAddress } from "./address.ts";
import { listenOverlaps } from "./overlap.ts";
import { isAclReference, listenerSchema, type RawListener, type RawTarget } from "./schema.ts";
import type { SourceIssue } from "./yaml-source.ts";

type Path = (string | number)[];

function isMap(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

function listAt(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

/** The listeners that pass the schema on their own, by index; undefined for the others. */
function wellFormedListeners(data: unknown): (RawListener | undefined)[] {
  if (!isMap(data)) return [];
  return listAt(data.listeners).map((item) => {
    const parsed = listenerSchema.safeParse(item);
    return parsed.success ? parsed.data : undefined;
  });
}

/** acl names the file defines; undefined when `acls` is not a map, so references cannot be judged. */
function aclNames(data: unknown): ReadonlySet<string> | undefined {
  if (!isMap(data) || data.acls === undefined) return new Set();
  return isMap(data.acls) ? new Set(Object.keys(data.acls)) : undefined;
}

export function crossFieldIssues(data: unknown): SourceIssue[] {
  const listeners = wellFormedListeners(data);
  const acls = aclNames(data);
  const issues: SourceIssue[] = [
    ...nameIssues(listeners),
    ...addressIssues(listeners),
    ...adminAddressIssues(data, listeners),
    ...requiredTargetIssues(data),
    ...listeners.flatMap((l, index) => (l ? targetIssues(l, index) : [])),
    ...protoAclIssues(data),
  ];
  if (acls) {
    listeners.forEach((l, index) => {
      for (const list of ["allow", "deny"] as const) {
        issues.push(...aclReferenceIssues(l?.[list], ["listeners", index, list], acls));
      }
      issues.push(...aclReferenceIssues(l?.acceptProxy?.from, ["listeners", index, "acceptProxy", "from"], acls));
    });
    if (isMap(data) && isMap(data.defaults) && isMap(data.defaults.acceptProxy))
      issues.push(...aclReferenceIssues(data.defaults.acceptProxy.from, ["defaults", "acceptProxy", "from"], acls));
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

function nameIssues(listeners: (RawListener | undefined)[]): SourceIssue[] {
  const issues: SourceIssue[] = [];
  const names = new Map<string, number>();
  listeners.forEach((l, index) => {
    if (!l) return;
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

function addressIssues(listeners: (RawListener | undefined)[]): SourceIssue[] {
  const issues: SourceIssue[] = [];
  const bound: { address: HostPort; index: number; name: string }[] = [];
  listeners.forEach((l, index) => {
    if (!l) return;
    const address = parseListenAddress(l.listen);
    if (!address.ok) return;
    const clash = bound.find((b) => listenOverlaps(b.address, address.value));
    if (clash) issues.push({ path: ["listeners", index, "listen"], message: clashMessage(address.value, clash) });
    bound.push({ address: address.value, index, name: l.name });
  });
  return issues;
}

/** The admin endpoint needs a port of its own, like any listener. */
function adminAddressIssues(data: unknown, listeners: (RawListener | undefined)[]): SourceIssue[] {
  if (!isMap(data) || !isMap(data.admin) || typeof data.admin.listen !== "string") return [];
  const admin = parseListenAddress(data.admin.listen);
  if (!admin.ok) return [];
  for (const [index, l] of listeners.entries()) {
    if (!l) continue;
    const address = parseListenAddress(l.listen);
    if (address.ok && listenOverlaps(address.value, admin.value)) {
      const clash = { address: address.value, index, name: l.name };
      return [{ path: ["admin", "listen"], message: clashMessage(admin.value, clash) }];
    }
  }
  return [];
}

function clashMessage(address: HostPort, clash: { address: HostPort; index: number; name: string }): string {
  const other = `listener "${clash.name}" (listeners[${clash.index}])`;
  const mine = formatHostPort(address);
  const theirs = formatHostPort(clash.address);
  if (mine === theirs) return `${mine} is already the address of ${other}`;
  // Only a wildcard can overlap a different address: say which side is the wildcard.
  return `${mine} overlaps ${theirs} of ${other}: a wildcard address covers every address on its port`;
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
function targetIssues(l: RawListener, index: number): SourceIssue[] {
  const at: Path = ["listeners", index];
  return [
    ...duplicateTargets(l.targets ?? [], [...at, "targets"]),
    ...(l.routes ?? []).flatMap((r, i) => duplicateTargets(r.targets, [...at, "routes", i, "targets"])),
    ...duplicateNames(l, at),
  ];
}

/** A name in a later route than the first to list it could never be reached: first match wins. */
function duplicateNames(l: RawListener, at: Path): SourceIssue[] {
  const issues: SourceIssue[] = [];
  const first = new Map<string, number>();
  (l.routes ?? []).forEach((r, i) => {
    r.sni.forEach((name, j) => {
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

function duplicateTargets(targets: readonly RawTarget[], path: Path): SourceIssue[] {
  const issues: SourceIssue[] = [];
  const seen = new Map<string, number>();
  targets.forEach((t, i) => {
    const parsed = parseTargetAddress(typeof t === "string" ? t : t.address);
    if (!parsed.ok) return;
    const key = formatHostPort(parsed.value);
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

function aclReferenceIssues(list: unknown, path: Path, acls: ReadonlySet<string>): SourceIssue[] {
  return listAt(list).flatMap((entry, i) =>
    typeof entry === "string" && isAclReference(entry) && !acls.has(entry)
      ? [{ path: [...path, i], message: `no acl named "${entry}" in acls` }]
      : [],
  );
}
