// Strict YAML reading, and the way back from a key path to a line and column.
import { isMap, isPair, isScalar, isSeq, LineCounter, type Node, parseAllDocuments } from "yaml";

export type KeyPath = readonly PropertyKey[];

export interface SourceIssue {
  readonly path: KeyPath;
  readonly message: string;
  /** Point at the key itself rather than its value (unknown keys). */
  readonly atKey?: boolean;
}

export interface YamlSource {
  readonly data: unknown;
  /** "line:col" of the node at path, or of its nearest existing ancestor. */
  position(path: KeyPath, atKey?: boolean): string;
}

export type YamlResult = { ok: true; source: YamlSource } | { ok: false; errors: string[] };

/** Aliases are legitimate for sharing lists, but a few hundred is already abuse. */
const MAX_ALIAS_COUNT = 100;

export function readYaml(text: string, file: string): YamlResult {
  const lines = new LineCounter();
  const documents = parseAllDocuments(text, {
    // The 1.2 core schema only, whatever a %YAML directive says: "NO" stays a string.
    schema: "core",
    version: "1.2",
    uniqueKeys: true,
    strict: true,
    prettyErrors: false,
    lineCounter: lines,
  });
  const at = (offset: number) => {
    const { line, col } = lines.linePos(offset);
    return `${file}:${line}:${col}`;
  };
  if (!Array.isArray(documents) || documents.length === 0) return { ok: false, errors: [`${file}: the file is empty`] };
  if (documents.length > 1) {
    const second = documents[1]?.range[0] ?? 0;
    return { ok: false, errors: [`${at(second)}: only one YAML document is allowed`] };
  }
  const doc = documents[0];
  if (!doc) return { ok: false, errors: [`${file}: the file is empty`] };
  const problems = [...doc.errors, ...doc.warnings];
  if (problems.length > 0) {
    return { ok: false, errors: problems.map((e) => `${at(e.pos[0])}: ${firstLine(e.message)}`) };
  }
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (error) {
    return { ok: false, errors: [`${file}: ${error instanceof Error ? error.message : String(error)}`] };
  }
  if (data === null || data === undefined) return { ok: false, errors: [`${file}: the file is empty`] };

  return {
    ok: true,
    source: {
      data,
      position(path, atKey = false) {
        const node = locate(doc.contents, path, atKey);
        return node?.range ? at(node.range[0]) : `${file}:1:1`;
      },
    },
  };
}

function firstLine(message: string): string {
  return message.split("\n")[0] ?? message;
}

/** Walks the node tree by key path; stops at the deepest node that exists. */
function locate(root: unknown, path: KeyPath, atKey: boolean): Node | undefined {
  let node = root as Node | undefined;
  for (let i = 0; i < path.length && node; i++) {
    const segment = path[i];
    if (isMap(node)) {
      const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(segment));
      if (!pair) return node;
      const last = i === path.length - 1;
      if (last && atKey) return pair.key as Node;
      node = (pair.value ?? pair.key) as Node;
    } else if (isSeq(node) && typeof segment === "number") {
      const item = node.items[segment] as Node | undefined;
      if (!item) return node;
      node = item;
    } else {
      return node;
    }
  }
  return node;
}

export function formatPath(path: KeyPath): string {
  let out = "";
  for (const segment of path) {
    if (typeof segment === "number") out += `[${segment}]`;
    else out += out === "" ? String(segment) : `.${String(segment)}`;
  }
  return out;
}
