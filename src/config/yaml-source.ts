// Strict YAML reading, and the way back from a key path to a line and column.
import { isMap, isPair, isScalar, isSeq, LineCounter, type Node, parseAllDocuments, visit, type YAMLError } from "yaml";

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
  // The yaml package may report two views of one mistake at the same place; the first is the clearer.
  const problems = [...doc.errors, ...doc.warnings].filter(
    (e, i, all) => all.findIndex((other) => other.pos[0] === e.pos[0]) === i,
  );
  if (problems.length > 0) {
    return { ok: false, errors: problems.map((e) => `${at(e.pos[0])}: ${yamlMessage(e, text)}`) };
  }
  // An alias to a missing anchor only fails in toJS(), which knows no position: find it first.
  const unresolved: string[] = [];
  visit(doc, {
    Alias(_, alias) {
      if (!alias.resolve(doc))
        unresolved.push(`${at(alias.range?.[0] ?? 0)}: no anchor &${alias.source} before this alias`);
    },
  });
  if (unresolved.length > 0) return { ok: false, errors: unresolved };
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    const bomb = /alias count/i.test(message);
    return {
      ok: false,
      errors: [
        `${file}: ${bomb ? `too many alias expansions (limit ${MAX_ALIAS_COUNT}); write the values out instead` : message}`,
      ],
    };
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

/** The yaml package's message, made specific where it is vague. */
function yamlMessage(error: YAMLError, text: string): string {
  if (error.code === "DUPLICATE_KEY") {
    const key = /^(?:"[^"]*"|'[^']*'|[^:,{}[\]\n]+)/.exec(text.slice(error.pos[0]))?.[0].trim();
    return key
      ? `duplicate key ${key.startsWith('"') ? key : JSON.stringify(key.replace(/^'|'$/g, ""))}`
      : "duplicate key";
  }
  return firstLine(error.message);
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
    // A key that is not a plain word (an acl named "my office") is quoted so the path stays readable.
    else if (!/^[A-Za-z_][A-Za-z0-9_-]*$/.test(String(segment))) out += `[${JSON.stringify(String(segment))}]`;
    else out += out === "" ? String(segment) : `.${String(segment)}`;
  }
  return out;
}
