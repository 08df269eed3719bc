// The open-bridge counts that maxConnections and maxConnectionsPerClient are checked
// against. Taking a slot checks and counts in one step, so that with several workers
// (src/workers/shared-slots.ts) two accepts can never both take the last slot.
import type { ClientAddress } from "../policy/address-match.ts";

export interface Limits {
  readonly maxConnections: number | undefined;
  readonly maxConnectionsPerClient: number | undefined;
}

/** clientTableFull: several workers, and the table of per-client counts is full (see shared-slots.ts). */
export type LimitReached = "maxConnections" | "maxConnectionsPerClient" | "clientTableFull";

/** What a taken slot counted; release() is handed it back, whatever the limits are by then. */
export type Taken = "listener" | "listener+client";

export interface Slots {
  /** Counts one more bridge from client, or names the limit that refuses it (counting nothing). */
  take(client: ClientAddress, limits: Limits): Taken | LimitReached;
  release(client: ClientAddress, taken: Taken): void;
}

/** One event loop: a number and a Map, as cheap as counting gets. */
export class LocalSlots implements Slots {
  private total = 0;
  private readonly perClient = new Map<string, number>();

  take(client: ClientAddress, limits: Limits): Taken | LimitReached {
    if (limits.maxConnections !== undefined && this.total >= limits.maxConnections) return "maxConnections";
    const fromClient = this.perClient.get(client.text) ?? 0;
    if (limits.maxConnectionsPerClient !== undefined && fromClient >= limits.maxConnectionsPerClient) {
      return "maxConnectionsPerClient";
    }
    this.total++;
    this.perClient.set(client.text, fromClient + 1);
    return "listener+client";
  }

  release(client: ClientAddress): void {
    this.total--;
    const left = (this.perClient.get(client.text) ?? 1) - 1;
    if (left > 0) this.perClient.set(client.text, left);
    else this.perClient.delete(client.text);
  }
}
