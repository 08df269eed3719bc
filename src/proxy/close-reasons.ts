// How a bridge can end, as /status counts them per listener (`closedBy`). A bridge that
// found no route for its ClientHello ends with reason "route" but counts as refused.
import type { EndReason } from "./bridge.ts";

export type CloseReason = Exclude<EndReason, "route">;

// A record, not a list: a reason added to EndReason does not compile until it is here.
const ALL: Record<CloseReason, true> = {
  "client-closed": true,
  "target-closed": true,
  "client-reset": true,
  "target-reset": true,
  "idle-timeout": true,
  "max-duration": true,
  "half-close-timeout": true,
  "connect-failed": true,
  shutdown: true,
  recheck: true,
  filter: true,
  "filter-error": true,
};

export const CLOSE_REASONS = Object.keys(ALL) as readonly CloseReason[];
