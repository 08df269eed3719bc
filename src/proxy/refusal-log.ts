// One log line per refused client, up to a budget per window; past it, refusals are
// counted and summed up in one line, so a flood of refused clients cannot flood the log.
import type { Logger } from "../log.ts";

export interface RefusalFields {
  readonly listener: string;
  readonly client: string;
  readonly clientPort: number;
  readonly reason: string;
  readonly rule: string;
  /** For a deny: the entry as written (the hit counter's label) and the range inside it that matched. */
  readonly entry?: string;
  readonly cidr?: string;
}

export class RefusalLog {
  private windowStart = Number.NEGATIVE_INFINITY;
  private logged = 0;
  private suppressed = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly log: Logger,
    private readonly listener: string,
    private readonly budget = 20,
    private readonly windowMs = 10_000,
  ) {}

  refused(fields: RefusalFields, nowMs: number): void {
    if (nowMs - this.windowStart >= this.windowMs) {
      this.flush();
      this.windowStart = nowMs;
      this.logged = 0;
    }
    if (this.logged < this.budget) {
      this.logged++;
      this.log.info(fields, `refused: ${fields.reason}: ${fields.rule}`);
      return;
    }
    this.suppressed++;
    if (!this.timer) {
      this.timer = setTimeout(() => this.flush(), this.windowStart + this.windowMs - nowMs);
      this.timer.unref();
    }
  }

  /** Writes the summary line for refusals not logged one by one, if any. */
  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.suppressed === 0) return;
    const seconds = Math.round(this.windowMs / 1000);
    this.log.info(
      { listener: this.listener, refused: this.suppressed },
      `${this.suppressed} more refused in the last ${seconds} s`,
    );
    this.suppressed = 0;
  }
}
