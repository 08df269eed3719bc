// The normalised, immutable config the rest of tcpgate runs on: defaults applied,
// addresses and acl names parsed, durations in milliseconds.

import { resolveWorkers } from "../workers/support.ts";
import {
  type Cidr,
  formatHostPort,
  type HostPort,
  parseCidr,
  parseListenAddress,
  parseTargetAddress,
} from "./address.ts";
import { type EndpointAddress, formatEndpointAddress, parseAdminAddress } from "./admin-address.ts";
import { BUILT_IN_DEFAULTS } from "./defaults.ts";
import { parseDuration } from "./duration.ts";
import type { BALANCE, LOG_LEVELS, RawConfig, RawListener, RawTarget } from "./schema.ts";
import { DAYS, isAclReference } from "./schema.ts";

export type LogLevel = (typeof LOG_LEVELS)[number];
export type Balance = (typeof BALANCE)[number];
export type Day = (typeof DAYS)[number];

// Re-exported: the rest of tcpgate has always found the built-in defaults here.
export { BUILT_IN_DEFAULTS };

export interface TargetConfig {
  readonly address: HostPort;
  /** "host:port" as tcpgate prints it; the identity of a target across reloads. */
  readonly key: string;
  readonly weight: number;
}

/** One allow/deny entry as written, with the ranges it stands for. */
export interface Rule {
  readonly source: string;
  readonly cidrs: readonly Cidr[];
}

export interface ScheduleWindow {
  readonly days: readonly Day[] | undefined;
  readonly from: string;
  readonly to: string;
}

export interface HealthCheck {
  readonly intervalMs: number;
  readonly timeoutMs: number;
  /** Failures in a row that mark a target down. */
  readonly fall: number;
  /** Successes in a row that mark it up again. */
  readonly rise: number;
}

export interface ListenerConfig {
  readonly name: string;
  readonly listen: HostPort;
  /** The listen address in canonical text form. */
  readonly listenKey: string;
  readonly targets: readonly TargetConfig[];
  readonly balance: Balance;
  readonly allow: readonly Rule[];
  readonly deny: readonly Rule[];
  readonly schedule: { readonly timezone: string | undefined; readonly windows: readonly ScheduleWindow[] } | undefined;
  readonly maxConnections: number | undefined;
  readonly maxConnectionsPerClient: number | undefined;
  readonly connectTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly maxDurationMs: number | undefined;
  readonly halfCloseTimeoutMs: number;
  readonly healthCheck: HealthCheck | undefined;
  readonly proxyProtocol: "v1" | "v2" | undefined;
  readonly inspect: boolean;
  /** Hold open bridges to the current deny, allow and schedule. */
  readonly recheck: boolean;
}

export interface AdminConfig {
  readonly listen: EndpointAddress;
  readonly listenKey: string;
  readonly allow: readonly Rule[];
  /** File mode of a Unix socket. */
  readonly mode: number;
}

export interface RuntimeConfig {
  readonly listeners: readonly ListenerConfig[];
  readonly admin: AdminConfig | undefined;
  readonly logLevel: LogLevel;
  readonly shutdownTimeoutMs: number;
  /** Event loops accepting on every listener's address; `auto` resolved to the CPUs available. */
  readonly workers: number;
}

