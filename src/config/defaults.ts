// The values tcpgate uses when neither a listener nor `defaults` sets one. They live apart
// from runtime.ts so the schema can quote them in the descriptions editors show.
import type { BALANCE, LOG_LEVELS } from "./schema.ts";

export const BUILT_IN_DEFAULTS = {
  connectTimeoutMs: 5_000,
  idleTimeoutMs: 15 * 60_000,
  halfCloseTimeoutMs: 60_000,
  acceptProxyTimeoutMs: 3_000,
  shutdownTimeoutMs: 30_000,
  logLevel: "info" as (typeof LOG_LEVELS)[number],
  balance: "round-robin" as (typeof BALANCE)[number],
  /** HAProxy's defaults for fall and rise; a slower interval suits a TCP connect check. */
  healthCheck: { intervalMs: 5_000, timeoutMs: 1_000, fall: 3, rise: 2 },
};
