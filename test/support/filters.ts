// Filter modules written by a test: a private folder of ES modules for configs to name.
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface ModuleFolder {
  readonly dir: string;
  /** Writes (or rewrites) a module; returns its absolute path. Mode 0644 unless given. */
  write(name: string, source: string, mode?: number): string;
  remove(): void;
}

export function moduleFolder(dir = mkdtempSync(join(tmpdir(), "tcpgate-filters-"))): ModuleFolder {
  return {
    dir,
    write(name, source, mode = 0o644) {
      const path = join(dir, name);
      writeFileSync(path, source);
      // Whatever the umask, and on a rewrite too: tcpgate checks the mode of what it loads.
      chmodSync(path, mode);
      return path;
    },
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** A listener's `filter:` value for a config line, as a YAML flow map. */
export function filterSetting(module: string, options?: unknown): string {
  const opts = options === undefined ? "" : `, options: ${JSON.stringify(options)}`;
  return `{module: ${JSON.stringify(module)}${opts}}`;
}

/** Modules the tests share: each is the whole file's text. */
export const MODULES = {
  identity: "export default () => ({ up: (chunk) => chunk, down: (chunk) => chunk });\n",
  identityAsync: "export default () => ({ up: async (chunk) => chunk, down: (chunk) => Promise.resolve(chunk) });\n",
  /** Up: upper case. Down: ROT13 on letters. Both work byte by byte, so chunking cannot show. */
  caseAndRot13: `const rot13 = (b) => (b >= 65 && b <= 90 ? ((b - 52) % 26) + 65 : b >= 97 && b <= 122 ? ((b - 84) % 26) + 97 : b);
export default () => ({
  up: (chunk) => Buffer.from(chunk.toString("latin1").toUpperCase(), "latin1"),
  down: (chunk) => chunk.map(rot13),
});
`,
} as const;
