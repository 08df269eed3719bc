// tcpgate plan: what saving this file would do to the running instance, without applying
// it. The instance computes the plan (POST /plan) with the code its reload uses.
import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { loadConfigFile } from "../config/load.ts";
import type { Plan } from "../plan/plan.ts";
import { renderPlan } from "../plan/render.ts";
import { adminTarget, post, targetOf } from "./admin-client.ts";
import { UsageError } from "./usage-error.ts";

export const PLAN_USAGE = "tcpgate plan --config <file> [--admin <url>|unix:<path>] [--json]";

/** Exit status: 0 no open bridge refused, 3 some would be, 1 invalid file or unreachable. */
export async function runPlan(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      config: { type: "string", short: "c" },
      admin: { type: "string" },
      json: { type: "boolean" },
      "insecure-config": { type: "boolean" },
    },
  });
  if (values.config === undefined) throw new UsageError("plan needs --config <file>");
  const explicit = values.admin === undefined ? undefined : adminTarget(values.admin);
  if (values.admin !== undefined && !explicit) {
    throw new UsageError(`--admin "${values.admin}" is not an http://host:port URL or a unix:/path`);
  }

  // Filter modules are the instance's to load, relative to its own config's folder.
  const loaded = await loadConfigFile(values.config, {
    insecure: values["insecure-config"] ?? false,
    skipFilters: true,
  });
  if (!loaded.ok) {
    for (const line of loaded.errors) process.stderr.write(`${line}\n`);
    return 1;
  }
  const admin = explicit ?? (loaded.config.admin && targetOf(loaded.config.admin.listen));
  if (!admin) throw new UsageError("no --admin given and the file has no admin.listen: where does tcpgate run?");

  let answer: { status: number; body: string };
  try {
    answer = await post(admin, "/plan", await readFile(values.config, "utf8"));
  } catch (error) {
    process.stderr.write(`tcpgate: cannot reach the running instance at ${admin.label}: ${(error as Error).message}\n`);
    return 1;
  }
  let body: unknown;
  try {
    body = JSON.parse(answer.body);
  } catch {
    body = undefined;
  }
  if (answer.status !== 200 || body === undefined) {
    const errors = (body as { errors?: string[] } | undefined)?.errors ?? [`HTTP ${answer.status}`];
    const what = answer.status === 422 ? "the running instance refuses this file" : `${admin.label} answered`;
    for (const line of errors) process.stderr.write(`tcpgate: ${what}: ${line}\n`);
    return 1;
  }
  const plan = body as Plan;
  process.stdout.write(values.json ? `${JSON.stringify(plan, null, 2)}\n` : `${renderPlan(plan)}\n`);
  return plan.refused.length > 0 ? 3 : 0;
}
