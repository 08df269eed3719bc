// npm run schema: writes schemas/tcpgate.schema.json from the zod schema in src/config.
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { configJsonSchemaText, JSON_SCHEMA_PATH } from "../src/config/json-schema.ts";

const root = fileURLToPath(new URL("..", import.meta.url));
const target = join(root, JSON_SCHEMA_PATH);
mkdirSync(dirname(target), { recursive: true });
writeFileSync(target, configJsonSchemaText());
process.stdout.write(`wrote ${JSON_SCHEMA_PATH}\n`);
