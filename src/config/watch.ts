// Watches the config file's path (not its folder) and calls back once per burst of
// changes: in-place writes, editors that save by rename, delete-and-recreate, and a
// Kubernetes ConfigMap's "..data" symlink swap all end up as one call.
import { type FSWatcher, watch } from "chokidar";
import type { Logger } from "../log.ts";

/** Saves come in bursts (truncate, write, chmod, rename): wait for the burst to end. */
const DEBOUNCE_MS = 100;

export interface FileWatch {
  close(): Promise<void>;
}

export function watchConfigFile(path: string, onChange: () => void, log: Logger): FileWatch {
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  const start = (): FSWatcher => {
    const watcher = watch(path, {
      ignoreInitial: true,
      // A write that is still growing is not a save yet.
      awaitWriteFinish: { stabilityThreshold: 50, pollInterval: 10 },
    });
    watcher.on("all", (event) => {
      log.debug({ event, path }, "config file event");
      clearTimeout(timer);
      timer = setTimeout(() => {
        // An unhandled rejection would end the process; a watcher that failed is only a warning.
        renew().catch((error: unknown) => log.warn({ path, error: String(error) }, "watching the config file failed"));
      }, DEBOUNCE_MS);
    });
    watcher.on("error", (error) => log.warn({ path, error: String(error) }, "watching the config file failed"));
    return watcher;
  };

  let current = start();
  // Edits made before chokidar is ready go unseen: say when it is (tests wait for this).
  current.on("ready", () => log.debug({ path }, "watching the config file"));

  /**
   * A file deleted and recreated at once often gets its old inode number back; chokidar
   * then takes it for the same file and keeps watching the dead inode, deaf from then on.
   * So each burst ends with a fresh watcher on whatever the path is now, ready before the
   * reload reads the file: a save made meanwhile is either read or heard. The old one is
   * closed first, because chokidar shares one fs.watch per path between its watchers.
   */
  async function renew(): Promise<void> {
    await current.close();
    if (closed) return;
    const next = start();
    current = next;
    await new Promise<void>((resolve) => next.once("ready", () => resolve()));
    if (!closed) onChange();
  }

  return {
    async close() {
      closed = true;
      clearTimeout(timer);
      await current.close();
    },
  };
}
