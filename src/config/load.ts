// From bytes on disk to a RuntimeConfig, or to every error in the file, each on one line
// that names its place: "proxy.yaml:14:7: listeners[1].allow[0]: ...".
import { createHash } from "node:crypto";
import { open } from "node:fs/promises";
import { basename } from "node:path";
import type { z } from "zod";
import { crossFieldIssues, unsupportedIssues } from "./checks.ts";
import { normalise, type RuntimeConfig } from "./runtime.ts";
import { configSchema } from "./schema.ts";
import { formatPath, type KeyPath, readYaml, type SourceIssue, type YamlSource } from "./yaml-source.ts";

/** A config is a page of rules, not data: anything larger is a mistake or an attack. */
export const MAX_CONFIG_BYTES = 1024 * 1024;

export type LoadResult = { ok: true; config: RuntimeConfig; sha256: string } | { ok: false; errors: string[] };

export async function loadConfigFile(path: string): Promise<LoadResult> {
  const label = basename(path);
  let bytes: Buffer;
  try {
    const handle = await open(path, "r");
    try {
      // Read one byte past the cap to tell "exactly at the cap" from "too large".
      const buffer = Buffer.alloc(MAX_CONFIG_BYTES + 1);
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
      bytes = buffer.subarray(0, bytesRead);
    } finally {
      await handle.close();
    }
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const reason = code === "ENOENT" ? "no such file" : code === "EACCES" ? "permission denied" : String(code ?? error);
    return { ok: false, errors: [`${path}: cannot read the config: ${reason}`] };
  }
  return parseConfig(bytes, label);
}

export function parseConfig(bytes: Uint8Array | string, file: string): LoadResult {
  if (bytes.length > MAX_CONFIG_BYTES) {
    return { ok: false, errors: [`${file}: the file is larger than ${MAX_CONFIG_BYTES / 1024} KiB`] };
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
  const issues: SourceIssue[] = parsed.success
    ? [...crossFieldIssues(parsed.data), ...unsupportedIssues(parsed.data)]
    : parsed.error.issues.flatMap((issue) => fromZod(issue, [], source.data));
  if (issues.length > 0) return { ok: false, errors: render(issues, source) };
  if (!parsed.success) return { ok: false, errors: [`${file}: invalid config`] };
  return { ok: true, config: normalise(parsed.data), sha256 };
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
  switch (issue.code) {
    case "unrecognized_keys":
      return issue.keys.map((key) => ({ path: [...path, key], message: unknownKey(key), atKey: true }));
    case "invalid_union":
      return fromUnion(issue, path, data);
    case "invalid_type":
      if (valueAt(data, path) === undefined) return [{ path, message: "is required" }];
      return [{ path, message: `must be ${article(issue.expected)}, not ${describe(valueAt(data, path))}` }];
    case "invalid_value":
      return [{ path, message: `must be one of ${issue.values.map((v) => JSON.stringify(v)).join(", ")}` }];
    default:
      return [{ path, message: issue.message.replace(/^Invalid input: /, "") }];
  }
}

/** Report the branch the value was meant for: an object for the object form, and so on. */
function fromUnion(issue: ZodIssue & { code: "invalid_union" }, path: KeyPath, data: unknown): SourceIssue[] {
  const branch = issue.errors.find((errors) => !errors.some((e) => e.code === "invalid_type" && e.path.length === 0));
  if (branch) return branch.flatMap((e) => fromZod(e, path, data));
  return [
    { path, message: `must be a "host:port" string or an {address, weight} map, not ${describe(valueAt(data, path))}` },
  ];
}

function valueAt(data: unknown, path: KeyPath): unknown {
  let value = data;
  for (const segment of path) {
    if (value === null || typeof value !== "object") return undefined;
    value = (value as Record<PropertyKey, unknown>)[segment];
  }
  return value;
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "a map";
  if (typeof value === "string") return `the string ${JSON.stringify(value)}`;
  return `${typeof value} ${String(value)}`;
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

const KNOWN_KEYS = collectKeys(configSchema);

function unknownKey(key: string): string {
  const guess = [...KNOWN_KEYS].find((known) => editDistance(known.toLowerCase(), key.toLowerCase()) <= 2);
  return guess ? `unknown key "${key}" (did you mean ${guess}?)` : `unknown key "${key}"`;
}

function collectKeys(schema: z.core.$ZodType, into = new Set<string>()): Set<string> {
  // Reads zod's definition tree; only the node kinds our schema uses matter here.
  const def = schema._zod.def as unknown as Record<string, unknown>;
  if (def.type === "object") {
    for (const [key, child] of Object.entries(def.shape as Record<string, z.core.$ZodType>)) {
      into.add(key);
      collectKeys(child, into);
    }
  }
  for (const field of ["innerType", "element", "valueType"]) {
    if (def[field]) collectKeys(def[field] as z.core.$ZodType, into);
  }
  if (Array.isArray(def.options)) for (const option of def.options) collectKeys(option as z.core.$ZodType, into);
  return into;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0] ?? 0;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j] ?? 0;
      row[j] = Math.min(above + 1, (row[j - 1] ?? 0) + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return row[b.length] ?? 0;
}
