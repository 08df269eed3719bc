// Reloads are serialised: one runs at a time, and any number of triggers that arrive
// meanwhile collapse into exactly one more run, which reads the newest file and is
// reported under the newest trigger. The reloader knows the gateway only as something
// that can plan and apply a config.

import { describePlan, isEmptyPlan } from "./config/diff.ts";
import { type LoadOptions, type LoadResult, loadConfigFile, parseConfig, withFilters } from "./config/load.ts";
import type { RuntimeConfig } from "./config/runtime.ts";
import { BindError } from "./endpoint.ts";
import type { Logger } from "./log.ts";
import type { Applied, Plan, PlannedReload } from "./plan/plan.ts";
import { summarisePlan } from "./plan/summary.ts";

/** What the reloader needs of the gateway. */
export interface ConfigApplier {
  /** Asynchronous with several workers: their open bridges are gathered first. */
  plan(next: RuntimeConfig): PlannedReload | Promise<PlannedReload>;
  /** Applies next all or nothing; throws BindError having changed nothing. */
  apply(next: RuntimeConfig): Promise<Applied>;
}

export type ReloadTrigger = "start" | "file" | "signal" | "api";

export interface ReloadOutcome {
  readonly at: string;
  readonly trigger: ReloadTrigger;
  readonly outcome: "applied" | "rejected" | "unchanged";
  /** sha256 of the config that runs after this reload. */
  readonly sha256: string;
  /** One line: what changed, or why nothing did. */
  readonly summary: string;
  /** One line per change, for "applied". */
  readonly changes: readonly string[];
  /** Why, for "rejected". */
  readonly errors: readonly string[];
}

export type PlanResult = { ok: true; plan: Plan; sha256: string } | { ok: false; errors: string[] };

/** How many reloads /status remembers. */
export const HISTORY_LENGTH = 20;

export class Reloader {
  private running: Promise<ReloadOutcome> | undefined;
  private queued: Promise<ReloadOutcome> | undefined;
  private queuedTrigger: ReloadTrigger = "file";
  private closed = false;
  private readonly past: ReloadOutcome[] = [];
  /** Reloads by outcome, for the metrics. */
  readonly counts: Record<ReloadOutcome["outcome"], number> = { applied: 0, rejected: 0, unchanged: 0 };

  constructor(
    private readonly path: string,
    private readonly gateway: ConfigApplier,
    private readonly log: Logger,
    private sha256: string,
    private readonly onApplied: (config: RuntimeConfig) => void = () => {},
    private readonly loadOptions: LoadOptions = {},
  ) {
    this.remember({
      at: new Date().toISOString(),
      trigger: "start",
      outcome: "applied",
      sha256,
      summary: "started",
      changes: [],
      errors: [],
    });
  }

  get last(): ReloadOutcome | undefined {
    return this.past[0];
  }

  /** The last reloads, newest first; the start counts as the first. */
  get history(): readonly ReloadOutcome[] {
    return this.past;
  }

  /** sha256 of the running config. */
  get runningSha256(): string {
    return this.sha256;
  }

  /** From now on every reload is rejected: the process is shutting down. */
  close(): void {
    this.closed = true;
  }

  reload(trigger: ReloadTrigger): Promise<ReloadOutcome> {
    if (!this.running) {
      this.running = this.run(trigger).finally(() => {
        this.running = undefined;
      });
      return this.running;
    }
    // Whoever asked last names the follow-up run: it reads the file as they left it.
    this.queuedTrigger = trigger;
    const next = () => {
      this.queued = undefined;
      return this.reload(this.queuedTrigger);
    };
    // The follow-up runs however the current run ends: a failed run must not swallow the
    // newer save that queued it, nor leave a rejected promise that absorbs every later one.
    this.queued ??= this.running.then(next, next);
    return this.queued;
  }

  /**
   * What applying text (a config file's content) would do, without applying it. Relative
   * paths in it resolve against the running config's folder, as they would once it
   * replaced that file. Its filter modules are loaded, as the apply would load them.
   */
  async plan(text: string): Promise<PlanResult> {
    const parsed = parseConfig(text, this.path);
    if (!parsed.ok) return parsed;
    const loaded = await withFilters(parsed, this.path, this.loadOptions);
    if (!loaded.ok) return loaded;
    return { ok: true, plan: (await this.gateway.plan(loaded.config)).plan, sha256: loaded.sha256 };
  }

  private async run(trigger: ReloadTrigger): Promise<ReloadOutcome> {
    const outcome = (result: Omit<ReloadOutcome, "at" | "trigger" | "sha256">): ReloadOutcome => {
      const done = { at: new Date().toISOString(), trigger, sha256: this.sha256, ...result };
      this.counts[result.outcome]++;
      this.remember(done);
      return done;
    };
    const rejected = (errors: string[]) => {
      this.reject(trigger, errors);
      return outcome({ outcome: "rejected", summary: errors[0] ?? "rejected", changes: [], errors });
    };
    if (this.closed) return rejected(["shutting down: no reload is applied any more"]);
    const loaded: LoadResult = await loadConfigFile(this.path, this.loadOptions);
    if (!loaded.ok) return rejected(loaded.errors);
    // The same file may still name a filter module whose content changed since.
    if (loaded.sha256 === this.sha256 && isEmptyPlan((await this.gateway.plan(loaded.config)).changes)) {
      this.log.info({ trigger }, "reload: unchanged");
      return outcome({ outcome: "unchanged", summary: "the file is unchanged", changes: [], errors: [] });
    }
    let applied: Applied;
    try {
      applied = await this.gateway.apply(loaded.config);
    } catch (error) {
      if (!(error instanceof BindError)) throw error;
      return rejected([error.message]);
    }
    this.sha256 = loaded.sha256;
    this.onApplied(loaded.config);
    const changes = describePlan(applied.changes);
    if (applied.closed > 0) changes.push(`${applied.closed} open bridge(s) closed by recheck`);
    for (const line of changes) this.log.info({ trigger }, line);
    const summary = summarisePlan(applied.plan, applied.closed);
    this.log.info({ trigger, sha256: loaded.sha256, changes: changes.length, summary }, "reload applied");
    return outcome({ outcome: "applied", summary, changes, errors: [] });
  }

  private remember(outcome: ReloadOutcome): void {
    this.past.unshift(outcome);
    this.past.length = Math.min(this.past.length, HISTORY_LENGTH);
  }

  private reject(trigger: ReloadTrigger, errors: readonly string[]): void {
    const more = errors.length > 1 ? ` (and ${errors.length - 1} more)` : "";
    this.log.error({ trigger, errors }, `reload rejected, the running config stays: ${errors[0]}${more}`);
  }
}
