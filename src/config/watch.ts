// Watches the config file and calls back once per burst of changes, whichever way the file
// was replaced: in-place writes, editors that save by rename, delete-and-recreate, a
// Kubernetes ConfigMap's "..data" swap (old version's folder kept or not), a symlink
// re-pointed, a release folder's "current" link moved.
//
// A watch on the path alone sees none of the symlink swaps while the old file lives on:
// the old file does not change. So the watcher listens in every folder that holds an entry
// the path goes through (each symlink, and the file it ends at), re-resolves the path
// after every burst, and moves its watches to where the path leads now. A stat of the
// resolved file four times a second is the backstop for whatever no folder event reports (a
// folder higher up renamed, a network file system that sends no events).
import { type FSWatcher, watch } from "node:fs";
import { stat } from "node:fs/promises";
import { resolve } from "node:path";
import type { Logger } from "../log.ts";
import { namesByFolder, type PathChain, resolveChain } from "./path-chain.ts";

/** Saves come in bursts (truncate, write, chmod, rename): wait for the burst to end. */
const DEBOUNCE_MS = 100;

/**
 * The backstop's period. A few lstat calls each time, so it can be short enough that a
 * change only it sees still applies within a second, debounce and reload included.
 */
const POLL_MS = 250;

export interface FileWatch {
  close(): Promise<void>;
}

export function watchConfigFile(path: string, onChange: () => void, log: Logger): FileWatch {
  /** One fs.watch per folder, keyed by folder and inode: a folder recreated at the same path is a new folder. */
  const watchers = new Map<string, FSWatcher>();
  /** Per folder, the entry names whose change may change the config. */
  let relevant = new Map<string, Set<string>>();
  /** What the path led to when last resolved. */
  let seen: string | undefined;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  /** A burst is being waited out or settled: the backstop has nothing to add. */
  let busy = false;
  // Resolving and re-watching is async: one at a time, in order.
  let queue = Promise.resolve();
  const serially = (task: () => Promise<void>) => {
    queue = queue
      .then(task)
      // An unhandled rejection would end the process; a watcher that failed is only a warning.
      .catch((error: unknown) => log.warn({ path, error: String(error) }, "watching the config file failed"));
  };

  const burst = () => {
    busy = true;
    clearTimeout(timer);
    timer = setTimeout(() => serially(settle), DEBOUNCE_MS);
  };

  /**
   * The end of a burst: follow the path to where it leads now, watch the folders on the
   * way, then call back. Watching first means a save made meanwhile is either read by the
   * reload or heard and reloaded after it.
   */
  async function settle(): Promise<void> {
    try {
      await follow();
      if (!closed) onChange();
    } finally {
      busy = false;
    }
  }

  async function follow(): Promise<void> {
    const chain = await chainOf(path);
    if (closed) return;
    relevant = namesByFolder(chain);
    const wanted = new Map<string, string>();
    for (const folder of relevant.keys()) {
      const folderStats = await stat(folder).catch(() => undefined);
      if (folderStats) wanted.set(`${folder}\0${folderStats.dev}:${folderStats.ino}`, folder);
    }
    if (closed) return;
    for (const [key, watcher] of watchers) {
      if (!wanted.has(key)) {
        watcher.close();
        watchers.delete(key);
      }
    }
    for (const [key, folder] of wanted) {
      if (!watchers.has(key)) watchers.set(key, watchFolder(folder));
    }
    seen = await identity(chain);
  }

  function watchFolder(folder: string): FSWatcher {
    const watcher = watch(folder, { persistent: false }, (event, name) => {
      if (name !== null && !relevant.get(folder)?.has(name)) return;
      log.debug({ event, path, entry: name === null ? folder : `${folder}/${name}` }, "config file event");
      burst();
    });
    // A folder that vanished: the path leads elsewhere now, or nowhere for a while.
    watcher.on("error", (error) => {
      log.debug({ path, folder, error: String(error) }, "config file event");
      watcher.close();
      for (const [key, w] of watchers) if (w === watcher) watchers.delete(key);
      burst();
    });
    return watcher;
  }

  /** The backstop: what the path leads to, compared with what it led to when last followed. */
  const poll = setInterval(() => {
    if (busy) return;
    serially(async () => {
      const now = await identity(await chainOf(path));
      if (closed || busy || now === seen) return;
      log.debug({ path, was: seen, now }, "config file changed (seen by stat)");
      seen = now;
      burst();
    });
  }, POLL_MS);
  poll.unref();

  serially(async () => {
    await follow();
    // Edits made before this go unseen: say when watching starts (tests wait for this).
    log.debug({ path, folders: [...relevant.keys()] }, "watching the config file");
  });

  return {
    async close() {
      closed = true;
      clearTimeout(timer);
      clearInterval(poll);
      await queue;
      for (const watcher of watchers.values()) watcher.close();
      watchers.clear();
    },
  };
}

/** A path with a symlink loop resolves nowhere: watch where it starts until it is fixed. */
async function chainOf(path: string): Promise<PathChain> {
  try {
    return await resolveChain(path);
  } catch {
    return { links: [], target: undefined, last: resolve(path) };
  }
}

/** Where the path leads and which file is there: any replacement or write changes it. */
async function identity(chain: PathChain): Promise<string> {
  if (chain.target === undefined) return `missing ${chain.last}`;
  const target = chain.target;
  const s = await stat(target).catch(() => undefined);
  if (!s) return `missing ${target}`;
  return `${target} ${s.dev}:${s.ino} ${s.size} ${s.mtimeMs} ${s.ctimeMs}`;
}
