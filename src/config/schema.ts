// The one source of truth for proxy.yaml. Types are inferred from it, the JSON Schema
// in schemas/ is generated from it (npm run schema), and every check that can be said
// about a single value lives here so its error carries the value's key path.
import { z } from "zod";
import { type Parsed, parseCidr, parseListenAddress, parseTargetAddress } from "./address.ts";
import { DURATION_PATTERN, parseDuration } from "./duration.ts";

function checked(parse: (text: string) => Parsed<unknown>) {
  return z.string().superRefine((text, ctx) => {
    const result = parse(text);
    if (!result.ok) ctx.addIssue({ code: "custom", message: result.error });
  });
}

const duration = checked(parseDuration).meta({
  description: "A duration: a whole number and a unit (ms, s, m, h, d), e.g. 500ms, 5s, 15m, 8h, 1d.",
  pattern: DURATION_PATTERN,
});

const listenAddress = checked(parseListenAddress).meta({
  description: '"ip:port", "[ipv6]:port" or ":port" (all interfaces).',
});

const positiveInt = z.int().positive().max(10_000_000);

export const ACL_NAME = /^[A-Za-z_][A-Za-z0-9_-]*$/;
export const LISTENER_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

/** Addresses start with a digit or hold a colon; anything else in a rule list names an acl. */
export function isAclReference(entry: string): boolean {
  return !entry.includes(":") && !/^[0-9]/.test(entry);
}

const cidr = checked(parseCidr).meta({ description: 'A CIDR ("10.0.0.0/8") or a single address.' });

const ruleEntry = z
  .string()
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

export const DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"] as const;

const clock = z
  .string()
  .regex(/^(?:[01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$/, { error: 'must be a time "HH:MM" from "00:00" to "24:00"' });

const window = z
  .object({
    days: z.array(z.enum(DAYS)).min(1).optional(),
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
    windows: z.array(window).min(1),
  })
  .strict();

const target = z.union([
  checked(parseTargetAddress).meta({ description: '"host:port" or "[ipv6]:port".' }),
  z
    .object({
      address: checked(parseTargetAddress),
      weight: z.int().min(1).max(1000).optional().meta({ description: "Relative share of new bridges. Default 1." }),
    })
    .strict(),
]);

const healthCheck = z
  .object({
    interval: duration.optional(),
    timeout: duration.optional(),
    fall: positiveInt.optional(),
    rise: positiveInt.optional(),
  })
  .strict();

/** Settings a listener inherits from `defaults` unless it sets its own. */
const inheritable = {
  connectTimeout: duration.optional(),
  idleTimeout: duration.optional(),
  maxDuration: duration.optional(),
  halfCloseTimeout: duration.optional(),
  maxConnections: positiveInt.optional(),
  maxConnectionsPerClient: positiveInt.optional(),
};

export const BALANCE = ["round-robin", "least-connections", "random", "source-hash"] as const;

const listener = z
  .object({
    name: z.string().regex(LISTENER_NAME, {
      error: "must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
    }),
    listen: listenAddress,
    targets: z.array(target).min(1),
    balance: z.enum(BALANCE).optional(),
    allow: ruleList.optional(),
    deny: ruleList.optional(),
    schedule: schedule.optional(),
    ...inheritable,
    healthCheck: healthCheck.optional(),
    proxyProtocol: z.enum(["v1", "v2"]).optional(),
    inspect: z.boolean().optional(),
  })
  .strict();

export const LOG_LEVELS = ["trace", "debug", "info", "warn", "error"] as const;

export const configSchema = z
  .object({
    version: z.literal(1),
    acls: z.record(z.string().regex(ACL_NAME), z.array(cidr)).optional(),
    defaults: z.object(inheritable).strict().optional(),
    admin: z.object({ listen: listenAddress, allow: ruleList.optional() }).strict().optional(),
    log: z
      .object({ level: z.enum(LOG_LEVELS).optional() })
      .strict()
      .optional(),
    shutdownTimeout: duration.optional(),
    listeners: z.array(listener).min(1),
  })
  .strict();

export type RawConfig = z.infer<typeof configSchema>;
export type RawListener = z.infer<typeof listener>;
export type RawTarget = z.infer<typeof target>;
