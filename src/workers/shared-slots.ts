// maxConnections and maxConnectionsPerClient, exact across worker threads. The counts
// live in SharedArrayBuffers that the main thread creates and hands to every worker:
//   - per listener name, an Int32Array [total, held by worker 0, held by worker 1, ...];
//     a slot is taken with compareExchange on the total, so no lock is needed when only
//     maxConnections is set;
//   - one table for the instance, (listener id, client address) → open bridges, used only
//     for listeners with maxConnectionsPerClient: open addressing with linear probing and
//     backshift deletion, guarded by a small futex-style lock (Atomics.wait on contention).
// Each worker also keeps a ledger (a table of the same shape, written only by it) of the
// per-client slots it holds, so that the main thread can give back the slots of a worker
// that died: its bridges are gone, and the counts must not stay taken forever.
import type { ClientAddress } from "../policy/address-match.ts";
import type { LimitReached, Limits, Slots, Taken } from "../proxy/slots.ts";

/** Workers an instance may run; also the width of a listener's counter array. */
export const MAX_WORKERS = 256;
/** Entries of the client table; at most 3/4 of them are used (probes stay short). */
export const CLIENT_TABLE_CAPACITY = 2 ** 18;
/** Distinct (listener, client address) pairs with open bridges that the table holds. */
export const CLIENT_TABLE_LIMIT = (CLIENT_TABLE_CAPACITY / 4) * 3;

// Table layout, in Int32 words: a header, then entries of [a0, a1, a2, a3, listener, count].
const LOCK = 0;
const OWNER = 1;
const SIZE = 2;
const HEADER = 4;
const ENTRY = 6;
const COUNT = 5;

/** A table in a SharedArrayBuffer; entries with count 0 do not exist (they are deleted). */
export class ClientTable {
  private readonly words: Int32Array;
  private readonly mask: number;
  private readonly limit: number;
  private readonly key = new Int32Array(5);

  constructor(
    readonly buffer: SharedArrayBuffer,
    /** Written into the lock while held: worker index + 1 (0 for the main thread). */
    private readonly owner = 0,
  ) {
    this.words = new Int32Array(buffer);
    const capacity = (this.words.length - HEADER) / ENTRY;
    this.mask = capacity - 1;
    this.limit = (capacity / 4) * 3;
  }

  static create(capacity = CLIENT_TABLE_CAPACITY): SharedArrayBuffer {
    if (capacity & (capacity - 1)) throw new Error("internal: capacity must be a power of two");
    return new SharedArrayBuffer((HEADER + capacity * ENTRY) * 4);
  }

  get size(): number {
    return Atomics.load(this.words, SIZE);
  }

  /** Sets the key that count/increment/decrement work on. */
  setKey(listener: number, client: ClientAddress): void {
    const k = this.key;
    if (client.family === 4) {
      k[0] = 0;
      k[1] = 0;
      k[2] = 0xffff;
      k[3] = client.v4 | 0;
    } else {
      const p = client.v6;
      for (let i = 0; i < 4; i++) k[i] = ((p[2 * i] ?? 0) << 16) | (p[2 * i + 1] ?? 0) | 0;
    }
    k[4] = listener;
  }

  count(): number {
    const at = this.find();
    return at < 0 ? 0 : this.word(at + COUNT);
  }

  /** Adds by to the key's count; false when the key is new and the table is full. */
  increment(by = 1): boolean {
    const at = this.find();
    if (at >= 0) {
      this.words[at + COUNT] = this.word(at + COUNT) + by;
      return true;
    }
    if (this.word(SIZE) >= this.limit) return false;
    const slot = HEADER + ENTRY * ~at;
    this.words.set(this.key, slot);
    this.words[slot + COUNT] = by;
    this.words[SIZE] = this.word(SIZE) + 1;
    return true;
  }

