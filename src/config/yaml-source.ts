// Strict YAML reading, and the way back from a key path to a line and column.
import {
  CST,
  isMap,
  isPair,
  isScalar,
  isSeq,
  Lexer,
  LineCounter,
  type Node,
  parseAllDocuments,
  visit,
  type YAMLError,
} from "yaml";

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

/**
 * A real config nests about six levels deep. The yaml package composes by recursion, so a
 * file of nested brackets well under 1 MiB runs out of stack, and the answer was "Maximum
 * call stack size exceeded" at a place that depends on how much stack was left (under
 * tsx, as in the tests, V8 even aborted while compiling a regular expression that deep).
 * A fixed limit, found on the lexer's tokens before parsing, is one clear answer.
 */
const MAX_DEPTH = 64;

export function readYaml(text: string, file: string): YamlResult {
  const deep = tooDeepAt(text);
  if (deep !== undefined) {
    const { line, col } = lineCol(text, deep);
    return { ok: false, errors: [`${file}:${line}:${col}: nested more than ${MAX_DEPTH} levels deep`] };
  }
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

/**
 * Where nesting first gets deeper than MAX_DEPTH, found from the lexer's tokens alone (the
 * lexer loops, it does not recurse): open flow collections, plus the block levels that
 * indentation opens, plus indicators that open a level on the same line ("- - - x").
 */
function tooDeepAt(text: string): number | undefined {
  const indents: number[] = [];
  let offset = 0;
  let flow = 0;
  let onLine = 0;
  let lineIndent: number | undefined = 0;
  let scalarNext = false;
  for (const token of new Lexer().lex(text)) {
    const type = scalarNext ? "scalar-source" : CST.tokenType(token);
    scalarNext = token === CST.SCALAR;
    const at = offset;
    // The lexer's own markers are not in the source.
    if (token !== CST.SCALAR && token !== CST.DOCUMENT && token !== CST.FLOW_END) offset += token.length;
    if (type === "newline") {
      onLine = 0;
      lineIndent = 0;
      continue;
    }
    if (type === "space" || type === "comment" || type === "scalar" || type === "doc-mode") {
      if (type === "space" && lineIndent === 0 && onLine === 0) lineIndent = token.length;
      continue;
    }
    if (lineIndent !== undefined && flow === 0) {
      while (indents.length > 0 && (indents[indents.length - 1] ?? 0) >= lineIndent) indents.pop();
      indents.push(lineIndent);
    }
    lineIndent = undefined;
    if (type === "flow-map-start" || type === "flow-seq-start") flow++;
    else if (type === "flow-map-end" || type === "flow-seq-end") flow = Math.max(0, flow - 1);
    else if (flow === 0 && (type === "seq-item-ind" || type === "explicit-key-ind" || type === "map-value-ind"))
      onLine++;
    if (indents.length + flow + onLine > MAX_DEPTH) return at;
  }
  return undefined;
}

function lineCol(text: string, offset: number): { line: number; col: number } {
  const lines = new LineCounter();
  lines.addNewLine(0);
  for (let i = text.indexOf("\n"); i >= 0 && i < offset; i = text.indexOf("\n", i + 1)) lines.addNewLine(i + 1);
  return lines.linePos(offset);
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

/** Orders "file:line:col" places as they come in the file. */
export function byPlace(a: string, b: string): number {
  const [la = 0, ca = 0] = a.split(":").slice(-2).map(Number);
  const [lb = 0, cb = 0] = b.split(":").slice(-2).map(Number);
  return la - lb || ca - cb;
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
