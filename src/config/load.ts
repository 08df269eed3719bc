// From bytes on disk to a RuntimeConfig, or to every error in the file, each on one line
// that names its place: "proxy.yaml:14:7: listeners[1].allow[0]: ...".
import { createHash } from "node:crypto";
import { constants } from "node:fs";
import { open } from "node:fs/promises";
import type { z } from "zod";
import { workersUnsupported } from "../workers/support.ts";
import { crossFieldIssues } from "./checks.ts";
import { count, describe } from "./describe.ts";
import { unsafeConfigReason } from "./file-safety.ts";
import { type FilterLoadOptions, loadFilters } from "./filter-load.ts";
import { normalise, type RuntimeConfig } from "./runtime.ts";
import { configSchema } from "./schema.ts";
import { closest } from "./suggest.ts";
import { formatPath, type KeyPath, readYaml, type SourceIssue, type YamlSource } from "./yaml-source.ts";

/** A config is a page of rules, not data: anything larger is a mistake or an attack. */
export const MAX_CONFIG_BYTES = 1024 * 1024;

/** source: where each key is written, for warnings about a valid config (lint.ts). */
export type LoadResult =
  | { ok: true; config: RuntimeConfig; sha256: string; source: YamlSource }
  | { ok: false; errors: string[] };

/**
 * Reads and validates one config file. Messages name the file as given, so
 * "configs/proxy.yaml:14:7" is a place an editor or terminal can jump to.
 */
export interface LoadOptions {
  /** Skip the ownership and permission check (--insecure-config). */
  readonly insecure?: boolean;
  /** Leave filter modules unloaded: `tcpgate plan` checks the file, the instance loads them. */
  readonly skipFilters?: boolean;
}

export async function loadConfigFile(path: string, options: LoadOptions = {}): Promise<LoadResult> {
  let bytes: Buffer;
  try {
    // Non-blocking, so that opening a FIFO returns at once instead of waiting for a writer.
    const handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
    try {
      const stats = await handle.stat();
      if (stats.isDirectory()) return { ok: false, errors: [`${path}: cannot read the config: it is a directory`] };
      // A FIFO or a device would block the read, or never end it (and a reload with it).
      if (!stats.isFile()) return { ok: false, errors: [`${path}: cannot read the config: not a regular file`] };
      const unsafe = options.insecure ? undefined : await unsafeConfigReason(path, stats);
      if (unsafe) return { ok: false, errors: [`${path}: ${unsafe} (or start with --insecure-config)`] };
      // Read one byte past the cap to tell "exactly at the cap" from "too large".
      const buffer = Buffer.alloc(MAX_CONFIG_BYTES + 1);
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
      bytes = buffer.subarray(0, bytesRead);
    } finally {
      await handle.close();
    }
  } catch (error) {
    return { ok: false, errors: [`${path}: cannot read the config: ${readFailure(error)}`] };
  }
  const parsed = parseConfig(bytes, path);
  return parsed.ok && !options.skipFilters ? withFilters(parsed, path, options) : parsed;
}

function readFailure(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  const reasons: Record<string, string> = {
    ENOENT: "no such file",
    EACCES: "permission denied",
    EISDIR: "it is a directory",
  };
  return (code && reasons[code]) ?? (error instanceof Error ? error.message : String(error));
}

const sources = new WeakMap<RuntimeConfig, { readonly text: string; readonly file: string }>();

/** The text a config was parsed from and the file it names: each worker parses it again. */
export function configSource(config: RuntimeConfig): { readonly text: string; readonly file: string } | undefined {
  return sources.get(config);
}

/**
 * Loads the filter modules a parsed config names (config/filter-load.ts). The config that
 * comes out is a new object: it keeps the text it was parsed from, for the workers.
 */
export async function withFilters(
  result: LoadResult & { ok: true },
  file: string,
  options: FilterLoadOptions = {},
): Promise<LoadResult> {
  const loaded = await loadFilters(result, file, options);
  const source = sources.get(result.config);
  if (loaded.ok && source) sources.set(loaded.config, source);
  return loaded;
}

export function parseConfig(bytes: Uint8Array | string, file: string): LoadResult {
  const result = parse(bytes, file);
  return result.ok ? result : { ok: false, errors: result.errors.map(oneLine) };
}

/**
 * Messages quote what the file says, and a key or value may hold a newline or a terminal
 * escape: each error must stay one line, and print as text, not as commands to a terminal.
 */
