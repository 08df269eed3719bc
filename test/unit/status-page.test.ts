// The status page document itself (src/admin/page.ts): what the browser tests cannot see
// from outside. Its policy must match the inline style and script exactly (or the page
// would not run at all), and nothing in it may point anywhere or write markup.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { test } from "node:test";
import { STATUS_PAGE, STATUS_PAGE_CSP } from "../../src/admin/page.ts";

const hash = (text: string) => `'sha256-${createHash("sha256").update(text).digest("base64")}'`;

function only(tag: string): string {
  const found = [...STATUS_PAGE.matchAll(new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`, "g"))];
  assert.equal(found.length, 1, `one <${tag}> in the page`);
  return found[0]?.[1] ?? "";
}

const directives = new Map(
  STATUS_PAGE_CSP.split(";").map((d) => {
    const [name = "", ...values] = d.trim().split(/\s+/);
    return [name, values] as const;
  }),
);

test("the policy allows exactly the page's own style and script, and requests to itself", () => {
  assert.deepEqual(directives.get("default-src"), ["'none'"]);
  assert.deepEqual(directives.get("script-src"), [hash(only("script"))]);
  assert.deepEqual(directives.get("style-src"), [hash(only("style"))]);
  assert.deepEqual(directives.get("connect-src"), ["'self'"]);
  assert.deepEqual(directives.get("frame-ancestors"), ["'none'"]);
  assert.equal(STATUS_PAGE.includes("<script src"), false);
});

test("nothing in the page points to another host, and no attribute holds code or a style", () => {
  assert.doesNotMatch(STATUS_PAGE, /https?:|\/\/[a-z]/i);
  const urls = [...STATUS_PAGE.matchAll(/\b(?:src|href|action)="([^"]*)"/g)].map((m) => m[1]);
  assert.deepEqual([...new Set(urls)].sort(), ["data:,", "metrics", "status"]);
  assert.doesNotMatch(STATUS_PAGE, /\son[a-z]+=|\sstyle=/);
});

test("the script writes text, never markup", () => {
  const script = only("script");
  assert.doesNotMatch(script, /innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|new Function/);
  assert.match(script, /textContent/);
});
