// A listener's ways to a target: its own targets, and one pool per route by TLS server
// name. A reload updates the pools in place: a route keeps its pool (and its targets'
// state) while its names stay the same, and a route the reload removed dials nothing more.
import type { ListenerConfig, RouteConfig } from "../config/runtime.ts";
import type { Logger } from "../log.ts";
import { compileSniRoutes, type SniMatcher } from "../policy/sni-match.ts";
import type { Onward } from "./reach-target.ts";
import { type PoolConfig, TargetPool, type TargetState } from "./target-pool.ts";

interface Route {
  readonly config: RouteConfig;
  readonly onward: Onward;
}

export class Router {
  private readonly own: TargetPool;
  private ownOnward: Onward;
  private routes: Route[] = [];
  private match: SniMatcher = () => undefined;

  constructor(
    config: ListenerConfig,
    private readonly log: Logger,
  ) {
    this.own = new TargetPool(config, log);
    this.ownOnward = { pool: this.own, proxyProtocol: config.proxyProtocol };
    this.update(config);
  }

  update(config: ListenerConfig): void {
    this.own.update(config);
    this.ownOnward = { pool: this.own, proxyProtocol: config.proxyProtocol };
    const before = new Map(this.routes.map((r) => [r.config.key, r.onward.pool]));
    this.routes = config.routes.map((route) => {
      const poolConfig = routePool(config, route);
      const pool = before.get(route.key);
      before.delete(route.key);
      if (pool) pool.update(poolConfig);
      return {
        config: route,
        onward: { pool: pool ?? new TargetPool(poolConfig, this.log), proxyProtocol: route.proxyProtocol },
      };
    });
    for (const gone of before.values()) gone.retire();
    this.match = compileSniRoutes(config.routes.map((r) => r.sni));
  }

  /** Whether clients are routed by their ClientHello. */
  get routing(): boolean {
    return this.routes.length > 0;
  }

  /** The listener's own targets: for every client without routes, for those no route takes with them. */
  get default(): Onward | undefined {
    return this.own.targets.length > 0 ? this.ownOnward : undefined;
  }

  /** The route for a server name (undefined: none sent); its listener's own targets when no route takes it. */
  route(serverName: string | undefined): (Onward & { readonly route?: string }) | undefined {
    const index = serverName === undefined ? undefined : this.match(serverName);
    const route = index === undefined ? undefined : this.routes[index];
    return route ? { ...route.onward, route: route.config.key } : this.default;
  }

  /** Every pool's targets, labelled by route (undefined for the listener's own). */
  pools(): { readonly route: string | undefined; readonly targets: readonly TargetState[] }[] {
    return [
      { route: undefined, targets: this.own.targets },
      ...this.routes.map((r) => ({ route: r.config.key, targets: r.onward.pool.targets })),
    ];
  }

  /** Stops every pool's checks (a removed listener); dials in progress carry on. */
  stop(): void {
    this.own.stop();
    for (const r of this.routes) r.onward.pool.stop();
  }
}

function routePool(listener: ListenerConfig, route: RouteConfig): PoolConfig {
  return {
    name: listener.name,
    route: route.key,
    targets: route.targets,
    balance: route.balance,
    healthCheck: route.healthCheck,
    connectTimeoutMs: listener.connectTimeoutMs,
  };
}