  /** Takes by from the key's count; at 0 the entry is deleted. */
  decrement(by = 1): void {
    const at = this.find();
    if (at < 0) return;
    const left = this.word(at + COUNT) - by;
    if (left > 0) this.words[at + COUNT] = left;
    else this.remove((at - HEADER) / ENTRY);
  }

  /** Every entry as [key words..., count]: the ledger of a worker that died. */
  *entries(): Generator<{ key: Int32Array; count: number }> {
    for (let i = 0; i <= this.mask; i++) {
      const at = HEADER + i * ENTRY;
      const count = this.word(at + COUNT);
      if (count > 0) yield { key: this.words.slice(at, at + 5), count };
    }
  }

  /** For the ledger's entries: works on a key read from another table. */
  useKey(key: Int32Array): void {
    this.key.set(key);
  }

  /** Empties the table (a dead worker's ledger, once given back). */
  clear(): void {
    this.words.fill(0, SIZE);
  }

  lock(): void {
    const w = this.words;
    let state = Atomics.compareExchange(w, LOCK, 0, 1);
    for (let spin = 0; state !== 0 && spin < 100; spin++) state = Atomics.compareExchange(w, LOCK, 0, 1);
    if (state !== 0) {
      // 2: locked, and someone may be waiting; whoever unlocks then wakes one.
      if (state !== 2) state = Atomics.exchange(w, LOCK, 2);
      while (state !== 0) {
        Atomics.wait(w, LOCK, 2);
        state = Atomics.exchange(w, LOCK, 2);
      }
    }
    Atomics.store(w, OWNER, this.owner);
  }

  unlock(): void {
    Atomics.store(this.words, OWNER, 0);
    if (Atomics.exchange(this.words, LOCK, 0) === 2) Atomics.notify(this.words, LOCK, 1);
  }

  /** A worker that died holding the lock (terminated from outside mid-take) must not block the rest. */
  releaseIfHeldBy(owner: number): boolean {
    if (Atomics.load(this.words, OWNER) !== owner || Atomics.load(this.words, LOCK) === 0) return false;
    this.unlock();
    return true;
  }

  private word(i: number): number {
    return this.words[i] as number;
  }

  private home(k0: number, k1: number, k2: number, k3: number, k4: number): number {
    let h = 0x811c9dc5;
    h = Math.imul(h ^ k0, 0x9e3779b1);
    h = Math.imul(h ^ (h >>> 15) ^ k1, 0x85ebca6b);
    h = Math.imul(h ^ (h >>> 13) ^ k2, 0xc2b2ae35);
    h = Math.imul(h ^ (h >>> 16) ^ k3, 0x9e3779b1);
    h = Math.imul(h ^ (h >>> 15) ^ k4, 0x85ebca6b);
    return (h ^ (h >>> 16)) & this.mask;
  }

  /** The word index of the key's entry, or ~(entry index) of the free slot where it would go. */
  private find(): number {
    const k = this.key;
    const k0 = k[0] as number;
    const k1 = k[1] as number;
    const k2 = k[2] as number;
    const k3 = k[3] as number;
    const k4 = k[4] as number;
    const w = this.words;
    for (let i = this.home(k0, k1, k2, k3, k4); ; i = (i + 1) & this.mask) {
      const at = HEADER + i * ENTRY;
      if (w[at + COUNT] === 0) return ~i;
      if (w[at] === k0 && w[at + 1] === k1 && w[at + 2] === k2 && w[at + 3] === k3 && w[at + 4] === k4) return at;
    }
  }

  /** Backshift deletion: later entries of the probe run move up, so no lookup stops early. */
  private remove(hole: number): void {
    const w = this.words;
    let i = hole;
    for (let j = (i + 1) & this.mask; ; j = (j + 1) & this.mask) {
      const at = HEADER + j * ENTRY;
      if (w[at + COUNT] === 0) break;
      const home = this.home(
        w[at] as number,
        w[at + 1] as number,
        w[at + 2] as number,
        w[at + 3] as number,
        w[at + 4] as number,
      );
      // The entry at j may fill the hole at i unless its home lies cyclically in (i, j].
      const stays = i <= j ? i < home && home <= j : i < home || home <= j;
      if (stays) continue;
      w.copyWithin(HEADER + i * ENTRY, at, at + ENTRY);
      i = j;
    }
    w.fill(0, HEADER + i * ENTRY, HEADER + (i + 1) * ENTRY);
    w[SIZE] = this.word(SIZE) - 1;
  }
}

