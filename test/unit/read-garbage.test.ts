import assert from "node:assert/strict";
import { constants, PerformanceObserver } from "node:perf_hooks";
import { test } from "node:test";
import { setImmediate as turn } from "node:timers/promises";
import { noteRead, PACING, READ_BUDGET } from "../../src/proxy/read-garbage.ts";
import { eventually } from "../support/net.ts";

const off = PACING ? false : `off on Node ${process.versions.node}: it cost CPU there`;

test("each read budget crossed runs one scavenge, without a global gc", { skip: off }, async () => {
  let minor = 0;
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      if ((entry as { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MINOR) minor++;
    }
  });
  observer.observe({ entryTypes: ["gc"] });
  try {
    // Five budgets, each in its own turn: five scavenges, where a test this small causes
    // hardly any of its own.
    for (let i = 0; i < 5; i++) {
      noteRead(READ_BUDGET / 2);
      noteRead(READ_BUDGET / 2);
      await turn();
    }
    await eventually(() => minor >= 5, 5_000, "five scavenges");
  } finally {
    observer.disconnect();
  }
  assert.equal(typeof (globalThis as { gc?: unknown }).gc, "undefined");
});
