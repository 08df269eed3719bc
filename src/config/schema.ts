// The one source of truth for proxy.yaml. Types are inferred from it, the JSON Schema
// in schemas/ is generated from it (npm run schema), and every check that can be said
// about a single value lives here so its error carries the value's key path.
import { z } from "zod";
import { type Parsed, parseCidr, parseListenAddress, parseTargetAddress } from "./address.ts";
import { parseAdminAddress } from "./admin-address.ts";
import { BUILT_IN_DEFAULTS } from "./defaults.ts";
import { describe } from "./describe.ts";
import { DURATION_PATTERN, formatDuration, parseDuration } from "./duration.ts";

/**
 * A string whose type error says what the string should hold: `idleTimeout: 30` is a
 * common slip, and "must be a duration such as "5s"" tells the operator how to fix it.
 * A missing key keeps zod's own issue, which the loader reports as "is required".
 */
function text(what: string) {
  return z.string({
    error: (issue) => (issue.input === undefined ? undefined : `must be ${what}, not ${describe(issue.input)}`),
  });
}

function checked(what: string, parse: (text: string) => Parsed<unknown>) {
  return text(what).superRefine((text, ctx) => {
    const result = parse(text);
    if (!result.ok) ctx.addIssue({ code: "custom", message: result.error });
  });
}

const duration = checked('a duration such as "5s"', parseDuration).meta({
  description: "A duration: a whole number and a unit (ms, s, m, h, d), e.g. 500ms, 5s, 15m, 8h, 1d.",
  pattern: DURATION_PATTERN,
});

const listenAddress = checked('an "ip:port" or ":port" string', parseListenAddress).meta({
  description: '"ip:port", "[ipv6]:port" or ":port" (all interfaces).',
});

/** "0660" as chmod takes it; YAML reads an unquoted 0660 as the number 660, meant the same way. */
const NOT_A_MODE = 'must be a file mode such as "0600" or "0660"';
const fileMode = z
  .union([z.string(), z.int()], { error: NOT_A_MODE })
  .refine((value) => /^0?[0-7]{3}$/.test(String(value)), { error: NOT_A_MODE });

const positiveInt = z.int().min(1).max(10_000_000);

export const ACL_NAME = /^[A-Za-z_][A-Za-z0-9_-]*$/;

const aclName = z.string().regex(ACL_NAME, {
  error: (issue) =>
    `"${String(issue.input)}" is not a valid acl name (letters, digits, '_' and '-', starting with a letter or '_')`,
});
export const LISTENER_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

/** Addresses start with a digit or hold a colon; anything else in a rule list names an acl. */
export function isAclReference(entry: string): boolean {
  return !entry.includes(":") && !/^[0-9]/.test(entry);
}

const cidr = checked("an address or a CIDR", parseCidr).meta({
  description: 'A CIDR ("10.0.0.0/8") or a single address.',
});

const ruleEntry = text("an address, a CIDR or an acl name")
  .superRefine((entry, ctx) => {
    if (isAclReference(entry)) {
      if (!ACL_NAME.test(entry))
        ctx.addIssue({ code: "custom", message: `"${entry}" is neither an address nor an acl name` });
      return;
    }
    const result = parseCidr(entry);
    if (!result.ok) ctx.addIssue({ code: "custom", message: result.error });
  })
  .meta({ description: "A CIDR, a single address, or the name of an entry in acls." });

const ruleList = z.array(ruleEntry);

/** The description an editor shows for a key; a default is quoted from the code, not retyped. */
const about = (text: string, defaultMs?: number) => ({
  description: defaultMs === undefined ? text : `${text} Default ${formatDuration(defaultMs)}.`,
});

export const DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"] as const;

/** "07:30" → 450: minutes since midnight of a clock the schema accepted ("24:00" → 1440). */
export function minutesOf(clock: string): number {
  const [h, m] = clock.split(":").map(Number);
  return (h ?? 0) * 60 + (m ?? 0);
}

