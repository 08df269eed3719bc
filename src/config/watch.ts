// Watches the config file's path (not its folder) and calls back once per burst of
// changes: in-place writes, editors that save by rename, delete-and-recreate, and a
// Kubernetes ConfigMap's "..data" symlink swap all end up as one call.
import { watch } from "chokidar";
import type { Logger } from "../log.ts";

/** Saves come in bursts (truncate, write, chmod, rename): wait for the burst to end. */
const DEBOUNCE_MS = 100;

export interface FileWatch {
  close(): Promise<void>;
}

export function watchConfigFile(path: string, onChange: () => void, log: Logger): FileWatch {
  let timer: NodeJS.Timeout | undefined;
  const watcher = watch(path, {
    ignoreInitial: true,
    // A write that is still growing is not a save yet.
    awaitWriteFinish: { stabilityThreshold: 50, pollInterval: 10 },
  });
  watcher.on("all", (event) => {
    log.debug({ event, path }, "config file event");
    clearTimeout(timer);
    timer = setTimeout(onChange, DEBOUNCE_MS);
  });
  // Edits made before chokidar is ready go unseen: say when it is (tests wait for this).
  watcher.on("ready", () => log.debug({ path }, "watching the config file"));
  watcher.on("error", (error) => log.warn({ path, error: String(error) }, "watching the config file failed"));
  return {
    async close() {
      clearTimeout(timer);
      await watcher.close();
    },
  };
}
