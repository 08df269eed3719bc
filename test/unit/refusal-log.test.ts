import assert from "node:assert/strict";
import { test } from "node:test";
import { pino } from "pino";
import { RefusalLog } from "../../src/proxy/refusal-log.ts";

function capture() {
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: "info" }, { write: (line: string) => lines.push(JSON.parse(line)) });
  return { log, lines };
}

const fields = (i: number) => ({
  listener: "web",
  client: "192.0.2.1",
  clientPort: i,
  reason: "deny",
  rule: "192.0.2.0/24",
});

test("refusals past the budget are summed up in one line per window", () => {
  const { log, lines } = capture();
  const refusals = new RefusalLog(log, "web", 3, 10_000);
  for (let i = 0; i < 1237; i++) refusals.refused(fields(i), 1000 + i);
  assert.equal(lines.length, 3);
  assert.equal(lines[0]?.msg, "refused: deny: 192.0.2.0/24");
  // The next window starts: the summary of the last one comes first.
  refusals.refused(fields(0), 20_000);
  assert.equal(lines[3]?.msg, "1234 more refused in the last 10 s");
  assert.equal(lines[3]?.refused, 1234);
  assert.equal(lines[4]?.msg, "refused: deny: 192.0.2.0/24");
  refusals.flush();
  assert.equal(lines.length, 5, "nothing suppressed, no summary");
});

test("the summary is written when the window ends even if no refusal follows", (t) => {
  // The window's timer is the thing under test: mocked, it runs to the end at once.
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const { log, lines } = capture();
  const refusals = new RefusalLog(log, "web", 1, 1000);
  refusals.refused(fields(1), 5000);
  refusals.refused(fields(2), 5000);
  assert.equal(lines.length, 1);
  t.mock.timers.tick(999);
  assert.equal(lines.length, 1, "no summary before the window ends");
  t.mock.timers.tick(1);
  assert.equal(lines[1]?.msg, "1 more refused in the last 1 s");
  assert.equal(lines.length, 2);
});
