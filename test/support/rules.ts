// Allow/deny rules built straight from CIDR text, as the config loader would build them.
import { parseCidr } from "../../src/config/address.ts";
import type { Rule } from "../../src/config/runtime.ts";

/** A rule named `source` standing for `cidrs`; throws on a CIDR the loader would refuse. */
export function rule(source: string, cidrs: readonly string[]): Rule {
  return {
    source,
    cidrs: cidrs.map((c) => {
      const parsed = parseCidr(c);
      if (!parsed.ok) throw new Error(parsed.error);
      return parsed.value;
    }),
  };
}
