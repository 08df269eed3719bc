// A bridge whose listener has a filter: each chunk passes through the module's up (client
// → target) or down (target → client) before it is written, in order. A filter may answer
// with a Promise: its direction then waits, its source socket paused, so backpressure
// holds and memory stays bounded. A FIN is passed on after the chunks before it.
import type { Socket } from "node:net";
import { errorText, kindOf } from "../config/filter-load.ts";
import type { FilterSetting } from "../config/runtime.ts";
import { passOnEnd } from "./forward.ts";
import { noteRead } from "./read-garbage.ts";

/** How long a Promise a filter returned may take; then its bridge ends with filter-error. */
export const FILTER_TIMEOUT_MS = 5_000;

/** What create(options, bridge) is told of its bridge. */
export interface FilterBridge {
  readonly listener: string;
  readonly client: string;
  readonly clientPort: number;
  /** "host:port" of the target it is joined to. */
  readonly target: string;
  /**
   * Writes data to the client now, as if the target had sent it (and ahead of any down
   * chunk still waiting on a Promise). false when the client can no longer be written to.
   */
  reply(data: Uint8Array | string): boolean;
}

export type FilterEndReason = "filter" | "filter-error";

export interface FilterHooks {
  /** The client's half ended and the FIN was passed on to the target. */
  readonly clientEnded: () => void;
  readonly targetEnded: () => void;
  /** The filter closed the bridge (null), or failed (error: one line). */
  readonly close: (reason: FilterEndReason, error?: string) => void;
}

type Step = (chunk: Buffer) => unknown;

const passThrough: Step = (chunk) => chunk;

/** Joins client and target through a new instance of the filter (create() is called now). */
export function filterBridge(
  setting: FilterSetting,
  facts: Omit<FilterBridge, "reply">,
  client: Socket,
  target: Socket,
  hooks: FilterHooks,
): void {
  let upstream: Direction | undefined;
  const bridge: FilterBridge = Object.freeze({
    ...facts,
    reply(data: Uint8Array | string): boolean {
      if (typeof data !== "string" && !(data instanceof Uint8Array)) {
        throw new TypeError(`reply() takes a Buffer or a string, not ${kindOf(data)}`);
      }
      if (client.destroyed || client.writableEnded) return false;
      // A client that does not read its replies must not make us buffer them: stop reading it.
      if (!client.write(data)) upstream?.holdUntilDrain();
      return true;
    },
  });
  let steps: { up: Step; down: Step };
  try {
    const create = setting.loaded?.create;
    if (!create) throw new Error(`the module ${setting.module} was not loaded`);
    steps = stepsOf(create(setting.options, bridge));
  } catch (error) {
    // After the caller has finished joining: the bridge ends before any byte is read.
    process.nextTick(() => hooks.close("filter-error", `create: ${errorText(error)}`));
    return;
  }
  upstream = new Direction("up", client, target, steps.up, hooks.clientEnded, hooks.close);
  new Direction("down", target, client, steps.down, hooks.targetEnded, hooks.close);
}

function stepsOf(made: unknown): { up: Step; down: Step } {
  const object = made as { up?: unknown; down?: unknown } | null;
  if (typeof object !== "object" || object === null || isThenable(object)) {
    throw new TypeError(`create() must return an object with optional up and down functions, not ${kindOf(object)}`);
  }
  const step = (name: "up" | "down"): Step => {
    const fn = object[name];
    if (fn === undefined) return passThrough;
    if (typeof fn !== "function") throw new TypeError(`${name} must be a function, not ${kindOf(fn)}`);
    return (chunk) => fn.call(object, chunk);
  };
  return { up: step("up"), down: step("down") };
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    (typeof value === "object" || typeof value === "function") &&
    value !== null &&
    typeof (value as { then?: unknown }).then === "function"
  );
}

/** One direction: from's chunks through step, in order, to to. */
class Direction {
  /** A Promise the step returned is pending: from is paused, chunks wait in queue. */
  private waiting = false;
  private readonly queue: Buffer[] = [];
  /** Its deadline. */
  private timer: NodeJS.Timeout | undefined;
  /** from sent its FIN; passed on once the chunks before it are written. */
  private fin = false;
  private finPassed = false;
  /** A reply filled the client's buffer: from (the client) waits for it to drain. */
  private held = false;

  constructor(
    private readonly name: "up" | "down",
    private readonly from: Socket,
    private readonly to: Socket,
    private readonly step: Step,
    private readonly onEnd: () => void,
    private readonly close: FilterHooks["close"],
  ) {
    from.on("data", (chunk: Buffer) => {
      noteRead(chunk.length);
      if (this.waiting) this.queue.push(chunk);
      else this.run(chunk);
    });
    to.on("drain", () => this.resume());
    from.on("end", () => {
      this.fin = true;
      this.passFin();
    });
    // A bridge ended meanwhile: its stalled filter's deadline holds nothing any more.
    to.on("close", () => clearTimeout(this.timer));
  }

  holdUntilDrain(): void {
    if (this.held) return;
    this.held = true;
    this.from.pause();
    this.from.once("drain", () => {
      this.held = false;
      this.resume();
    });
  }

  /**
   * The bridge ended. Not from.destroyed: a client that ended its half after we ended ours
   * is closed and destroyed by Node while its last chunks may still wait on the filter.
   */
  private get gone(): boolean {
    return this.to.destroyed;
  }

  private run(chunk: Buffer): void {
    let result: unknown;
    try {
      result = this.step(chunk);
    } catch (error) {
      this.fail(errorText(error));
      return;
    }
    if (isThenable(result)) this.wait(result);
    else this.deliver(result);
  }

  private wait(promise: PromiseLike<unknown>): void {
    this.waiting = true;
    this.from.pause();
    let settled = false;
    const timer = setTimeout(() => {
      settled = true;
      this.fail(`no answer within ${FILTER_TIMEOUT_MS / 1000}s`);
    }, FILTER_TIMEOUT_MS);
    this.timer = timer;
    promise.then(
      (result) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.waiting = false;
        if (this.deliver(result)) this.catchUp();
      },
      (error: unknown) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.fail(errorText(error));
      },
    );
  }

  /** Writes what the step returned; false when the bridge ends instead. */
  private deliver(result: unknown): boolean {
    if (this.gone) return false;
    if (result === null) {
      this.close("filter");
      return false;
    }
    if (!(result instanceof Uint8Array)) {
      this.fail(`TypeError: returned ${kindOf(result)}; a filter returns a Buffer, or null to close`);
      return false;
    }
    if (result.length > 0 && !this.to.write(result)) this.from.pause();
    return true;
  }

  /** After a Promise settled: the chunks that arrived meanwhile, then reading and the FIN. */
  private catchUp(): void {
    while (!this.waiting && this.queue.length > 0) {
      this.run(this.queue.shift() as Buffer);
      if (this.gone) return;
    }
    if (this.waiting) return;
    this.resume();
    this.passFin();
  }

  private resume(): void {
    if (this.waiting || this.held || this.to.writableNeedDrain || this.gone) return;
    this.from.resume();
  }

  private passFin(): void {
    if (!this.fin || this.finPassed || this.waiting || this.queue.length > 0 || this.gone) return;
    this.finPassed = true;
    passOnEnd(this.from, this.to, this.onEnd);
  }

  private fail(message: string): void {
    this.close("filter-error", `${this.name}: ${message}`);
  }
}
