#!/usr/bin/env -S node --initial-old-space-size=64
// tcpgate's command line: arguments, start-up and signals. Everything else lives elsewhere.
import { readFileSync } from "node:fs";
import { basename } from "node:path";
import { parseArgs } from "node:util";
import { type App, startApp } from "./app.ts";
import { EXPLAIN_USAGE, runExplain } from "./commands/explain.ts";
import { PLAN_USAGE, runPlan } from "./commands/plan.ts";
import { UsageError } from "./commands/usage-error.ts";
import { formatHostPort, parseListenAddress, parseTargetAddress } from "./config/address.ts";
import { lint } from "./config/lint.ts";
import { type LoadResult, loadConfigFile, parseConfig } from "./config/load.ts";
import { LOG_LEVELS } from "./config/schema.ts";
import { summarise } from "./config/summary.ts";
import { BindError } from "./endpoint.ts";
import { createLogger, type Logger } from "./log.ts";

const USAGE = `Usage:
  tcpgate <listen-host> <listen-port> <target-host> <target-port>   quick mode, no config file
  tcpgate --config proxy.yaml            run from a config file (-c)
  tcpgate --config proxy.yaml --check    validate the file, print a summary and warnings, bind nothing
  ${PLAN_USAGE}
                                         what saving the file would do to the running instance
  ${EXPLAIN_USAGE}
                                         who would admit a client, and why (offline, from the file)

Options:
  -c, --config <file>     the YAML config file
      --check             validate only: exit 0 with a summary, or 1 with the errors
      --strict            with --check: exit 1 when there is any warning too
      --no-watch          do not watch the config file for changes
      --insecure-config   load a config file that others than its owner may write
      --log-level <level> trace | debug | info | warn | error (overrides log.level)
      --pretty            human-readable logs instead of JSON lines
  -v, --version           print the version
  -h, --help              print this help`;

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string };
  return pkg.version;
}

/** Node's own parseArgs messages run on with advice about "--": the first sentence is the point. */
function firstSentence(error: unknown): string {
  return (error as Error).message.split("\n")[0]?.split(". ")[0] || "bad arguments";
}

function isParseArgsError(error: unknown): boolean {
  return String((error as NodeJS.ErrnoException)?.code ?? "").startsWith("ERR_PARSE_ARGS");
}

function parseCommandLine(argv: string[]) {
  let parsed: ReturnType<typeof parse>;
  const parse = () =>
    parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        config: { type: "string", short: "c" },
        check: { type: "boolean" },
        strict: { type: "boolean" },
        "no-watch": { type: "boolean" },
        "insecure-config": { type: "boolean" },
        "log-level": { type: "string" },
        pretty: { type: "boolean" },
        version: { type: "boolean", short: "v" },
        help: { type: "boolean", short: "h" },
      },
    });
  try {
    parsed = parse();
  } catch (error) {
    // Node's own message runs on with advice about "--"; its first sentence is the point.
    throw new UsageError(firstSentence(error));
  }
  const { values, positionals } = parsed;
  const level = values["log-level"];
  if (level !== undefined && !(LOG_LEVELS as readonly string[]).includes(level)) {
    throw new UsageError(`--log-level must be one of ${LOG_LEVELS.join(", ")}`);
  }
  if (values.help || values.version) return { ...values, positionals };
  if (values.config === undefined && positionals.length !== 4) {
    throw new UsageError(
      positionals.length === 0
        ? "give --config <file> or four quick-mode arguments"
        : `quick mode takes 4 arguments, got ${positionals.length}`,
    );
  }
  if (values.config !== undefined && positionals.length > 0)
    throw new UsageError("--config and quick-mode arguments exclude each other");
  if (values.check && values.config === undefined) throw new UsageError("--check needs --config <file>");
  if (values.strict && !values.check) throw new UsageError("--strict goes with --check");
  return { ...values, positionals };
}

