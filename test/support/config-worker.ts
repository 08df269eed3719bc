// Runs the config loader on fuzzed input in a worker thread, so that the test can bound
// each run in time: a loader stuck in a loop is terminated from outside and reported as a
// hang, instead of hanging the test file. startLoaderWorker() is the main thread's side.
import { isMainThread, parentPort, Worker } from "node:worker_threads";

export type Request =
  | { readonly kind: "parse"; readonly input: Uint8Array | string; readonly file: string }
  | { readonly kind: "load"; readonly path: string; readonly insecure: boolean };

/** What the loader did: returned a config, returned errors, or threw past its boundary. */
export type Outcome =
  | {
      readonly ok: true;
      readonly listeners: number;
      /** Every allow/deny rule of the result: as written, and how many ranges it stands for. */
      readonly rules: readonly (readonly [string, number])[];
      readonly ms: number;
    }
  | { readonly ok: false; readonly errors: readonly string[]; readonly ms: number }
  | { readonly threw: string; readonly ms: number }
  | { readonly hang: true; readonly ms: number };

async function serve(request: Request): Promise<Outcome> {
  const { loadConfigFile, parseConfig } = await import("../../src/config/load.ts");
  const started = performance.now();
  try {
    const result =
      request.kind === "parse"
        ? parseConfig(request.input, request.file)
        : await loadConfigFile(request.path, { insecure: request.insecure });
    const ms = performance.now() - started;
    if (!result.ok) return { ok: false, errors: result.errors, ms };
    const { listeners, admin } = result.config;
    const rules = [...listeners.flatMap((l) => [...l.allow, ...l.deny]), ...(admin?.allow ?? [])].map(
      (r) => [r.source, r.cidrs.length] as const,
    );
    return { ok: true, listeners: listeners.length, rules, ms };
  } catch (error) {
    return {
      threw: error instanceof Error ? (error.stack ?? error.message) : String(error),
      ms: performance.now() - started,
    };
  }
}

if (!isMainThread && parentPort) {
  const port = parentPort;
  port.on("message", (request: Request) => {
    serve(request).then((outcome) => port.postMessage(outcome));
  });
  port.postMessage("ready");
}

export interface LoaderWorker {
  /** Runs one request; a run longer than timeoutMs is a hang (the worker is replaced). */
  run(request: Request, timeoutMs?: number): Promise<Outcome>;
  close(): Promise<void>;
}

/** A worker thread with the loader (TypeScript through tsx, as in the tests themselves). */
export async function startLoaderWorker(): Promise<LoaderWorker> {
  const spawn = async () => {
    const url = new URL(import.meta.url).href;
    const worker = new Worker(
      `import("tsx/esm/api").then(({ register }) => { register(); return import(${JSON.stringify(url)}); })`,
      { eval: true },
    );
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("the loader worker did not start in 20 s")), 20_000);
      worker.once("error", reject);
      worker.once("message", () => {
        clearTimeout(timer);
        worker.off("error", reject);
        resolve();
      });
    });
    return worker;
  };
  let worker = await spawn();
  return {
    async run(request, timeoutMs = 5000) {
      const started = performance.now();
      const answer = await new Promise<Outcome | undefined>((resolve, reject) => {
        const timer = setTimeout(() => resolve(undefined), timeoutMs);
        worker.once("message", (outcome: Outcome) => {
          clearTimeout(timer);
          resolve(outcome);
        });
        worker.once("error", reject);
        worker.postMessage(request);
      });
      worker.removeAllListeners("error");
      if (answer) return answer;
      worker.removeAllListeners("message");
      await worker.terminate();
      worker = await spawn();
      return { hang: true, ms: performance.now() - started };
    },
    async close() {
      await worker.terminate();
    },
  };
}
