// Every way a config file changes on disk reaches tcpgate as one reload of the whole
// file: in-place edits, saves by rename, delete-and-recreate, a Kubernetes ConfigMap's
// symlink swap (the old version's folder removed or kept), a symlink re-pointed, a folder
// replaced, and SIGHUP when the watcher is off. Real CLI, real files, real sockets.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import {
  mkdirSync,
  mkdtempSync,
  realpathSync,
  renameSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { type Running, startGate, startTcpgate } from "../support/cli.ts";
import { delay, freePorts, startEcho, type TestServer } from "../support/net.ts";
import { configText, connectOutcome, type ListenerDef, roundTrip } from "../support/reload.ts";

describe("reload triggers", () => {
  let echo: TestServer;
  before(async () => {
    echo = await startEcho();
  });
  after(async () => {
    await echo?.close();
  });

  /** Three versions of one file: listener a; a and b; a, b and c. */
  async function versions(): Promise<{ texts: string[]; ports: number[] }> {
    const ports = await freePorts(3);
    const listeners: ListenerDef[] = ports.map((port, i) => ({
      name: "abc"[i] ?? "",
      listen: `127.0.0.1:${port}`,
      targets: [echo.address],
    }));
    return { texts: [1, 2, 3].map((n) => configText(listeners.slice(0, n))), ports };
  }

  /**
   * Saves version n+1 (0-based: n = 1 adds b, n = 2 adds c) with save(), and checks that
   * it took exactly one reload, the new listener serves, and the old ones still do.
   */
  async function saveAndCheck(gate: Running, n: number, ports: number[], save: () => void): Promise<number> {
    const name = "abc"[n] ?? "";
    const port = ports[n] ?? 0;
    assert.equal(await connectOutcome(port), "ECONNREFUSED");
    const from = gate.logs.length;
    const started = performance.now();
    save();
    await gate.waitMsg(`listener ${name}: added on 127.0.0.1:${port}`, { from, timeoutMs: 3000 });
    const latency = performance.now() - started;
    await gate.waitApplied(n);
    assert.equal(await roundTrip(port, `via ${name}`), `via ${name}`);
    for (const old of ports.slice(0, n)) assert.equal(await roundTrip(old, "still"), "still");
    // Whatever burst of events the save made, it is one reload, and nothing was rejected. A
    // reload that read the file half-written or missing ran before the one that read it
    // whole and added the listener, so its line is in already; a later one reads the same
    // file and has nothing to apply.
    assert.equal(gate.applied(), n, `reload lines: ${gate.messages("reload").join(" | ")}`);
    assert.deepEqual(gate.messages("reload rejected"), []);
    return latency;
  }

  test("an in-place edit adds a listener, within a second", { timeout: 15_000 }, async () => {
    const { texts, ports } = await versions();
    const gate = await startGate(texts[0] ?? "", { watch: true });
    try {
      for (const n of [1, 2]) {
        const latency = await saveAndCheck(gate, n, ports, () => gate.write(texts[n] ?? ""));
        assert.ok(latency < 1000, `save applied after ${latency.toFixed(0)} ms`);
      }
    } finally {
      await gate.close();
    }
  });

  test("a save by rename (write a temp file, rename it over) adds a listener", { timeout: 15_000 }, async () => {
    const { texts, ports } = await versions();
    const gate = await startGate(texts[0] ?? "", { watch: true });
    try {
      // Twice: after the first rename, the watcher must follow the new file, not the old inode.
      for (const n of [1, 2]) {
        await saveAndCheck(gate, n, ports, () => {
          const temp = join(gate.dir, ".proxy.yaml.swp");
          writeFileSync(temp, texts[n] ?? "");
          renameSync(temp, gate.path);
        });
      }
    } finally {
      await gate.close();
    }
  });

  test("delete and recreate adds a listener", { timeout: 15_000 }, async () => {
    // Twice: the recreated file often gets the deleted one's inode number back, which once
    // left the watcher on the dead inode, deaf to every later save.
    const { texts, ports } = await versions();
    const gate = await startGate(texts[0] ?? "", { watch: true });
    try {
      for (const n of [1, 2]) {
        await saveAndCheck(gate, n, ports, () => {
          unlinkSync(gate.path);
          writeFileSync(gate.path, texts[n] ?? "");
        });
      }
    } finally {
      await gate.close();
    }
  });

  test("a Kubernetes ConfigMap symlink swap adds a listener", { timeout: 15_000 }, async () => {
    const { texts, ports } = await versions();
    // The layout the kubelet writes: proxy.yaml -> ..data/proxy.yaml, ..data -> ..v1.
    const dir = mkdtempSync(join(tmpdir(), "tcpgate-configmap-"));
    mkdirSync(join(dir, "..v1"));
    writeFileSync(join(dir, "..v1", "proxy.yaml"), texts[0] ?? "");
    symlinkSync("..v1", join(dir, "..data"));
    symlinkSync(join("..data", "proxy.yaml"), join(dir, "proxy.yaml"));
    const gate = startTcpgate(["--config", join(dir, "proxy.yaml"), "--log-level", "debug"]);
    try {
      await gate.started({ watching: true });
      // Each update: the new version beside the old, ..data swapped atomically, the old removed.
      for (const n of [1, 2]) {
        await saveAndCheck(gate, n, ports, () => {
          mkdirSync(join(dir, `..v${n + 1}`));
          writeFileSync(join(dir, `..v${n + 1}`, "proxy.yaml"), texts[n] ?? "");
          symlinkSync(`..v${n + 1}`, join(dir, "..data_tmp"));
          renameSync(join(dir, "..data_tmp"), join(dir, "..data"));
          rmSync(join(dir, `..v${n}`), { recursive: true });
        });
      }
    } finally {
      await gate.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("with --no-watch, an edit changes nothing until SIGHUP", { timeout: 15_000 }, async () => {
    const { texts, ports } = await versions();
    const gate = await startGate(texts[0] ?? "", { watch: false });
    try {
      gate.write(texts[1] ?? "");
      // The wait is the test: nothing may happen for longer than the watcher's debounce
      // and write-finish wait together, several times over.
      await delay(800);
      assert.equal(gate.applied(), 0);
      assert.deepEqual(gate.messages("config file event"), []);
      await saveAndCheck(gate, 1, ports, () => gate.hangup());
      assert.ok(gate.logs.some((l) => l.msg === "reload applied" && l.trigger === "signal"));
    } finally {
      await gate.close();
    }
  });

  test("a save with unchanged content is not reloaded", { timeout: 15_000 }, async () => {
    const { texts, ports } = await versions();
    const gate = await startGate(texts[0] ?? "", { watch: true });
    try {
      gate.write(texts[0] ?? "");
      await gate.waitMsg("reload: unchanged");
      const from = gate.logs.length;
      gate.hangup();
      const line = await gate.waitMsg("reload: unchanged", { from });
      assert.equal(line.trigger, "signal");
      assert.equal(gate.applied(), 0);
      assert.equal(gate.messages("reload: unchanged").length, 2);
      assert.equal(await roundTrip(ports[0] ?? 0, "still"), "still");
    } finally {
      await gate.close();
    }
  });

  /** tcpgate on a config path the test laid out itself, once it watches the file. */
  async function watching(path: string): Promise<Running> {
    const gate = startTcpgate(["--config", path, "--log-level", "debug"]);
    await gate.started({ watching: true });
    return gate;
  }

  const sh = (dir: string, script: string) => execFileSync("sh", ["-c", script], { cwd: dir });

  test("ConfigMap layout: ..data swapped atomically while the old folder stays, then the new file edited", {
    timeout: 20_000,
  }, async () => {
    const { texts, ports } = await versions();
    const dir = realpathSync(mkdtempSync(join(tmpdir(), "tcpgate-configmap-")));
    let gate: Running | undefined;
    try {
      mkdirSync(join(dir, "..v1"));
      writeFileSync(join(dir, "..v1", "proxy.yaml"), texts[0] ?? "");
      sh(dir, "ln -s ..v1 ..data && ln -s ..data/proxy.yaml proxy.yaml");
      gate = await watching(join(dir, "proxy.yaml"));
      const swap = await saveAndCheck(gate, 1, ports, () => {
        mkdirSync(join(dir, "..v2"));
        writeFileSync(join(dir, "..v2", "proxy.yaml"), texts[1] ?? "");
        sh(dir, "ln -sfn ..v2 ..data_tmp && mv -T ..data_tmp ..data");
      });
      assert.ok(swap < 1000, `swap applied after ${swap.toFixed(0)} ms`);
      // The old version's folder is still there; the watcher follows the new one.
      const edit = await saveAndCheck(gate, 2, ports, () =>
        writeFileSync(join(dir, "..v2", "proxy.yaml"), texts[2] ?? ""),
      );
      assert.ok(edit < 1000, `edit of the new file applied after ${edit.toFixed(0)} ms`);
      // An edit of the old version, no longer the config, is not even an event.
      const from = gate.logs.length;
      writeFileSync(join(dir, "..v1", "proxy.yaml"), "version: 1\nlisteners: []\n");
      writeFileSync(join(dir, "..v2", "proxy.yaml"), texts[2] ?? "");
      await gate.waitMsg("reload: unchanged", { from });
      assert.deepEqual(
        gate.logs.slice(from).filter((l) => l.msg === "config file event" && String(l.entry).includes("..v1")),
        [],
      );
    } finally {
      await gate?.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("the config path itself re-pointed to another file, then that file edited", { timeout: 20_000 }, async () => {
    const { texts, ports } = await versions();
    const dir = realpathSync(mkdtempSync(join(tmpdir(), "tcpgate-release-")));
    let gate: Running | undefined;
    try {
      mkdirSync(join(dir, "release-1"));
      writeFileSync(join(dir, "release-1", "proxy.yaml"), texts[0] ?? "");
      sh(dir, "ln -s release-1/proxy.yaml proxy.yaml");
      gate = await watching(join(dir, "proxy.yaml"));
      const repoint = await saveAndCheck(gate, 1, ports, () => {
        mkdirSync(join(dir, "release-2"));
        writeFileSync(join(dir, "release-2", "proxy.yaml"), texts[1] ?? "");
        sh(dir, "ln -sfn release-2/proxy.yaml proxy.yaml");
      });
      assert.ok(repoint < 1000, `re-pointed link applied after ${repoint.toFixed(0)} ms`);
      // Saved by rename, as an editor does, inside the new target's folder.
      const edit = await saveAndCheck(gate, 2, ports, () => {
        writeFileSync(join(dir, "release-2", ".proxy.yaml.swp"), texts[2] ?? "");
        renameSync(join(dir, "release-2", ".proxy.yaml.swp"), join(dir, "release-2", "proxy.yaml"));
      });
      assert.ok(edit < 1000, `edit of the new file applied after ${edit.toFixed(0)} ms`);
    } finally {
      await gate?.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a change no folder event reports (the file's folder renamed away and replaced) is seen by stat", {
    timeout: 20_000,
  }, async () => {
    const { texts, ports } = await versions();
    const dir = realpathSync(mkdtempSync(join(tmpdir(), "tcpgate-folder-")));
    let gate: Running | undefined;
    try {
      mkdirSync(join(dir, "conf"));
      writeFileSync(join(dir, "conf", "proxy.yaml"), texts[0] ?? "");
      gate = await watching(join(dir, "conf", "proxy.yaml"));
      const replaced = await saveAndCheck(gate, 1, ports, () => {
        sh(dir, "mv conf conf.old && mkdir conf");
        writeFileSync(join(dir, "conf", "proxy.yaml"), texts[1] ?? "");
      });
      assert.ok(replaced < 1000, `replaced folder applied after ${replaced.toFixed(0)} ms`);
      assert.equal(gate.messages("config file changed (seen by stat)").length, 1);
      // From then on the new folder is watched: an edit is an event again.
      const edit = await saveAndCheck(gate, 2, ports, () =>
        writeFileSync(join(dir, "conf", "proxy.yaml"), texts[2] ?? ""),
      );
      assert.ok(edit < 1000, `edit in the new folder applied after ${edit.toFixed(0)} ms`);
      assert.equal(gate.messages("config file changed (seen by stat)").length, 1);
    } finally {
      await gate?.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