function oneLine(message: string): string {
  return message.replace(/[\p{Cc}\u2028\u2029]/gu, (c) => {
    const named: Record<string, string> = { "\n": "\\n", "\r": "\\r", "\t": "\\t" };
    return named[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`;
  });
}

function parse(bytes: Uint8Array | string, file: string): LoadResult {
  const size = typeof bytes === "string" ? Buffer.byteLength(bytes) : bytes.length;
  if (size > MAX_CONFIG_BYTES) {
    return { ok: false, errors: [`${file}: the file is larger than ${MAX_CONFIG_BYTES / 1024 / 1024} MiB`] };
  }
  let text: string;
  try {
    text = typeof bytes === "string" ? bytes : new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return { ok: false, errors: [`${file}: the file is not valid UTF-8`] };
  }
  if (text.includes("\u0000")) return { ok: false, errors: [`${file}: the file contains NUL bytes`] };
  const sha256 = createHash("sha256").update(text).digest("hex");

  const yaml = readYaml(text, file);
  if (!yaml.ok) return yaml;
  const { source } = yaml;

  const parsed = configSchema.safeParse(source.data);
  const issues: SourceIssue[] = [
    ...(parsed.success ? [] : parsed.error.issues.flatMap((issue) => fromZod(issue, [], source.data))),
    ...crossFieldIssues(source.data),
  ];
  if (issues.length > 0) return { ok: false, errors: render(issues, source) };
  if (!parsed.success) return { ok: false, errors: [`${file}: invalid config`] };
  const config = normalise(parsed.data);
  const unsupported = workersUnsupported(config.workers);
  if (unsupported) return { ok: false, errors: [`${file}: ${unsupported}`] };
  sources.set(config, { text, file });
  return { ok: true, config, sha256, source };
}

function render(issues: SourceIssue[], source: YamlSource): string[] {
  const lines = issues.map((issue) => {
    const where = source.position(issue.path, issue.atKey);
    const path = formatPath(issue.path);
    return { where, text: `${where}: ${path === "" ? "" : `${path}: `}${issue.message}` };
  });
  const order = (where: string) => where.split(":").slice(-2).map(Number) as [number, number];
  lines.sort((a, b) => {
    const [la, ca] = order(a.where);
    const [lb, cb] = order(b.where);
    return la - lb || ca - cb;
  });
  return [...new Set(lines.map((l) => l.text))];
}

type ZodIssue = z.core.$ZodIssue;

/** Turns one zod issue into issues an operator can act on, each with a full key path. */
function fromZod(issue: ZodIssue, prefix: KeyPath, data: unknown): SourceIssue[] {
  const path = [...prefix, ...issue.path];
  const value = valueAt(data, path);
  switch (issue.code) {
    case "unrecognized_keys":
      return issue.keys.map((key) => ({ path: [...path, key], message: unknownKey(key, path), atKey: true }));
    case "invalid_union":
      return fromUnion(issue, path, data);
    case "invalid_key":
      // The key itself is wrong (e.g. an acl name): point at it, with the key's own message.
      return issue.issues.map((inner) => ({ path, message: inner.message, atKey: true }));
    case "invalid_type":
      if (value === undefined) return [{ path, message: "is required" }];
      if (!isDefaultMessage(issue.message)) return [{ path, message: issue.message }];
      return [{ path, message: `must be ${article(issue.expected)}, not ${describe(value)}` }];
    case "invalid_value":
      if (value === undefined) return [{ path, message: "is required" }];
      return [{ path, message: `must be ${oneOf(issue.values)}, not ${describe(value)}` }];
    case "too_small":
      return [{ path, message: tooSmall(issue) }];
    case "too_big":
      return [{ path, message: tooBig(issue) }];
    default:
      return [{ path, message: issue.message.replace(/^Invalid input: /, "") }];
  }
}

/** zod's own wording ("Invalid input: expected string, received number"), not one our schema set. */
function isDefaultMessage(message: string): boolean {
  return message.startsWith("Invalid input");
}

function oneOf(values: readonly unknown[]): string {
  const shown = values.map((v) => JSON.stringify(v));
  return shown.length === 1 ? (shown[0] ?? "") : `one of ${shown.join(", ")}`;
}

function tooSmall(issue: ZodIssue & { code: "too_small" }): string {
  const min = Number(issue.minimum);
  if (issue.origin === "array") return `must have at least ${count(min, "entry", "entries")}`;
  if (issue.origin === "string") return min === 1 ? "must not be empty" : `must be at least ${min} characters long`;
  return issue.inclusive === false ? `must be more than ${min}` : `must be at least ${min}`;
}

function tooBig(issue: ZodIssue & { code: "too_big" }): string {
  const max = Number(issue.maximum);
  if (issue.origin === "array") return `must have at most ${count(max, "entry", "entries")}`;
  if (issue.origin === "string") return `must be at most ${max} characters long`;
  return issue.inclusive === false ? `must be less than ${max}` : `must be at most ${max}`;
}

/**
 * Report the branch the value was meant for: an object for the object form, and so on.
 * A value no branch takes at all (a number for a target, `proxyProtocol: v3`) gets the
 * union's own message, which names every form the value may take.
 */
function fromUnion(issue: ZodIssue & { code: "invalid_union" }, path: KeyPath, data: unknown): SourceIssue[] {
  const refusedWhole = (errors: readonly ZodIssue[]) =>
    errors.some((e) => e.path.length === 0 && (e.code === "invalid_type" || e.code === "invalid_value"));
  const branch = issue.errors.find((errors) => !refusedWhole(errors));
  if (branch) return branch.flatMap((e) => fromZod(e, path, data));
  return [{ path, message: `${issue.message}, not ${describe(valueAt(data, path))}` }];
}

function valueAt(data: unknown, path: KeyPath): unknown {
  let value = data;
  for (const segment of path) {
    if (value === null || typeof value !== "object") return undefined;
    value = (value as Record<PropertyKey, unknown>)[segment];
  }
  return value;
}

function article(expected: string): string {
  const names: Record<string, string> = {
    object: "a map",
    array: "a list",
    string: "a string",
    number: "a number",
    int: "a whole number",
    boolean: "true or false",
  };
  return names[expected] ?? expected;
}

function unknownKey(key: string, mapPath: KeyPath): string {
  // The core schema has no merge keys, so "<<" arrives as a plain key.
  if (key === "<<") return `unknown key "<<" (YAML merge keys are not supported; write the keys out)`;
  const guess = closest(key, keysAt(configSchema, mapPath)) ?? oneLevelDown(key, mapPath);
  return guess ? `unknown key "${key}" (did you mean ${guess}?)` : `unknown key "${key}"`;
}

/**
 * A key written one level too high: "maxConnections" at the top belongs in defaults,
 * "timezone" in a listener belongs in its schedule. Suggested with its parent,
 * "defaults.maxConnections"; "loglevel" finds "log.level" too.
 */
function oneLevelDown(key: string, mapPath: KeyPath): string | undefined {
  for (const parent of keysAt(configSchema, mapPath)) {
    const path = [...mapPath, parent];
    if (!nodesAt(configSchema, path).some((node) => defOf(node).type === "object")) continue;
    const spelled = new Map<string, string>();
    for (const child of keysAt(configSchema, path)) {
      for (const form of [child, `${parent}.${child}`, `${parent}${child}`]) spelled.set(form, `${parent}.${child}`);
    }
    const guess = closest(key, [...spelled.keys()]);
    if (guess) return spelled.get(guess);
  }
  return undefined;
}

type Schema = z.core.$ZodType;

function defOf(schema: Schema): Record<string, unknown> {
  // Reads zod's definition tree; only the node kinds our schema uses matter here.
  return schema._zod.def as unknown as Record<string, unknown>;
}

/** The schemas a value may have once optional and union wrappers are looked through. */
function unwrap(schema: Schema): Schema[] {
  const def = defOf(schema);
  if (def.type === "optional" || def.type === "default" || def.type === "nullable") {
    return unwrap(def.innerType as Schema);
  }
  if (def.type === "union") return (def.options as Schema[]).flatMap(unwrap);
  return [schema];
}

/** The schemas of the value at path: through objects by key, lists and records by their items. */
function nodesAt(root: Schema, path: KeyPath): Schema[] {
  let nodes = unwrap(root);
  for (const segment of path) {
    nodes = nodes.flatMap((node) => {
      const def = defOf(node);
      if (def.type === "object") {
        const child = (def.shape as Record<string, Schema>)[String(segment)];
        return child ? unwrap(child) : [];
      }
      if (def.type === "array") return unwrap(def.element as Schema);
      if (def.type === "record") return unwrap(def.valueType as Schema);
      return [];
    });
  }
  return nodes;
}

/** Keys a map at path may hold: the suggestions for a typo there come from these only. */
function keysAt(root: Schema, path: KeyPath): string[] {
  return nodesAt(root, path).flatMap((node) => {
    const def = defOf(node);
    return def.type === "object" ? Object.keys(def.shape as Record<string, Schema>) : [];
  });
}
