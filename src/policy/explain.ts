// Why a new connection from one address would be admitted or refused by a listener, from
// the config alone. The verdict is the admission policy's own decide(), asked with no
// open bridges (limits depend on live state and are not evaluated); the details come
// from the same compiled lists and schedule it asks, so explain and admission cannot
// disagree.
import { type Parsed, parseIP } from "../config/address.ts";
import type { Day, ListenerConfig, ScheduleWindow } from "../config/runtime.ts";
import { type ClientAddress, type Match, parseClientAddress } from "./address-match.ts";
import { compilePolicy, type RefusalReason } from "./admission.ts";
import type { Schedule } from "./schedule.ts";

/** An allow or deny entry as written, and the range inside it that holds the client. */
export interface EntryRef {
  readonly rule: string;
  readonly cidr: string;
}

export interface WindowRef {
  /** Position in the schedule's windows. */
  readonly index: number;
  readonly window: ScheduleWindow;
}

export type ScheduleExplanation =
  | { readonly open: true; readonly timezone: string; readonly window: WindowRef }
  | { readonly open: false; readonly timezone: string; readonly nextOpen: number | undefined };

export interface ListenerExplanation {
  readonly listener: string;
  readonly admitted: boolean;
  /** The step that refused; undefined when admitted. Never "limit": limits are not evaluated. */
  readonly refusedBy: RefusalReason | undefined;
  /** The most specific deny entry holding the client, if any. */
  readonly deny: EntryRef | undefined;
  /** The most specific allow entry holding the client, if any. */
  readonly allow: EntryRef | undefined;
  /** False when the listener has no allow list: every address not denied passes that step. */
  readonly allowList: boolean;
  /** Undefined when the listener has no schedule (always open). */
  readonly schedule: ScheduleExplanation | undefined;
}

const NO_OPEN_BRIDGES = { total: 0, fromClient: 0 };

/** Every step is evaluated, so the output can say what the later ones would do too. */
export function explainListener(config: ListenerConfig, client: ClientAddress, atMs: number): ListenerExplanation {
  const policy = compilePolicy(config);
  const decision = policy.decide(client, atMs, NO_OPEN_BRIDGES);
  return {
    listener: config.name,
    admitted: decision.admit,
    refusedBy: decision.admit ? undefined : decision.reason,
    deny: ref(policy.deny?.match(client)),
    allow: ref(policy.allow?.match(client)),
    allowList: policy.allow !== undefined,
    schedule: config.schedule && explainSchedule(config.schedule, policy.schedule, atMs),
  };
}

function ref(match: Match | undefined): EntryRef | undefined {
  return match && { rule: match.rule, cidr: match.cidr };
}

function explainSchedule(
  config: NonNullable<ListenerConfig["schedule"]>,
  schedule: Schedule | undefined,
  atMs: number,
): ScheduleExplanation | undefined {
  if (!schedule) return undefined;
  const timezone = config.timezone ?? hostTimeZone();
  const index = schedule.windowAt(atMs);
  const window = index === undefined ? undefined : config.windows[index];
  if (index !== undefined && window) return { open: true, timezone, window: { index, window } };
  return { open: false, timezone, nextOpen: schedule.nextOpening(atMs) };
}

export function hostTimeZone(): string {
  return new Intl.DateTimeFormat().resolvedOptions().timeZone;
}

export interface ExplainedAddress {
  readonly client: ClientAddress;
  /** The address as given was IPv4-mapped IPv6 (::ffff:a.b.c.d): explained as the IPv4 inside. */
  readonly mapped: boolean;
}

/**
 * One client address, read as strictly as the config reads addresses ("010.0.0.1" is
 * refused, not guessed at). A range is not an address: a client has exactly one.
 */
export function parseExplainedAddress(text: string): Parsed<ExplainedAddress> {
  if (text.includes("/")) return { ok: false, error: `"${text}" is a range; give one client address` };
  const ip = parseIP(text);
  if (!ip.ok) return ip;
  const client = parseClientAddress(ip.value.toString());
  if (!client) return { ok: false, error: `"${text}" is not an IP address` };
  return { ok: true, value: { client, mapped: ip.value.kind() === "ipv6" && client.family === 4 } };
}

