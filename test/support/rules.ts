// Allow/deny rules built straight from CIDR text, as the config loader would build them.
import { parseCidr } from "../../src/config/address.ts";
import type { ListenerConfig, Rule } from "../../src/config/runtime.ts";

/** A rule named `source` standing for `cidrs`; throws on a CIDR the loader would refuse. */
export function rule(source: string, cidrs: readonly string[]): Rule {
  return {
    source,
    cidrs: cidrs.map((c) => {
      const parsed = parseCidr(c);
      if (!parsed.ok) throw new Error(parsed.error);
      return parsed.value;
    }),
  };
}

/** A listener config with every key set to a plain value: what the policy tests start from. */
export function listenerConfig(overrides: Partial<ListenerConfig>): ListenerConfig {
  return {
    name: "db",
    listen: { host: "127.0.0.1", port: 1, family: 4 },
    listenKey: "127.0.0.1:1",
    targets: [],
    routes: [],
    balance: "round-robin",
    allow: [],
    deny: [],
    schedule: undefined,
    maxConnections: undefined,
    maxConnectionsPerClient: undefined,
    connectTimeoutMs: 1000,
    idleTimeoutMs: 1000,
    maxDurationMs: undefined,
    halfCloseTimeoutMs: 1000,
    healthCheck: undefined,
    proxyProtocol: undefined,
    recheck: false,
    inspect: false,
    acceptProxy: undefined,
    filter: undefined,
    ...overrides,
  };
}