const clock = z
  .string()
  .regex(/^(?:[01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$/, { error: 'must be a time "HH:MM" from "00:00" to "24:00"' });

const DAY_PATTERN = `(?:${DAYS.join("|")})`;

const dayOrRange = z.string().regex(new RegExp(`^${DAY_PATTERN}(?:-${DAY_PATTERN})?$`), {
  error: 'must be a day (mon, tue, wed, thu, fri, sat, sun) or a range such as "mon-fri"',
});

const window = z
  .object({
    days: z
      .array(dayOrRange)
      .min(1)
      .optional()
      .meta(
        about('Days the window starts on: "mon"…"sun" or ranges like "mon-fri" ("fri-mon" wraps). Default: every day.'),
      ),
    from: clock,
    to: clock,
  })
  .strict();

function isTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

const schedule = z
  .object({
    timezone: z
      .string()
      .refine(isTimeZone, { error: (issue) => `unknown time zone "${String(issue.input)}"` })
      .optional()
      .meta({ description: "IANA time zone, e.g. Europe/Berlin. Default: the host's zone." }),
    windows: z
      .array(window)
      .min(1)
      .meta(about('Windows in which new connections are admitted; "from" is inclusive, "to" exclusive.')),
  })
  .strict();

const target = z.union(
  [
    checked('a "host:port" string', parseTargetAddress).meta({ description: '"host:port" or "[ipv6]:port".' }),
    z
      .object({
        address: checked('a "host:port" string', parseTargetAddress).meta(about('"host:port" or "[ipv6]:port".')),
        weight: z.int().min(1).max(1000).optional().meta({ description: "Relative share of new bridges. Default 1." }),
      })
      .strict(),
  ],
  { error: 'must be a "host:port" string or an {address, weight} map' },
);

const healthCheck = z
  .object({
    interval: duration.optional(),
    timeout: duration.optional(),
    fall: positiveInt.optional(),
    rise: positiveInt.optional(),
  })
  .strict();

const acceptProxy = z
  .object({
    from: z
      .array(ruleEntry)
      .min(1)
      .meta(about("The load balancers that send a PROXY header: CIDRs, addresses or acl names, never wider.")),
    timeout: duration
      .optional()
      .meta(about("The header must arrive within this.", BUILT_IN_DEFAULTS.acceptProxyTimeoutMs)),
  })
  .strict();

const filter = z
  .object({
    module: text("a path to an ES module")
      .min(1)
      .meta(
        about(
          "The filter's ES module, relative to the config file's folder; its default export is create(options, bridge).",
        ),
      ),
    options: z.unknown().optional().meta(about("Any YAML value, handed to create() as its first argument.")),
  })
  .strict();

export const BALANCE = ["round-robin", "least-connections", "random", "source-hash"] as const;

const balance = z
  .enum(BALANCE)
  .optional()
  .meta(about(`How new bridges are spread over the targets. Default ${BUILT_IN_DEFAULTS.balance}.`));
const targets = z.array(target).min(1).meta(about('One or more: "host:port" or {address, weight}.'));

/**
 * A setting whose absence means "none" also takes `false`: none here, whatever `defaults`
 * (or, for a route, its listener) says. Without it an inherited one could not be undone.
 */
function orNone<T extends z.ZodType>(schema: T, what: string) {
  return z.union([schema, z.literal(false)], { error: `must be ${what} or false` });
}

const OFF = " false: none, even if defaults (or, for a route, its listener) set one.";
const healthCheckKey = orNone(healthCheck, "a map")
  .optional()
  .meta(about(`Active checks: a TCP connect to each target.${OFF}`));
const proxyProtocol = orNone(z.enum(["v1", "v2"]), '"v1", "v2"')
  .optional()
  .meta(about(`Send a PROXY protocol header of this version to the target.${OFF}`));

/** Every listener key but name, listen, targets and routes: what `defaults` may hold too. */
const listenerSettings = {
  balance,
  allow: ruleList.optional().meta(about("When present and non-empty, clients outside every entry are refused.")),
  deny: ruleList.optional().meta(about("Clients inside any entry are refused (checked before allow).")),
  schedule: orNone(schedule, "a map")
    .optional()
    .meta(about(`When new connections are admitted. Default: always.${OFF}`)),
  connectTimeout: duration
    .optional()
    .meta(
      about("How long connecting to a target may take before the next is tried.", BUILT_IN_DEFAULTS.connectTimeoutMs),
    ),
  idleTimeout: duration
    .optional()
    .meta(about("A bridge with no byte either way for this long is closed.", BUILT_IN_DEFAULTS.idleTimeoutMs)),
  maxDuration: duration.optional().meta(about("A bridge is closed after this long. Default: no limit.")),
  halfCloseTimeout: duration
    .optional()
    .meta(about("A bridge is closed this long after one side closed its half.", BUILT_IN_DEFAULTS.halfCloseTimeoutMs)),
  maxConnections: positiveInt.optional().meta(about("Open bridges on the listener at most.")),
  maxConnectionsPerClient: positiveInt.optional().meta(about("Open bridges per client address at most.")),
  recheck: z
    .boolean()
    .optional()
    .meta(
      about(
        "true: a reload closes open bridges the new deny, allow or schedule would refuse, and the end of the last admitting window closes the rest. Default false.",
      ),
    ),
  acceptProxy: orNone(acceptProxy, "a map")
    .optional()
    .meta(
      about(
        `Peers in \`from\` must start with a PROXY v1 or v2 header; its source is then the client. Others are clients themselves.${OFF}`,
      ),
    ),
  filter: orNone(filter, "a map")
    .optional()
    .meta(about(`Inspect, block or rewrite the bytes of each bridge with an ES module.${OFF}`)),
  healthCheck: healthCheckKey,
  proxyProtocol,
  inspect: z.boolean().optional().meta(about("true: log a bounded preview of each chunk at trace level.")),
};

/** A DNS name (labels of letters, digits, '-' and '_'), optionally "*." for exactly one more label. */
export const SERVER_NAME =
  /^(?:\*\.)?(?:[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\.)*[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/;

const serverName = z
  .string()
  .max(253)
  .regex(SERVER_NAME, {
    error: (issue) =>
      `"${String(issue.input)}" is not a server name (a DNS name, or "*." and a name for exactly one more label)`,
  })
  .meta({ description: 'A TLS server name: "db.example.com", or "*.example.com" for exactly one more label.' });

const route = z
  .object({
    sni: z.array(serverName).min(1).meta(about("Server names this route takes; case-insensitive.")),
    targets,
    balance,
    healthCheck: healthCheckKey,
    proxyProtocol,
  })
  .strict();

export const listenerSchema = z
  .object({
    name: z
      .string()
      .regex(LISTENER_NAME, {
        error: "must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
      })
      .meta(about("Unique; the identity of the listener across reloads.")),
    listen: listenAddress,
    targets: targets
      .optional()
      .meta(about('One or more: "host:port" or {address, weight}. With routes: for clients no route takes.')),
    routes: z
      .array(route)
      .min(1)
      .optional()
      .meta(
        about(
          "Route TLS clients by the server name in their ClientHello (not decrypted); the first match wins. Keys left out come from the listener.",
        ),
      ),
    ...listenerSettings,
  })
  .strict()
  // Checked at load by checks.ts (so it is said however broken the rest is); stated here for editors.
  .meta({ anyOf: [{ required: ["targets"] }, { required: ["routes"] }] });

export const LOG_LEVELS = ["trace", "debug", "info", "warn", "error"] as const;

export const configSchema = z
  .object({
    version: z.literal(1).meta(about("The config format version: 1.")),
    acls: z
      .record(aclName, z.array(cidr))
      .optional()
      .meta(about("Named address lists, usable by name in allow and deny.")),
    defaults: z
      .object(listenerSettings)
      .strict()
      .optional()
      .meta(
        about(
          "Any listener key but name, listen, targets and routes: every listener inherits it unless it sets its own, which replaces it whole (lists and maps are not merged).",
        ),
      ),
    admin: z
      .object({
        listen: checked('an "ip:port", ":port" or "unix:/path" string', parseAdminAddress).meta({
          description: '"ip:port", "[ipv6]:port", ":port", or a Unix socket "unix:/run/tcpgate/admin.sock".',
        }),
        allow: ruleList.optional(),
        mode: fileMode
          .optional()
          .meta(about('File mode of a Unix socket, as chmod takes it: "0600" (the default) or "0660".')),
      })
      .strict()
      .superRefine((admin, ctx) => {
        if (admin.mode !== undefined && !admin.listen.startsWith("unix:")) {
          ctx.addIssue({ code: "custom", path: ["mode"], message: 'applies to a "unix:" listen address only' });
        }
        if (admin.allow !== undefined && admin.listen.startsWith("unix:")) {
          ctx.addIssue({
            code: "custom",
            path: ["allow"],
            message: "applies to a TCP listen address only: a Unix socket's mode decides who may connect",
          });
        }
      })
      .optional()
      .meta(
        about("Optional HTTP endpoint: /, /healthz, /status, /metrics, POST /reload, POST /plan. Off when absent."),
      ),
    log: z
      .object({
        level: z
          .enum(LOG_LEVELS)
          .optional()
          .meta(about(`Default ${BUILT_IN_DEFAULTS.logLevel}; --log-level overrides it.`)),
      })
      .strict()
      .optional(),
    shutdownTimeout: duration
      .optional()
      .meta(about("On SIGTERM/SIGINT, how long open bridges may finish.", BUILT_IN_DEFAULTS.shutdownTimeoutMs)),
    workers: z
      .union([z.int().min(1).max(256), z.literal("auto")], { error: 'must be a whole number from 1 to 256 or "auto"' })
      .optional()
      .meta(
        about(
          'Event loops (worker threads) accepting on the same addresses: 1 to 256, or "auto" for the CPUs available. Default 1. More than 1 needs Node.js 22.12 or later on Linux.',
        ),
      ),
    listeners: z.array(listenerSchema).min(1).meta(about("One or more listeners.")),
  })
  .strict();

export type RawConfig = z.infer<typeof configSchema>;
export type RawListener = z.infer<typeof listenerSchema>;
export type RawTarget = z.infer<typeof target>;
export type RawRoute = z.infer<typeof route>;
