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
import type { BALANCE, LOG_LEVELS, RawConfig, RawListener, RawRoute, RawTarget } from "./schema.ts";
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

/** A route: clients whose TLS server name matches go to its own targets. */
export interface RouteConfig {
  /** Names as written; "*." stands for exactly one label. */
  readonly sni: readonly string[];
  /** The names joined by ","; the route's identity across reloads and its label in logs and metrics. */
  readonly key: string;
  readonly targets: readonly TargetConfig[];
  readonly balance: Balance;
  readonly healthCheck: HealthCheck | undefined;
  readonly proxyProtocol: "v1" | "v2" | undefined;
}

/**
 * A filter module's default export. What it is called with and what it returns is the
 * proxy's business (proxy/filter-stream.ts); the config only carries it.
 */
export type FilterFactory = (options: unknown, bridge: unknown) => unknown;

/** A filter module as loaded: read, checked and imported (config/filter-load.ts). */
export interface LoadedFilter {
  /** Absolute path of the module file. */
  readonly path: string;
  /** Of the module file's content: a changed file is a new module. */
  readonly sha256: string;
  readonly create: FilterFactory;
}

export interface FilterSetting {
  /** As written: relative to the config file's folder. */
  readonly module: string;
  /** Any YAML value, handed to create(). */
  readonly options: unknown;
  /** Set by loadFilters; a config that runs always has it. */
  readonly loaded: LoadedFilter | undefined;
}

export interface ListenerConfig {
  readonly name: string;
  readonly listen: HostPort;
  /** The listen address in canonical text form. */
  readonly listenKey: string;
  /** Empty only with routes: then clients that no route takes are refused. */
  readonly targets: readonly TargetConfig[];
  /** Routes by TLS server name, in order; empty when the listener does not route. */
  readonly routes: readonly RouteConfig[];
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
  /** Peers that must send a PROXY header, and how long they have for it. */
  readonly acceptProxy: { readonly from: readonly Rule[]; readonly timeoutMs: number } | undefined;
  readonly filter: FilterSetting | undefined;
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

  const acceptProxy = (raw: RawListener["acceptProxy"]): ListenerConfig["acceptProxy"] =>
    raw ? { from: raw.from.map(rule), timeoutMs: ms(raw.timeout, BUILT_IN_DEFAULTS.acceptProxyTimeoutMs) } : undefined;

  const healthCheck = (raw: RawListener["healthCheck"]): HealthCheck | undefined =>
    raw
      ? {
          intervalMs: ms(raw.interval, BUILT_IN_DEFAULTS.healthCheck.intervalMs),
          timeoutMs: ms(raw.timeout, BUILT_IN_DEFAULTS.healthCheck.timeoutMs),
          fall: raw.fall ?? BUILT_IN_DEFAULTS.healthCheck.fall,
          rise: raw.rise ?? BUILT_IN_DEFAULTS.healthCheck.rise,
        }
      : undefined;

  const listener = (own: RawListener): ListenerConfig => {
    // A key the listener sets replaces the default as a whole: lists and maps are not merged.
    // (zod leaves an absent key absent, so it never hides a default.)
    const l = { ...defaults, ...own };
    const listen = must(parseListenAddress)(l.listen);
    const balance = l.balance ?? BUILT_IN_DEFAULTS.balance;
    // What a route leaves out it takes from its listener; false there too means none.
    const route = (r: RawRoute): RouteConfig => ({
      sni: r.sni,
      key: r.sni.join(","),
      targets: r.targets.map(targetConfig),
      balance: r.balance ?? balance,
      healthCheck: healthCheck(r.healthCheck ?? l.healthCheck),
      proxyProtocol: orNone(r.proxyProtocol ?? l.proxyProtocol),
    });
    return {
      name: l.name,
      listen,
      listenKey: formatHostPort(listen),
      targets: (l.targets ?? []).map(targetConfig),
      routes: (l.routes ?? []).map(route),
      balance,
      allow: (l.allow ?? []).map(rule),
      deny: (l.deny ?? []).map(rule),
      schedule: l.schedule
        ? {
            timezone: l.schedule.timezone,
            windows: l.schedule.windows.map((w) => ({ days: w.days && expandDays(w.days), from: w.from, to: w.to })),
          }
        : undefined,
      maxConnections: l.maxConnections,
      maxConnectionsPerClient: l.maxConnectionsPerClient,
      connectTimeoutMs: ms(l.connectTimeout, BUILT_IN_DEFAULTS.connectTimeoutMs),
      idleTimeoutMs: ms(l.idleTimeout, BUILT_IN_DEFAULTS.idleTimeoutMs),
      maxDurationMs: optionalMs(l.maxDuration),
      halfCloseTimeoutMs: ms(l.halfCloseTimeout, BUILT_IN_DEFAULTS.halfCloseTimeoutMs),
      healthCheck: healthCheck(l.healthCheck),
      proxyProtocol: orNone(l.proxyProtocol),
      inspect: l.inspect ?? false,
      recheck: l.recheck ?? false,
      acceptProxy: acceptProxy(l.acceptProxy),
      filter: filterSetting(l.filter),
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

function filterSetting(raw: RawListener["filter"]): FilterSetting | undefined {
  return raw ? { module: raw.module, options: raw.options, loaded: undefined } : undefined;
}

/** `false` where a setting may be inherited: none, whatever would have been inherited. */
function orNone<T>(value: T | false | undefined): T | undefined {
  return value === false ? undefined : value;
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
