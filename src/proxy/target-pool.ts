// A listener's targets with their live state: open bridges, health, and failures. The
// pool hands the next target to try to a bridge; the strategy only orders the healthy.
import { connect } from "node:net";
import { BUILT_IN_DEFAULTS, type ListenerConfig, type TargetConfig } from "../config/runtime.ts";
import type { Logger } from "../log.ts";
import { createStrategy, type Strategy } from "./balance/index.ts";

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

export class TargetPool {
  private states: TargetState[];
  private strategy: Strategy;
  private checks: NodeJS.Timeout | undefined;
  private allDownLogged = false;

  constructor(
    private config: ListenerConfig,
    private readonly log: Logger,
    previous?: TargetPool,
  ) {
    // Targets that stay in the config keep their state across a reload: open bridges,
    // health, back-off. The strategy keeps its position when the balance is unchanged.
    const kept = new Map(previous?.states.map((s) => [s.config.key, s]));
    this.states = config.targets.map((t) => {
      const state = kept.get(t.key) ?? new TargetState(t);
      state.config = t;
      return state;
    });
    this.strategy =
      previous && previous.config.balance === config.balance ? previous.strategy : createStrategy(config.balance);
    this.startChecks();
  }

  get targets(): readonly TargetState[] {
    return this.states;
  }

  /** The pool for a new config of the same listener; this one stops its checks. */
  reconfigure(config: ListenerConfig): TargetPool {
    this.stop();
    return new TargetPool(config, this.log, this);
  }

  stop(): void {
    clearInterval(this.checks);
    this.checks = undefined;
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
      this.log.warn({ listener: this.config.name }, "every target is down: trying them anyway");
    }
    return this.strategy.pick(untried, clientKey);
  }

  connected(state: TargetState): void {
    state.failuresInRow = 0;
    if (!state.up) this.markUp(state, "a connection succeeded");
  }

  connectFailed(state: TargetState, code: string, now = Date.now()): void {
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
    this.log.warn({ listener: this.config.name, target: state.config.key }, `target ${state.config.key} down: ${why}`);
  }

  private markUp(state: TargetState, why: string): void {
    state.up = true;
    state.failuresInRow = 0;
    state.backoffMs = BACKOFF_MIN_MS;
    this.log.info({ listener: this.config.name, target: state.config.key }, `target ${state.config.key} up: ${why}`);
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
  private check(state: TargetState, timeoutMs: number): void {
    state.checking = true;
    const { host, port } = state.config.address;
    const socket = connect({ host, port });
    socket.setTimeout(timeoutMs);
    const done = (error: string | undefined) => {
      socket.removeAllListeners();
      // A late error on a socket we are done with tells us nothing more.
      socket.on("error", () => {});
      socket.destroy();
      state.checking = false;
      if (this.checks === undefined) return;
      if (error === undefined) this.checkPassed(state);
      else this.checkFailed(state, error);
    };
    socket.once("connect", () => done(undefined));
    socket.once("timeout", () => done("ETIMEDOUT"));
    socket.once("error", (e: NodeJS.ErrnoException) => done(e.code ?? e.message));
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
