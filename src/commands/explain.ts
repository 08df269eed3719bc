// `tcpgate explain`: would a new connection from this address be admitted, listener by
// listener, and which entry or window decided. Offline: the config file alone.
import { parseArgs } from "node:util";
import { loadConfigFile } from "../config/load.ts";
import { describeMatch } from "../policy/admission.ts";
import {
  describeWindow,
  type EntryRef,
  type ExplainedAddress,
  explainListener,
  formatInZone,
  type ListenerExplanation,
  parseExplainedAddress,
  parseInstant,
  type ScheduleExplanation,
} from "../policy/explain.ts";
import { UsageError } from "./usage-error.ts";

export const EXPLAIN_USAGE =
  "tcpgate explain --config <file> <client-address> [--listener <name>] [--at <ISO 8601 time>] [--json]";

const USAGE = `Usage:
  ${EXPLAIN_USAGE}

Would a new connection from <client-address> be admitted, by each listener (or the one
named), and which allow/deny entry or schedule window decided. Limits are not evaluated.

Options:
  -c, --config <file>     the YAML config file
      --listener <name>   only this listener
      --at <time>         ISO 8601 with a UTC offset, e.g. 2026-03-29T02:30:00+01:00 (default: now)
      --json              one JSON object instead of text
      --insecure-config   read a config file that others than its owner may write
  -h, --help              print this help`;

/** Exit status: 0 answered (admitted or not), 1 invalid config file; bad usage throws (2). */
export async function runExplain(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      config: { type: "string", short: "c" },
      listener: { type: "string" },
      at: { type: "string" },
      json: { type: "boolean" },
      "insecure-config": { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (values.config === undefined) throw new UsageError("explain needs --config <file>");
  if (positionals.length !== 1) {
    throw new UsageError(
      positionals.length === 0
        ? "explain needs one client address"
        : `explain takes one client address, not ${positionals.length}`,
    );
  }
  const given = positionals[0] ?? "";
  const address = parseExplainedAddress(given);
  if (!address.ok) throw new UsageError(address.error);
  const at = values.at === undefined ? { ok: true as const, value: Date.now() } : parseInstant(values.at);
  if (!at.ok) throw new UsageError(`--at: ${at.error}`);

  const loaded = await loadConfigFile(values.config, { insecure: values["insecure-config"] ?? false });
  if (!loaded.ok) {
    for (const line of loaded.errors) process.stderr.write(`${line}\n`);
    return 1;
  }
  const all = loaded.config.listeners;
  const listeners = values.listener === undefined ? all : all.filter((l) => l.name === values.listener);
  if (listeners.length === 0) {
    const names = all.map((l) => l.name).join(", ");
    throw new UsageError(`no listener named "${values.listener}" in ${values.config} (it has ${names})`);
  }
  const request: Request = { address: address.value, given, atMs: at.value };
  const answers = listeners.map((l) => explainListener(l, address.value.client, at.value));
  process.stdout.write(
    values.json ? `${JSON.stringify(asJson(request, answers), null, 2)}\n` : asText(request, answers),
  );
  return 0;
}

interface Request {
  readonly address: ExplainedAddress;
  readonly given: string;
  readonly atMs: number;
}

function asJson(request: Request, answers: readonly ListenerExplanation[]) {
  const entry = (e: EntryRef | undefined) => (e ? { rule: e.rule, cidr: e.cidr } : null);
  const schedule = (s: ScheduleExplanation | undefined) =>
    s && {
      timezone: s.timezone,
      open: s.open,
      window: s.open ? { index: s.window.index, ...s.window.window, days: s.window.window.days ?? null } : null,
      nextOpen: !s.open && s.nextOpen !== undefined ? formatInZone(s.nextOpen, s.timezone) : null,
    };
  return {
    address: request.given,
    client: request.address.client.text,
    mapped: request.address.mapped,
    at: new Date(request.atMs).toISOString(),
    limits: "not evaluated",
    listeners: answers.map((a) => ({
      listener: a.listener,
      admitted: a.admitted,
      refusedBy: a.refusedBy ?? null,
      deny: entry(a.deny),
      allow: entry(a.allow),
      allowList: a.allowList,
      schedule: schedule(a.schedule) ?? null,
    })),
  };
}

function asText(request: Request, answers: readonly ListenerExplanation[]): string {
  const { client, mapped } = request.address;
  const lines = [
    ...(mapped ? [`${request.given} is IPv4-mapped IPv6: explained as the IPv4 address ${client.text}`] : []),
    `${client.text} at ${new Date(request.atMs).toISOString()}:`,
    ...answers.map((a) => `  ${a.listener}: ${verdict(a)}`),
    "Limits (maxConnections, maxConnectionsPerClient) are not evaluated: they depend on the open bridges.",
  ];
  return `${lines.join("\n")}\n`;
}

/** The verdict, then the steps in admission order up to the one that decided. */
function verdict(a: ListenerExplanation): string {
  const allowed = a.allow ? `allow entry ${describeMatch(a.allow)}` : "no allow list";
  const s = a.schedule;
  switch (a.refusedBy) {
    case "deny":
      return `refused by deny entry ${a.deny ? describeMatch(a.deny) : "?"}`;
    case "allow":
      return "refused: not in allow";
    case "schedule":
      return `refused by schedule: outside every window, ${s && !s.open ? nextWindow(s) : ""}; ${allowed}`;
    default:
      return `admitted: ${allowed}; ${s?.open ? `schedule window ${describeWindow(s.window.window)} (${s.timezone})` : "no schedule"}`;
  }
}

function nextWindow(s: ScheduleExplanation & { open: false }): string {
  return s.nextOpen === undefined
    ? "no window opens within a year"
    : `next opens ${formatInZone(s.nextOpen, s.timezone)} (${s.timezone})`;
}
