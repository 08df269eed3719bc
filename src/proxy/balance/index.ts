import type { Balance } from "../../config/runtime.ts";
import { LeastConnections } from "./least-connections.ts";
import { Random } from "./random.ts";
import { RoundRobin } from "./round-robin.ts";
import { SourceHash } from "./source-hash.ts";
import type { Strategy } from "./strategy.ts";

export type { Candidate, Strategy } from "./strategy.ts";

export function createStrategy(balance: Balance): Strategy {
  switch (balance) {
    case "round-robin":
      return new RoundRobin();
    case "least-connections":
      return new LeastConnections();
    case "random":
      return new Random();
    case "source-hash":
      return new SourceHash();
  }
}