/** A listener's counters: [total, held by worker 0, ..., held by worker MAX_WORKERS - 1]. */
export function createListenerCounters(): SharedArrayBuffer {
  return new SharedArrayBuffer((1 + MAX_WORKERS) * 4);
}

/** What one worker needs to count a listener's bridges with every other worker. */
export interface SharedListenerSlots {
  /** Unique per listener name for the life of the instance; part of the client table's key. */
  readonly id: number;
  readonly counters: SharedArrayBuffer;
}

/** The slots of one listener, as one worker takes and releases them. */
export class SharedSlots implements Slots {
  private readonly counters: Int32Array;

  constructor(
    private readonly listener: SharedListenerSlots,
    private readonly worker: number,
    private readonly table: ClientTable,
    private readonly ledger: ClientTable,
  ) {
    this.counters = new Int32Array(listener.counters);
  }

  take(client: ClientAddress, limits: Limits): Taken | LimitReached {
    const max = limits.maxConnections ?? 0x7fffffff;
    const perClient = limits.maxConnectionsPerClient;
    if (perClient === undefined) {
      if (!this.reserve(max)) return "maxConnections";
      Atomics.add(this.counters, 1 + this.worker, 1);
      return "listener";
    }
    const table = this.table;
    table.lock();
    try {
      table.setKey(this.listener.id, client);
      // Checked before the total is reserved: a client refused here never held a slot
      // that another worker could have been refused for.
      if (table.count() >= perClient) {
        return Atomics.load(this.counters, 0) >= max ? "maxConnections" : "maxConnectionsPerClient";
      }
      if (!this.reserve(max)) return "maxConnections";
      if (!table.increment()) {
        Atomics.sub(this.counters, 0, 1);
        return "clientTableFull";
      }
      this.ledger.setKey(this.listener.id, client);
      this.ledger.increment();
      Atomics.add(this.counters, 1 + this.worker, 1);
      return "listener+client";
    } finally {
      table.unlock();
    }
  }

  release(client: ClientAddress, taken: Taken): void {
    if (taken === "listener+client") {
      const table = this.table;
      table.lock();
      table.setKey(this.listener.id, client);
      table.decrement();
      this.ledger.setKey(this.listener.id, client);
      this.ledger.decrement();
      table.unlock();
    }
    Atomics.sub(this.counters, 1 + this.worker, 1);
    Atomics.sub(this.counters, 0, 1);
  }

  /** Counts one more on the total unless it is at max. */
  private reserve(max: number): boolean {
    const c = this.counters;
    for (let now = Atomics.load(c, 0); now < max; ) {
      const seen = Atomics.compareExchange(c, 0, now, now + 1);
      if (seen === now) return true;
      now = seen;
    }
    return false;
  }
}

/**
 * Main thread, once a worker has exited: gives back every slot it held. Its bridges died
 * with it. Returns how many listener slots were given back.
 */
export function reclaimWorkerSlots(
  worker: number,
  listeners: Iterable<SharedListenerSlots>,
  table: ClientTable,
  ledger: ClientTable,
): number {
  let reclaimed = 0;
  for (const l of listeners) {
    const counters = new Int32Array(l.counters);
    const held = Atomics.exchange(counters, 1 + worker, 0);
    Atomics.sub(counters, 0, held);
    reclaimed += held;
  }
  table.releaseIfHeldBy(worker + 1);
  table.lock();
  for (const { key, count } of ledger.entries()) {
    table.useKey(key);
    table.decrement(count);
  }
  table.unlock();
  ledger.clear();
  return reclaimed;
}
