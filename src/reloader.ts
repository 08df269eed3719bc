// Reloads are serialised: one runs at a time, and any number of triggers that arrive
// meanwhile collapse into exactly one more run, which reads the newest file.

import { describePlan } from "./config/diff.ts";
import { type LoadOptions, loadConfigFile } from "./config/load.ts";
import type { RuntimeConfig } from "./config/runtime.ts";
import { BindError, type Gateway } from "./gateway.ts";
import type { Logger } from "./log.ts";

export interface ReloadOutcome {
  readonly at: string;
  readonly trigger: string;
  readonly outcome: "applied" | "rejected" | "unchanged";
  /** sha256 of the config that runs after this reload. */
  readonly sha256: string;
  /** One line per change, for "applied". */
  readonly changes: readonly string[];
  /** Why, for "rejected". */
  readonly errors: readonly string[];
}

export class Reloader {
  private running: Promise<ReloadOutcome> | undefined;
  private queued: Promise<ReloadOutcome> | undefined;
  private lastOutcome: ReloadOutcome | undefined;
  /** Reloads by outcome, for the metrics. */
  readonly counts: Record<ReloadOutcome["outcome"], number> = { applied: 0, rejected: 0, unchanged: 0 };

  constructor(
    private readonly path: string,
    private readonly gateway: Gateway,
    private readonly log: Logger,
    private sha256: string,
    private readonly onApplied: (config: RuntimeConfig) => void = () => {},
    private readonly loadOptions: LoadOptions = {},
  ) {}

  get last(): ReloadOutcome | undefined {
    return this.lastOutcome;
  }

  /** sha256 of the running config. */
  get runningSha256(): string {
    return this.sha256;
  }

  reload(trigger: string): Promise<ReloadOutcome> {
    if (!this.running) {
      this.running = this.run(trigger).finally(() => {
        this.running = undefined;
      });
      return this.running;
    }
    const next = () => {
      this.queued = undefined;
      return this.reload(trigger);
    };
    // The follow-up runs however the current run ends: a failed run must not swallow the
    // newer save that queued it, nor leave a rejected promise that absorbs every later one.
    this.queued ??= this.running.then(next, next);
    return this.queued;
  }

  private async run(trigger: string): Promise<ReloadOutcome> {
    const outcome = (result: Omit<ReloadOutcome, "at" | "trigger" | "sha256">): ReloadOutcome => {
      this.lastOutcome = { at: new Date().toISOString(), trigger, sha256: this.sha256, ...result };
      this.counts[result.outcome]++;
      return this.lastOutcome;
    };
    const loaded = await loadConfigFile(this.path, this.loadOptions);
    if (!loaded.ok) {
      this.reject(trigger, loaded.errors);
      return outcome({ outcome: "rejected", changes: [], errors: loaded.errors });
    }
    if (loaded.sha256 === this.sha256) {
      this.log.debug({ trigger }, "config unchanged: nothing to reload");
      return outcome({ outcome: "unchanged", changes: [], errors: [] });
    }
    try {
      const plan = await this.gateway.apply(loaded.config);
      this.sha256 = loaded.sha256;
      this.onApplied(loaded.config);
      const changes = describePlan(plan);
      for (const line of changes) this.log.info({ trigger }, line);
      this.log.info({ trigger, sha256: loaded.sha256, changes: changes.length }, "reload applied");
      return outcome({ outcome: "applied", changes, errors: [] });
    } catch (error) {
      if (!(error instanceof BindError)) throw error;
      this.reject(trigger, [error.message]);
      return outcome({ outcome: "rejected", changes: [], errors: [error.message] });
    }
  }

  private reject(trigger: string, errors: readonly string[]): void {
    const more = errors.length > 1 ? ` (and ${errors.length - 1} more)` : "";
    this.log.error({ trigger, errors }, `reload rejected, the running config stays: ${errors[0]}${more}`);
  }
}
