// A fresh clone of this repository, as a new user gets it, for tests of first contact
// (the README's quick start, the npm package).
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT } from "./cli.ts";

export interface Clone {
  /** A temporary folder; the clone is `dir/tcpgate`, the rest of `dir` is the test's. */
  readonly dir: string;
  readonly path: string;
  remove(): void;
}

/**
 * Clones the repository into a temporary folder, checked out at the working tree's tracked
 * files as they are now (committed or not, so a test sees the change being made; untracked
 * files are left out, as a clone would leave them out). No node_modules, no dist/.
 */
export function cloneRepository(): Clone {
  const git = (args: string[], cwd = ROOT) => execFileSync("git", args, { cwd, encoding: "utf8" }).trim();
  // `stash create` records uncommitted changes as a commit without touching the working
  // tree or the stash list; it prints nothing when there are none.
  const commit = git(["stash", "create"]) || git(["rev-parse", "HEAD"]);
  const dir = mkdtempSync(join(tmpdir(), "tcpgate-clone-"));
  const path = join(dir, "tcpgate");
  try {
    // --shared borrows the objects, so the unreferenced stash commit is there to check out.
    git(["clone", "--quiet", "--shared", "--no-checkout", ROOT, path], dir);
    git(["checkout", "--quiet", "--detach", commit], path);
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  return { dir, path, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** The environment for npm in a clone: no npm_* variables of the `npm test` around us, no network. */
export function npmEnv(): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.toLowerCase().startsWith("npm_")));
  return {
    ...env,
    // Everything comes from the npm cache, so the tests talk to no registry.
    npm_config_offline: "true",
    npm_config_audit: "false",
    npm_config_fund: "false",
    npm_config_update_notifier: "false",
  };
}
