// Checks that look across values: names, address clashes, acl references, and the
// keys whose features have not landed yet.
import { type HostPort, parseListenAddress, parseTargetAddress } from "./address.ts";
import type { RawConfig } from "./schema.ts";
import { isAclReference } from "./schema.ts";
import type { SourceIssue } from "./yaml-source.ts";

export function crossFieldIssues(raw: RawConfig): SourceIssue[] {
  const issues: SourceIssue[] = [];
  const names = new Map<string, number>();
  const bound: { address: HostPort; index: number }[] = [];
  const acls = new Set(Object.keys(raw.acls ?? {}));

  raw.listeners.forEach((l, index) => {
    const first = names.get(l.name);
    if (first === undefined) names.set(l.name, index);
    else
      issues.push({
        path: ["listeners", index, "name"],
        message: `"${l.name}" is already the name of listeners[${first}]`,
      });

    const address = parseListenAddress(l.listen);
    if (address.ok) {
      const clash = bound.find((b) => overlaps(b.address, address.value));
      if (clash) {
        issues.push({
          path: ["listeners", index, "listen"],
          message: `"${l.listen}" overlaps the address of listeners[${clash.index}] (${raw.listeners[clash.index]?.listen})`,
        });
      }
      bound.push({ address: address.value, index });
    }

    const seen = new Set<string>();
    l.targets.forEach((t, i) => {
      const parsed = parseTargetAddress(typeof t === "string" ? t : t.address);
      if (!parsed.ok) return;
      const key = `${parsed.value.host}|${parsed.value.port}`;
      if (seen.has(key)) {
        issues.push({
          path: ["listeners", index, "targets", i],
          message: "this target is listed twice (use weight instead)",
        });
      }
      seen.add(key);
    });

    for (const list of ["allow", "deny"] as const) {
      (l[list] ?? []).forEach((entry, i) => {
        if (isAclReference(entry) && !acls.has(entry)) {
          issues.push({ path: ["listeners", index, list, i], message: `no acl named "${entry}" in acls` });
        }
      });
    }
  });
  return issues;
}

/** Two listen addresses clash on the same port when equal or when one is a wildcard covering the other. */
function overlaps(a: HostPort, b: HostPort): boolean {
  if (a.port !== b.port) return false;
  if (a.host === b.host) return true;
  const everything = (x: HostPort) => x.host === "" || x.host === "::";
  if (everything(a) || everything(b)) return true;
  const anyV4 = (x: HostPort) => x.host === "0.0.0.0";
  return (anyV4(a) && b.family === 4) || (anyV4(b) && a.family === 4);
}

/**
 * Keys of the contract whose behaviour has not been built yet. A key tcpgate accepts is a
 * key that works, so these are refused rather than silently ignored.
 */
const NOT_YET_LISTENER_KEYS = [
  "allow",
  "deny",
  "schedule",
  "maxConnections",
  "maxConnectionsPerClient",
  "healthCheck",
  "proxyProtocol",
] as const;
const NOT_YET_DEFAULTS_KEYS = ["maxConnections", "maxConnectionsPerClient"] as const;

export function unsupportedIssues(raw: RawConfig): SourceIssue[] {
  const issues: SourceIssue[] = [];
  const refuse = (path: (string | number)[], what = "not supported yet") =>
    issues.push({ path, message: what, atKey: true });
  if (raw.admin !== undefined) refuse(["admin"]);
  for (const key of NOT_YET_DEFAULTS_KEYS) if (raw.defaults?.[key] !== undefined) refuse(["defaults", key]);
  raw.listeners.forEach((l, index) => {
    for (const key of NOT_YET_LISTENER_KEYS) if (l[key] !== undefined) refuse(["listeners", index, key]);
    if (l.balance !== undefined && l.balance !== "round-robin") {
      issues.push({
        path: ["listeners", index, "balance"],
        message: `"${l.balance}" is not supported yet (only round-robin)`,
      });
    }
    if (l.inspect === true) refuse(["listeners", index, "inspect"], "inspect: true is not supported yet");
  });
  return issues;
}
