import assert from "node:assert/strict";
import { test } from "node:test";
import { compileSniRoutes } from "../../src/policy/sni-match.ts";

const match = compileSniRoutes([
  ["db.example.com"],
  ["*.apps.example.com", "Admin.Example.com"],
  ["shop.apps.example.com"],
  ["*.example.com"],
]);

test("exact names, case-insensitively", () => {
  assert.equal(match("db.example.com"), 0);
  assert.equal(match("DB.EXAMPLE.COM"), 0);
  assert.equal(match("admin.example.com"), 1);
  assert.equal(match("db.example.com."), 0, "a trailing dot is no part of the name");
});

test("*. stands for exactly one label", () => {
  assert.equal(match("a.apps.example.com"), 1);
  assert.equal(match("A-1.Apps.Example.COM"), 1);
  assert.equal(match("apps.example.com"), 3, "no label for the star: *.example.com's");
  assert.equal(match("x.a.apps.example.com"), undefined, "two labels for the star");
  assert.equal(match("example.com"), undefined);
  assert.equal(match(".apps.example.com"), undefined, "an empty label");
});

test("the first route that matches wins, exact or wildcard", () => {
  assert.equal(match("shop.apps.example.com"), 1, "route 1's wildcard comes before route 2's exact name");
  assert.equal(match("www.example.com"), 3);
  assert.equal(compileSniRoutes([["*.example.com"], ["www.example.com"]])("www.example.com"), 0);
  assert.equal(compileSniRoutes([["www.example.com"], ["*.example.com"]])("www.example.com"), 0);
});

test("no routes match nothing", () => {
  assert.equal(compileSniRoutes([])("db.example.com"), undefined);
});