/** Only called on a config that passed the schema and the cross-field checks. */
export function normalise(raw: RawConfig): RuntimeConfig {
  const acls = new Map(Object.entries(raw.acls ?? {}).map(([name, list]) => [name, list.map(must(parseCidr))]));
  const rule = (source: string): Rule => ({
    source,
    cidrs: isAclReference(source) ? (acls.get(source) ?? []) : [must(parseCidr)(source)],
  });
  const defaults = raw.defaults ?? {};
  const ms = (value: string | undefined, fallback: number) =>
    value === undefined ? fallback : must(parseDuration)(value);
  const optionalMs = (value: string | undefined) => (value === undefined ? undefined : must(parseDuration)(value));

  const listener = (l: RawListener): ListenerConfig => {
    const listen = must(parseListenAddress)(l.listen);
    return {
      name: l.name,
      listen,
      listenKey: formatHostPort(listen),
      targets: l.targets.map(targetConfig),
      balance: l.balance ?? BUILT_IN_DEFAULTS.balance,
      allow: (l.allow ?? []).map(rule),
      deny: (l.deny ?? []).map(rule),
      schedule: l.schedule && {
        timezone: l.schedule.timezone,
        windows: l.schedule.windows.map((w) => ({ days: w.days && expandDays(w.days), from: w.from, to: w.to })),
      },
      maxConnections: l.maxConnections ?? defaults.maxConnections,
      maxConnectionsPerClient: l.maxConnectionsPerClient ?? defaults.maxConnectionsPerClient,
      connectTimeoutMs: ms(l.connectTimeout ?? defaults.connectTimeout, BUILT_IN_DEFAULTS.connectTimeoutMs),
      idleTimeoutMs: ms(l.idleTimeout ?? defaults.idleTimeout, BUILT_IN_DEFAULTS.idleTimeoutMs),
      maxDurationMs: optionalMs(l.maxDuration ?? defaults.maxDuration),
      halfCloseTimeoutMs: ms(l.halfCloseTimeout ?? defaults.halfCloseTimeout, BUILT_IN_DEFAULTS.halfCloseTimeoutMs),
      healthCheck: l.healthCheck && {
        intervalMs: ms(l.healthCheck.interval, BUILT_IN_DEFAULTS.healthCheck.intervalMs),
        timeoutMs: ms(l.healthCheck.timeout, BUILT_IN_DEFAULTS.healthCheck.timeoutMs),
        fall: l.healthCheck.fall ?? BUILT_IN_DEFAULTS.healthCheck.fall,
        rise: l.healthCheck.rise ?? BUILT_IN_DEFAULTS.healthCheck.rise,
      },
      proxyProtocol: l.proxyProtocol,
      inspect: l.inspect ?? false,
      recheck: l.recheck ?? defaults.recheck ?? false,
    };
  };

  const admin = (raw: NonNullable<RawConfig["admin"]>): AdminConfig => {
    const listen = must(parseAdminAddress)(raw.listen);
    return {
      listen,
      listenKey: formatEndpointAddress(listen),
      allow: (raw.allow ?? []).map(rule),
      mode: raw.mode === undefined ? 0o600 : Number.parseInt(String(raw.mode), 8),
    };
  };

  return deepFreeze({
    listeners: raw.listeners.map(listener),
    admin: raw.admin && admin(raw.admin),
    logLevel: raw.log?.level ?? BUILT_IN_DEFAULTS.logLevel,
    shutdownTimeoutMs: ms(raw.shutdownTimeout, BUILT_IN_DEFAULTS.shutdownTimeoutMs),
    workers: resolveWorkers(raw.workers),
  });
}

/** ["mon-wed", "sat"] → mon, tue, wed, sat; a range that wraps ("fri-mon") crosses Sunday. */
function expandDays(entries: readonly string[]): Day[] {
  const days = new Set<Day>();
  for (const entry of entries) {
    const [first, last = first] = entry.split("-") as [Day, Day?];
    const start = DAYS.indexOf(first);
    const length = (DAYS.indexOf(last) - start + 7) % 7;
    for (let i = 0; i <= length; i++) days.add(DAYS[(start + i) % 7] as Day);
  }
  return DAYS.filter((d) => days.has(d));
}

function targetConfig(raw: RawTarget): TargetConfig {
  const text = typeof raw === "string" ? raw : raw.address;
  const address = must(parseTargetAddress)(text);
  return { address, key: formatHostPort(address), weight: typeof raw === "string" ? 1 : (raw.weight ?? 1) };
}

function must<T>(parse: (text: string) => { ok: true; value: T } | { ok: false; error: string }) {
  return (text: string): T => {
    const result = parse(text);
    if (!result.ok) throw new Error(`internal: "${text}" passed validation but does not parse: ${result.error}`);
    return result.value;
  };
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === "object" && !Object.isFrozen(value)) {
    // ipaddr.js objects are frozen along with everything else; nothing mutates them.
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}
