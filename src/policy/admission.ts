// Who may connect, in the contract's order: deny, allow, schedule, limits. Pure: the
// caller supplies the client (a PROXY header's source when one was read), the time and
// the counts of open bridges.
import type { ListenerConfig } from "../config/runtime.ts";
import { type AddressMatcher, type ClientAddress, compileRules, type Match } from "./address-match.ts";
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

/**
 * `entry` is the allow or deny entry that decided its step, for the hit counters: the
 * deny entry that refused, or the allow entry that let the client past the allow step,
 * whatever the schedule or the limits then decided. Undefined when no entry matched.
 */
export type Decision =
  | { readonly admit: true; readonly entry: Match | undefined }
  | {
      readonly admit: false;
      readonly reason: AdmissionReason;
      readonly detail: string;
      readonly entry: Match | undefined;
    };

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
  /** The compiled lists and schedule decide() asks: explain reads the same ones. */
  readonly deny: AddressMatcher | undefined;
  readonly allow: AddressMatcher | undefined;
  readonly schedule: Schedule | undefined;
}

const ADMIT: Decision = { admit: true, entry: undefined };

/** For deny, allow and schedule alone: the listener's slots check the limits (src/proxy/slots.ts). */
export const UNCOUNTED: OpenCounts = { total: 0, fromClient: 0 };

/** The refusal for a limit the slots found reached. */
export function limitRefusal(
  limit: "maxConnections" | "maxConnectionsPerClient" | "clientTableFull",
  config: Pick<ListenerConfig, "maxConnections" | "maxConnectionsPerClient">,
): Decision {
  if (limit === "clientTableFull") return refuse("limit", "the table of per-client counts is full", undefined);
  return refuse("limit", `${limit} ${config[limit]} reached`, undefined);
}

/** Compiled once per config load; every accept asks it once. */
export function compilePolicy(config: ListenerConfig): Policy {
  const deny: AddressMatcher | undefined = config.deny.length > 0 ? compileRules(config.deny, "deny") : undefined;
  const allow: AddressMatcher | undefined = config.allow.length > 0 ? compileRules(config.allow, "allow") : undefined;
  const schedule: Schedule | undefined =
    config.schedule && compileSchedule(config.schedule.timezone, config.schedule.windows);
  const proxyFrom: AddressMatcher | undefined = config.acceptProxy && compileRules(config.acceptProxy.from, "allow");
  const { maxConnections, maxConnectionsPerClient } = config;
  return {
    deny,
    allow,
    schedule,
    sendsProxyHeader: (peer) => proxyFrom?.match(peer) !== undefined,
    decide(client, nowMs, open, trusted = false) {
      let allowed: Match | undefined;
      if (!trusted) {
        const denied = deny?.match(client);
        if (denied) return refuse("deny", describeMatch(denied), denied);
        if (allow) {
          allowed = allow.match(client);
          if (!allowed) return refuse("allow", "no allow entry matches", undefined);
        }
        if (schedule && !schedule.isOpen(nowMs)) return refuse("schedule", "outside every window", allowed);
      }
      if (maxConnections !== undefined && open.total >= maxConnections) {
        return refuse("limit", `maxConnections ${maxConnections} reached`, allowed);
      }
      if (maxConnectionsPerClient !== undefined && open.fromClient >= maxConnectionsPerClient) {
        return refuse("limit", `maxConnectionsPerClient ${maxConnectionsPerClient} reached`, allowed);
      }
      return allowed ? { admit: true, entry: allowed } : ADMIT;
    },
  };
}

function refuse(reason: AdmissionReason, detail: string, entry: Match | undefined): Decision {
  return { admit: false, reason, detail, entry };
}

/** "quarantine (10.20.99.0/24)" for an acl, "10.0.0.0/8" for a CIDR written in place. */
export function describeMatch({ rule, cidr }: Pick<Match, "rule" | "cidr">): string {
  return rule === cidr || cidr.startsWith(`${rule}/`) ? cidr : `${rule} (${cidr})`;
}
