// Who may connect, in the contract's order: deny, allow, schedule, limits. Pure: the
// caller supplies the client, the time and the counts of open bridges.
import type { ListenerConfig } from "../config/runtime.ts";
import { type AddressMatcher, type ClientAddress, compileRules } from "./address-match.ts";
import { compileSchedule, type Schedule } from "./schedule.ts";

export type RefusalReason = "deny" | "allow" | "schedule" | "limit";
export const REFUSAL_REASONS: readonly RefusalReason[] = ["deny", "allow", "schedule", "limit"];

export type Decision =
  | { readonly admit: true }
  | { readonly admit: false; readonly reason: RefusalReason; readonly detail: string };

export interface OpenCounts {
  /** Open bridges on the listener. */
  readonly total: number;
  /** Open bridges from this client address. */
  readonly fromClient: number;
}

export interface Policy {
  decide(client: ClientAddress, nowMs: number, open: OpenCounts): Decision;
}

const ADMIT: Decision = { admit: true };

/** For deny, allow and schedule alone: the listener's slots check the limits (src/proxy/slots.ts). */
export const UNCOUNTED: OpenCounts = { total: 0, fromClient: 0 };

/** The refusal for a limit the slots found reached. */
export function limitRefusal(
  limit: "maxConnections" | "maxConnectionsPerClient" | "clientTableFull",
  config: Pick<ListenerConfig, "maxConnections" | "maxConnectionsPerClient">,
): Decision {
  if (limit === "clientTableFull") return refuse("limit", "the table of per-client counts is full");
  return refuse("limit", `${limit} ${config[limit]} reached`);
}

/** Compiled once per config load; every accept asks it once. */
export function compilePolicy(config: ListenerConfig): Policy {
  const deny: AddressMatcher | undefined = config.deny.length > 0 ? compileRules(config.deny) : undefined;
  const allow: AddressMatcher | undefined = config.allow.length > 0 ? compileRules(config.allow) : undefined;
  const schedule: Schedule | undefined =
    config.schedule && compileSchedule(config.schedule.timezone, config.schedule.windows);
  const { maxConnections, maxConnectionsPerClient } = config;
  return {
    decide(client, nowMs, open) {
      const denied = deny?.match(client);
      if (denied) return refuse("deny", describeMatch(denied.rule, denied.cidr));
      if (allow && !allow.match(client)) return refuse("allow", "no allow entry matches");
      if (schedule && !schedule.isOpen(nowMs)) return refuse("schedule", "outside every window");
      if (maxConnections !== undefined && open.total >= maxConnections) return limitRefusal("maxConnections", config);
      if (maxConnectionsPerClient !== undefined && open.fromClient >= maxConnectionsPerClient) {
        return limitRefusal("maxConnectionsPerClient", config);
      }
      return ADMIT;
    },
  };
}

function refuse(reason: RefusalReason, detail: string): Decision {
  return { admit: false, reason, detail };
}

/** "quarantine (10.20.99.0/24)" for an acl, "10.0.0.0/8" for a CIDR written in place. */
function describeMatch(rule: string, cidr: string): string {
  return rule === cidr || cidr.startsWith(`${rule}/`) ? cidr : `${rule} (${cidr})`;
}