const INSTANT = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/;

/**
 * An ISO 8601 instant with its UTC offset ("2026-03-29T02:30:00+01:00", "…Z"). A local
 * time without one is refused: around a DST change it names no instant, or two.
 */
export function parseInstant(text: string): Parsed<number> {
  const fail = (why: string): Parsed<number> => ({ ok: false, error: `"${text}" ${why}` });
  const m = INSTANT.exec(text);
  if (!m) {
    return /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?$/.test(text)
      ? fail("has no UTC offset: add Z or one such as +01:00 (a local time is ambiguous when the clocks change)")
      : fail('is not an ISO 8601 time such as "2026-03-29T02:30:00+01:00" or "2026-03-29T01:30:00Z"');
  }
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map((part) => Number(part ?? 0)) as number[];
  const fraction = Number(m[7] ?? 0);
  const offsetText = m[8] ?? "Z";
  if ((month ?? 0) < 1 || (month ?? 0) > 12) return fail("has no such month");
  const daysInMonth = new Date(Date.UTC(2000 + ((year ?? 0) % 400), month ?? 0, 0)).getUTCDate();
  if ((day ?? 0) < 1 || (day ?? 0) > daysInMonth) return fail("has no such day");
  if ((hour ?? 0) > 23 || (minute ?? 0) > 59 || (second ?? 0) > 59) return fail("has no such time of day");
  const offsetMinutes =
    offsetText === "Z"
      ? 0
      : (offsetText.startsWith("-") ? -1 : 1) * (Number(offsetText.slice(1, 3)) * 60 + Number(offsetText.slice(4, 6)));
  if (Math.abs(offsetMinutes) > 18 * 60 || Number(offsetText.slice(4, 6)) > 59) return fail("has no such UTC offset");
  // setUTCFullYear, not Date.UTC: that one reads years 0-99 as 1900-1999.
  const utc = new Date(0);
  utc.setUTCFullYear(year ?? 0, (month ?? 1) - 1, day ?? 1);
  utc.setUTCHours(hour ?? 0, minute ?? 0, second ?? 0, Math.floor(fraction * 1000));
  return { ok: true, value: utc.getTime() - offsetMinutes * 60_000 };
}

/** "2026-03-29T07:00:00+02:00": an instant on the wall clock of a zone, with its offset. */
export function formatInZone(ms: number, timeZone: string): string {
  const parts: Record<string, string> = {};
  const format = new Intl.DateTimeFormat("en-US", {
    timeZone,
    hourCycle: "h23",
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
    timeZoneName: "longOffset",
  });
  for (const part of format.formatToParts(ms)) parts[part.type] = part.value;
  // "GMT+02:00", or "GMT" for a zero offset.
  const offset = (parts.timeZoneName ?? "GMT").replace(/^GMT/, "") || "+00:00";
  return `${parts.year}-${parts.month}-${parts.day}T${parts.hour}:${parts.minute}:${parts.second}${offset}`;
}

const DAY_ORDER: readonly Day[] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/** "mon-fri 07:00-19:00", "every day 22:00-06:00": a window as an operator writes it. */
export function describeWindow(window: ScheduleWindow): string {
  return `${window.days ? dayRanges(window.days) : "every day"} ${window.from}-${window.to}`;
}

/** [mon, tue, wed, fri] → "mon-wed,fri": runs of three or more days as ranges. */
function dayRanges(days: readonly Day[]): string {
  const runs: Day[][] = [];
  for (const day of DAY_ORDER.filter((d) => days.includes(d))) {
    const run = runs.at(-1);
    const last = run?.at(-1);
    if (run && last && DAY_ORDER.indexOf(day) === DAY_ORDER.indexOf(last) + 1) run.push(day);
    else runs.push([day]);
  }
  return runs.map((run) => (run.length >= 3 ? `${run[0]}-${run.at(-1)}` : run.join(","))).join(",");
}
