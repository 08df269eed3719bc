// The JSON Schema editors use to check proxy.yaml as it is typed. It is generated from
// the zod schema (npm run schema writes schemas/tcpgate.schema.json) so the two cannot
// drift; test/schema.test.ts fails when the committed file is stale.
import { z } from "zod";
import { configSchema } from "./schema.ts";

/** Where the generated schema lives, relative to the repository root. */
export const JSON_SCHEMA_PATH = "schemas/tcpgate.schema.json";

export function configJsonSchema(): Record<string, unknown> {
  // Input mode: keys with defaults are optional for the person writing the file.
  const generated = z.toJSONSchema(configSchema, { io: "input" }) as Record<string, unknown>;
  const { $schema, ...rest } = generated;
  // No $id: the project has no URL of its own to promise, and editors find the file
  // through the "# yaml-language-server: $schema=" line with a relative path.
  return {
    $schema,
    title: "tcpgate config",
    description: "The YAML config file of tcpgate, a TCP proxy. Unknown keys are errors.",
    ...rest,
  };
}

/** The file's exact text: pretty-printed, with a trailing newline. */
export function configJsonSchemaText(): string {
  return `${JSON.stringify(configJsonSchema(), null, 2)}\n`;
}
