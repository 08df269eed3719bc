// A set of targets with their live state: open bridges, health, and failures. The pool
// dials for a bridge, trying each target once in the strategy's order, and keeps the
// counts; the strategy only orders the healthy. A listener's own targets are one pool,
// each of its routes another. A reload updates a pool in place, so a bridge failing over
// after a reload tries the targets of the config now running, never one it removed.
import type { Socket } from "node:net";
import { type Balance, BUILT_IN_DEFAULTS, type HealthCheck, type TargetConfig } from "../config/runtime.ts";
import type { Logger } from "../log.ts";
import { createStrategy, type Strategy } from "./balance/index.ts";
import { connectOnce } from "./dialer.ts";
import type { Stop } from "./stop.ts";

/** Passive back-off for a target marked down: 1 s, doubling up to 30 s between trials. */
const BACKOFF_MIN_MS = 1_000;
const BACKOFF_MAX_MS = 30_000;

export class TargetState {
  /**
   * Bridges to this target, connecting or open. A bridge counts from the moment it picks
   * the target, so a burst of clients does not all see the same idle target (HAProxy and
   * nginx count at selection too); it gives the count back when it moves on or ends.
   */
  open = 0;
  up = true;
  connectFailures = 0;
  lastError: string | undefined;
  failuresInRow = 0;
  successesInRow = 0;
  /** While down, the earliest time a real connection may try it again. */
  retryAt = 0;
  backoffMs = BACKOFF_MIN_MS;
  checking = false;

  constructor(public config: TargetConfig) {}
}

/** What a pool runs on: a listener's own targets and settings, or a route's. */
export interface PoolConfig {
  /** The listener the pool serves, for logs. */
  readonly name: string;
  /** The route the pool serves, for logs; undefined for a listener's own targets. */
  readonly route?: string;
  readonly targets: readonly TargetConfig[];
  readonly balance: Balance;
  readonly healthCheck: HealthCheck | undefined;
  readonly connectTimeoutMs: number;
}

/** A dial's outcome: a connected socket whose target count the caller gives back with release(), or none. */
export type Dialed =
  | {
      readonly socket: Socket;
      /** The target's key ("host:port"). */
      readonly target: string;
      /** Gives the target's count back; once, however often it is called. */
      readonly release: () => void;
      /** Each failed attempt before this one: "host:port CODE". */
      readonly errors: readonly string[];
    }
  | { readonly socket: undefined; readonly errors: readonly string[] };

export class TargetPool {
  private states: TargetState[] = [];
  private strategy: Strategy;
  private checks: NodeJS.Timeout | undefined;
  private allDownLogged = false;

  constructor(
    private config: PoolConfig,
    private readonly log: Logger,
  ) {
    this.strategy = createStrategy(config.balance);
    this.update(config);
  }

  get targets(): readonly TargetState[] {
    return this.states;
  }

  /**
   * A new config, in place. Targets that stay keep their state: open bridges, health,
   * back-off; the strategy keeps its position when the balance is unchanged.
   */
  update(config: PoolConfig): void {
    this.stop();
    const kept = new Map(this.states.map((s) => [s.config.key, s]));
    this.states = config.targets.map((t) => {
      const state = kept.get(t.key) ?? new TargetState(t);
      state.config = t;
      return state;
    });
    if (config.balance !== this.config.balance) this.strategy = createStrategy(config.balance);
    this.config = config;
    this.startChecks();
  }

  /** Stops the active checks; dials carry on with the targets as they are. */
  stop(): void {
    clearInterval(this.checks);
    this.checks = undefined;
  }

  /** A pool whose route a reload removed: no checks, and no target left to dial. */
  retire(): void {
    this.stop();
    this.states = [];
  }

  /**
   * Connects to one target, trying each at most once in the pool's order, each attempt
   * bounded by the pool's connectTimeout. Each attempt asks the pool as it is then, so a
   * reload between two attempts is obeyed. clientKey is the client's address (source-hash).
   * An abort (the bridge ended) stops at once and gives back any count taken.
   */
  async dial(clientKey: string, signal?: Stop): Promise<Dialed> {
    const tried = new Set<TargetState>();
    const errors: string[] = [];
    for (;;) {
      if (signal?.aborted) return { socket: undefined, errors };
      const candidate = this.next(tried, clientKey);
      if (!candidate) return { socket: undefined, errors };
      tried.add(candidate);
      // Counted from the pick, so a burst of clients does not all see the same idle target.
      candidate.open++;
      const result = await connectOnce(candidate.config.address, this.config.connectTimeoutMs, signal);
      if ("socket" in result) {
        this.connected(candidate);
        let held = true;
        const release = () => {
          if (held) candidate.open--;
          held = false;
        };
        return { socket: result.socket, target: candidate.config.key, release, errors };
      }
      candidate.open--;
      if (signal?.aborted) return { socket: undefined, errors };
      errors.push(`${candidate.config.key} ${result.error}`);
      this.connectFailed(candidate, result.error);
    }
  }

