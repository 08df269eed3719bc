// Every directory entry a config path goes through on its way to the file: each symlink
// followed (a Kubernetes "..data", a release "current", the path itself) and the file at
// the end. Replacing any one of them replaces the config, so the watcher listens in the
// folders that hold them and the safety check asks who may write those folders.
import { lstat, readlink } from "node:fs/promises";
import { basename, dirname, isAbsolute, join, sep } from "node:path";

/** Linux gives up after 40 links (ELOOP); so does this walk. */
const MAX_LINKS = 40;

export interface PathChain {
  /** Absolute paths of the symlinks followed, in order; their folders hold no further links. */
  readonly links: readonly string[];
  /** The file the path ends at, or undefined when some part of it does not exist (yet). */
  readonly target: string | undefined;
  /** Where the walk stopped: the file, or the first missing entry (its folder exists). */
  readonly last: string;
}

/** Follows path one component at a time, like the kernel does, noting each link. */
export async function resolveChain(path: string): Promise<PathChain> {
  const links: string[] = [];
  // Not path.resolve: it folds "link/.." away as text, where the kernel follows the link first.
  const pending = components(isAbsolute(path) ? path : `${process.cwd()}${sep}${path}`);
  let current: string = sep;
  while (pending.length > 0) {
    const part = pending.shift() as string;
    if (part === "." || part === "") continue;
    if (part === "..") {
      current = dirname(current);
      continue;
    }
    const next = join(current, part);
    let stats: Awaited<ReturnType<typeof lstat>>;
    try {
      stats = await lstat(next);
    } catch {
      return { links, target: undefined, last: next };
    }
    if (!stats.isSymbolicLink()) {
      current = next;
      continue;
    }
    links.push(next);
    if (links.length > MAX_LINKS) throw new Error(`${path}: more than ${MAX_LINKS} symlinks on the way to the file`);
    const target = await readlink(next);
    if (isAbsolute(target)) current = sep;
    pending.unshift(...components(target));
  }
  return { links, target: current, last: current };
}

/** The folders holding each link and the last entry: where a replacement would happen. */
export function foldersOf(chain: PathChain): string[] {
  return [...new Set([...chain.links, chain.last].map(dirname))];
}

/** The names, per folder, whose change means the config may have changed. */
export function namesByFolder(chain: PathChain): Map<string, Set<string>> {
  const names = new Map<string, Set<string>>();
  for (const entry of [...chain.links, chain.last]) {
    const folder = dirname(entry);
    names.set(folder, (names.get(folder) ?? new Set()).add(basename(entry)));
  }
  return names;
}

function components(path: string): string[] {
  return path.split(sep).filter((part) => part !== "");
}