/** Quick mode: the seed's four arguments become a one-listener config. */
function quickConfig(positionals: string[]): LoadResult {
  const [listenHost = "", listenPort = "", targetHost = "", targetPort = ""] = positionals;
  const join = (host: string, port: string) => (host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`);
  const listen = parseListenAddress(join(listenHost, listenPort));
  if (!listen.ok) throw new UsageError(`listen address: ${listen.error}`);
  const target = parseTargetAddress(join(targetHost, targetPort));
  if (!target.ok) throw new UsageError(`target address: ${target.error}`);
  const config = {
    version: 1,
    listeners: [{ name: "quick", listen: formatHostPort(listen.value), targets: [formatHostPort(target.value)] }],
  };
  return parseConfig(JSON.stringify(config), "arguments");
}

/** Until a handler is installed, Node exits on SIGHUP: catch it before anything else. */
let onHangup: () => void = () => {};
process.on("SIGHUP", () => onHangup());

async function main(argv: string[]): Promise<number> {
  if (argv[0] === "plan") return runPlan(argv.slice(1));
  if (argv[0] === "explain") return runExplain(argv.slice(1));
  const options = parseCommandLine(argv);
  if (options.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (options.version) {
    process.stdout.write(`tcpgate ${version()}\n`);
    return 0;
  }
  const configPath = options.config;
  const loaded =
    configPath === undefined
      ? quickConfig(options.positionals)
      : await loadConfigFile(configPath, { insecure: options["insecure-config"] ?? false });
  if (!loaded.ok) {
    for (const line of loaded.errors) process.stderr.write(`${line}\n`);
    return 1;
  }
  if (options.check) {
    process.stdout.write(`${summarise(loaded.config, basename(configPath ?? ""))}\n`);
    const warnings = lint(loaded.config, loaded.source);
    for (const line of warnings) process.stdout.write(`${line}\n`);
    if (warnings.length > 0 && options.strict) {
      process.stderr.write(`tcpgate: --strict: ${warnings.length} warning${warnings.length === 1 ? "" : "s"}\n`);
      return 1;
    }
    return 0;
  }

  const levelOverride = options["log-level"];
  const log = createLogger({ level: levelOverride ?? loaded.config.logLevel, pretty: options.pretty ?? false });
  let app: App;
  try {
    app = await startApp({
      config: loaded.config,
      file:
        configPath === undefined
          ? undefined
          : {
              path: configPath,
              sha256: loaded.sha256,
              watch: !options["no-watch"],
              insecure: options["insecure-config"] ?? false,
            },
      version: version(),
      log,
      pretty: options.pretty ?? false,
      onApplied: (config) => {
        if (levelOverride === undefined) log.level = config.logLevel;
      },
    });
  } catch (error) {
    if (error instanceof BindError) {
      process.stderr.write(`tcpgate: ${error.message}\n`);
      return 1;
    }
    throw error;
  }
  log.info({ version: version(), config: configPath ?? "arguments" }, "tcpgate started");
  onHangup = () => {
    const reloading = app.reload("signal");
    if (!reloading) log.warn("SIGHUP: quick mode has no config file to reload");
    reloading?.catch((error: unknown) => log.error({ error: String(error) }, "reload failed"));
  };
  return await untilShutdown(app, log);
}

function untilShutdown(app: App, log: Logger): Promise<number> {
  return new Promise((resolve) => {
    let stopping = false;
    const stop = (signal: NodeJS.Signals) => {
      if (stopping) {
        log.warn({ signal }, "second signal: closing every bridge now");
        app.closeAllBridges();
        return;
      }
      stopping = true;
      onHangup = () => log.warn("SIGHUP ignored: shutting down");
      log.info({ signal }, "shutting down");
      app
        .shutdown()
        .then(
          () => log.info("stopped"),
          // A close that fails must not skip the last log lines: say so, and stop anyway.
          (error: unknown) => log.error({ error: String(error) }, "stopped after an error while shutting down"),
        )
        // Log lines are written asynchronously: let the last ones out before exiting.
        .finally(() => log.flush(() => resolve(0)));
    };
    process.on("SIGTERM", stop);
    process.on("SIGINT", stop);
  });
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    // Open handles (a stuck socket) must not keep a finished process alive.
    if (code === 0 || code === 1) setImmediate(() => process.exit(code));
  },
  (error: unknown) => {
    if (error instanceof UsageError || isParseArgsError(error)) {
      process.stderr.write(`tcpgate: ${firstSentence(error)} (see tcpgate --help)\n`);
      process.exit(2);
    }
    process.stderr.write(`tcpgate: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
