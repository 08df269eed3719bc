// Filter modules are part of the config: a reload reads and imports them before it
// commits, so a module that is missing, unsafe, broken or of the wrong shape rejects the
// reload like a config error, and the running config (and its modules) stay.
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { constants } from "node:fs";
import { open } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { unsafeConfigReason } from "./file-safety.ts";
import type { LoadResult } from "./load.ts";
import type { FilterFactory, FilterSetting, ListenerConfig, LoadedFilter, RuntimeConfig } from "./runtime.ts";

/**
 * Importing runs the module's top-level code, which could await forever: a reload (and
 * every reload queued behind it) must not hang on it.
 */
export const MODULE_LOAD_TIMEOUT_MS = 5_000;

type Loaded = { ok: true; loaded: LoadedFilter } | { ok: false; error: string };

export interface FilterLoadOptions {
  /** Skip the ownership and permission check (--insecure-config). */
  readonly insecure?: boolean;
  /**
   * sha256 by module path, as the main thread loaded them: a worker thread must run the
   * very modules the main thread checked, or fail its part of the reload.
   */
  readonly expected?: Readonly<Record<string, string>>;
}

/** The modules a loaded config runs, sha256 by path: what worker threads are told to load. */
export function filterModules(config: RuntimeConfig): Record<string, string> {
  const modules: Record<string, string> = {};
  for (const l of config.listeners) if (l.filter?.loaded) modules[l.filter.loaded.path] = l.filter.loaded.sha256;
  return modules;
}

/**
 * Loads every filter module a config names, each file once however many listeners use it.
 * Module paths are relative to the folder of configPath (for a planned file: the folder of
 * the running config, which it would replace).
 */
export async function loadFilters(
  result: LoadResult & { ok: true },
  configPath: string,
  options: FilterLoadOptions = {},
): Promise<LoadResult> {
  const { config } = result;
  const folder = dirname(configPath);
  const users = new Map<string, ListenerConfig[]>();
  for (const l of config.listeners) {
    if (!l.filter) continue;
    const path = resolve(folder, l.filter.module);
    users.set(path, [...(users.get(path) ?? []), l]);
  }
  if (users.size === 0) return result;

  const paths = [...users.keys()];
  const outcomes = await Promise.all(paths.map((path) => loadModule(path, options)));
  const modules = new Map<string, LoadedFilter>();
  const errors: string[] = [];
  outcomes.forEach((outcome, i) => {
    const path = paths[i] as string;
    if (outcome.ok) modules.set(path, outcome.loaded);
    else {
      const names = (users.get(path) ?? []).map((l) => l.name).join(", ");
      errors.push(oneLine(`${configPath}: filter module ${path} (listener ${names}): ${outcome.error}`));
    }
  });
  if (errors.length > 0) return { ok: false, errors };

  const withModule = (l: ListenerConfig): ListenerConfig => {
    if (!l.filter) return l;
    const loaded = modules.get(resolve(folder, l.filter.module));
    const filter: FilterSetting = Object.freeze({ ...l.filter, loaded });
    return Object.freeze({ ...l, filter });
  };
  return {
    ...result,
    config: Object.freeze({ ...config, listeners: Object.freeze(config.listeners.map(withModule)) }),
  };
}

async function loadModule(path: string, options: FilterLoadOptions): Promise<Loaded> {
  let bytes: Buffer;
  try {
    // As the config is read: non-blocking (a FIFO must not hang the reload), and the file
    // checked is the file read.
    const handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
    try {
      const stats = await handle.stat();
      if (!stats.isFile()) return { ok: false, error: "not a regular file" };
      const unsafe = options.insecure ? undefined : await unsafeConfigReason(path, stats);
      if (unsafe) return { ok: false, error: `${unsafe} (or start with --insecure-config)` };
      bytes = await handle.readFile();
    } finally {
      await handle.close();
    }
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return { ok: false, error: code === "ENOENT" ? "no such file" : errorText(error) };
  }
  const sha256 = createHash("sha256").update(bytes).digest("hex");
  const expected = options.expected?.[path];
  if (options.expected && expected !== sha256) {
    return {
      ok: false,
      error: "its content is not what the main thread loaded: it changed meanwhile (reload to apply the change)",
    };
  }
  // The hash makes a changed file a new URL, so a new module; the same content is the
  // same module, imported once (ES modules cannot be unloaded: each version stays).
  const url = `${pathToFileURL(path).href}?sha256=${sha256}`;
  let namespace: { default?: unknown };
  let timer: NodeJS.Timeout | undefined;
  try {
    namespace = await Promise.race([
      import(url) as Promise<{ default?: unknown }>,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`its top-level code did not finish within ${MODULE_LOAD_TIMEOUT_MS / 1000}s`)),
          MODULE_LOAD_TIMEOUT_MS,
        );
      }),
    ]);
  } catch (error) {
    const line = error instanceof SyntaxError ? await syntaxErrorLine(path) : undefined;
    return { ok: false, error: `${line ? `line ${line}: ` : ""}${errorText(error)}` };
  } finally {
    clearTimeout(timer);
  }
  const create = namespace.default;
  if (typeof create !== "function") {
    const found = create === undefined ? "it has none" : `not ${kindOf(create)}`;
    return { ok: false, error: `its default export must be a function create(options, bridge): ${found}` };
  }
  return { ok: true, loaded: Object.freeze({ path, sha256, create: create as FilterFactory }) };
}

/**
 * import() tells where a syntax error is only on the console of a process that dies of it:
 * `node --check` (run only once a module failed to compile) prints "path:line" first.
 */
async function syntaxErrorLine(path: string): Promise<string | undefined> {
  const output = await new Promise<string>((done) => {
    execFile(process.execPath, ["--check", path], { timeout: MODULE_LOAD_TIMEOUT_MS }, (_error, _out, stderr) =>
      done(String(stderr)),
    );
  });
  return output.startsWith(`${path}:`) ? /^[^\n]*:(\d+)\n/.exec(output)?.[1] : undefined;
}

/** What a filter module threw, on one line: "TypeError: x is not a function", "boom". */
export function errorText(error: unknown): string {
  const text =
    error instanceof Error ? `${error.name === "Error" ? "" : `${error.name}: `}${error.message}` : String(error);
  return oneLine(text);
}

function oneLine(text: string): string {
  return text.replace(/\s*[\r\n]+\s*/g, " ");
}

/** A JavaScript value as a filter's error names it: "undefined", "a string", "number 5". */
export function kindOf(value: unknown): string {
  if (value === undefined || value === null) return String(value);
  if (typeof value === "string") return "a string";
  if (Array.isArray(value)) return "an array";
  if (typeof (value as { then?: unknown }).then === "function") return "a Promise";
  if (typeof value === "object") return "an object";
  return `${typeof value} ${String(value)}`;
}