  /** Next target for a bridge: healthy ones by the strategy; when all left are down, those anyway. */
  next(tried: ReadonlySet<TargetState>, clientKey: string, now = Date.now()): TargetState | undefined {
    const untried = this.states.filter((s) => !tried.has(s));
    if (untried.length === 0) return undefined;
    const usable = untried.filter((s) => s.up || now >= s.retryAt);
    if (usable.length > 0) {
      this.allDownLogged = false;
      const picked = this.strategy.pick(usable, clientKey);
      // A down target whose back-off is over gets one trial, not one per client arriving
      // while it runs: against a black hole each of those would wait out the connect
      // timeout. The trial's outcome sets the next retry; an abandoned one expires.
      if (!picked.up) picked.retryAt = now + Math.max(picked.backoffMs, this.config.connectTimeoutMs);
      return picked;
    }
    // A stale health state must not black-hole the listener.
    if (!this.allDownLogged) {
      this.allDownLogged = true;
      this.log.warn(this.labels(), "every target is down: trying them anyway");
    }
    return this.strategy.pick(untried, clientKey);
  }

  private connected(state: TargetState): void {
    state.failuresInRow = 0;
    if (!state.up) this.markUp(state, "a connection succeeded");
  }

  private connectFailed(state: TargetState, code: string, now = Date.now()): void {
    state.connectFailures++;
    const wasUp = state.up;
    this.failed(state, code, "failed connects");
    if (state.up) return;
    // Back-off restarts when the target goes down and doubles with every failed trial.
    state.backoffMs = wasUp ? BACKOFF_MIN_MS : Math.min(state.backoffMs * 2, BACKOFF_MAX_MS);
    state.retryAt = now + state.backoffMs;
  }

  /** One more failure in a row, from a connect or a check; `fall` of them mark the target down. */
  private failed(state: TargetState, code: string, what: string): void {
    state.lastError = code;
    state.successesInRow = 0;
    state.failuresInRow++;
    const fall = this.config.healthCheck?.fall ?? BUILT_IN_DEFAULTS.healthCheck.fall;
    if (state.up && state.failuresInRow >= fall) this.markDown(state, `${state.failuresInRow} ${what} (${code})`);
  }

  private markDown(state: TargetState, why: string): void {
    state.up = false;
    this.log.warn(this.labels(state), `target ${state.config.key} down: ${why}`);
  }

  private markUp(state: TargetState, why: string): void {
    state.up = true;
    state.failuresInRow = 0;
    state.backoffMs = BACKOFF_MIN_MS;
    this.log.info(this.labels(state), `target ${state.config.key} up: ${why}`);
  }

  private labels(state?: TargetState): Record<string, string> {
    return {
      listener: this.config.name,
      ...(this.config.route !== undefined && { route: this.config.route }),
      ...(state && { target: state.config.key }),
    };
  }

  private startChecks(): void {
    const settings = this.config.healthCheck;
    if (!settings) return;
    this.checks = setInterval(() => {
      for (const state of this.states) if (!state.checking) this.check(state, settings.timeoutMs);
    }, settings.intervalMs);
    this.checks.unref();
  }

  /** An active check is a TCP connect, closed as soon as it succeeds. */
  private async check(state: TargetState, timeoutMs: number): Promise<void> {
    state.checking = true;
    const result = await connectOnce(state.config.address, timeoutMs);
    if ("socket" in result) {
      // A late error on a socket we are done with tells us nothing more.
      result.socket.on("error", () => {});
      result.socket.destroy();
    }
    state.checking = false;
    if (this.checks === undefined) return;
    if ("socket" in result) this.checkPassed(state);
    else this.checkFailed(state, result.error);
  }

  private checkPassed(state: TargetState): void {
    state.failuresInRow = 0;
    state.successesInRow++;
    const rise = this.config.healthCheck?.rise ?? BUILT_IN_DEFAULTS.healthCheck.rise;
    if (!state.up && state.successesInRow >= rise) this.markUp(state, `${state.successesInRow} successful checks`);
  }

  private checkFailed(state: TargetState, code: string): void {
    const wasUp = state.up;
    this.failed(state, code, "failed checks");
    if (wasUp && !state.up) state.retryAt = Date.now() + state.backoffMs;
  }
}
