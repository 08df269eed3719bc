// Who may connect, in the contract's order: deny, allow, schedule, limits. Pure: the
// caller supplies the client (a PROXY header's source when one was read), the time and
// the counts of open bridges.
import type { ListenerConfig } from "../config/runtime.ts";
import { type AddressMatcher, type ClientAddress, compileRules } from "./address-match.ts";
import { compileSchedule, type Schedule } from "./schedule.ts";

/** What the policy itself refuses for; a PROXY header or a route are judged by their stages. */
export type AdmissionReason = "deny" | "allow" | "schedule" | "limit";
export type RefusalReason = AdmissionReason | "proxy-header" | "route";
export const REFUSAL_REASONS: readonly RefusalReason[] = [
  "deny",
  "allow",
  "schedule",
  "limit",
  "proxy-header",
  "route",
];

export type Decision =
  | { readonly admit: true }
  | { readonly admit: false; readonly reason: AdmissionReason; readonly detail: string };

export interface OpenCounts {
  /** Open bridges on the listener. */
  readonly total: number;
  /** Open bridges from this client address. */
  readonly fromClient: number;
}

export interface Policy {
  /** trusted: a load balancer's own connection (PROXY v2 LOCAL), held to the limits only. */
  decide(client: ClientAddress, nowMs: number, open: OpenCounts, trusted?: boolean): Decision;
  /** Whether acceptProxy names this peer: its connection must start with a PROXY header. */
  sendsProxyHeader(peer: ClientAddress): boolean;
}

const ADMIT: Decision = { admit: true };

/** Compiled once per config load; every accept asks it once. */
export function compilePolicy(config: ListenerConfig): Policy {
  const deny: AddressMatcher | undefined = config.deny.length > 0 ? compileRules(config.deny) : undefined;
  const allow: AddressMatcher | undefined = config.allow.length > 0 ? compileRules(config.allow) : undefined;
  const schedule: Schedule | undefined =
    config.schedule && compileSchedule(config.schedule.timezone, config.schedule.windows);
  const proxyFrom: AddressMatcher | undefined = config.acceptProxy && compileRules(config.acceptProxy.from);
  const { maxConnections, maxConnectionsPerClient } = config;
  return {
    sendsProxyHeader: (peer) => proxyFrom?.match(peer) !== undefined,
    decide(client, nowMs, open, trusted = false) {
      if (!trusted) {
        const denied = deny?.match(client);
        if (denied) return refuse("deny", describeMatch(denied.rule, denied.cidr));
        if (allow && !allow.match(client)) return refuse("allow", "no allow entry matches");
        if (schedule && !schedule.isOpen(nowMs)) return refuse("schedule", "outside every window");
      }
      if (maxConnections !== undefined && open.total >= maxConnections) {
        return refuse("limit", `maxConnections ${maxConnections} reached`);
      }
      if (maxConnectionsPerClient !== undefined && open.fromClient >= maxConnectionsPerClient) {
        return refuse("limit", `maxConnectionsPerClient ${maxConnectionsPerClient} reached`);
      }
      return ADMIT;
    },
  };
}

function refuse(reason: AdmissionReason, detail: string): Decision {
  return { admit: false, reason, detail };
}

/** "quarantine (10.20.99.0/24)" for an acl, "10.0.0.0/8" for a CIDR written in place. */
function describeMatch(rule: string, cidr: string): string {
  return rule === cidr || cidr.startsWith(`${rule}/`) ? cidr : `${rule} (${cidr})`;
}
