// Extra Pulsar processes (a proxy, a second broker) run by a test from the distribution scripts/brokers.mjs
// unpacked: each in its own process group, with its config, logs and temp files in one folder of its own.
import { spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { javaHome, pulsarDist } from "../../scripts/brokers.mjs";

/** The unpacked distribution the suite's standalone runs from (BROKERS_CACHE, PULSAR_VERSION as there). */
export function pulsarDistribution(): string {
  const dist = pulsarDist();
  if (!fs.existsSync(path.join(dist, "READY")))
    throw new Error(`no Pulsar distribution at ${dist}: run "node scripts/brokers.mjs start pulsar" first`);
  return dist;
}

/** Writes a Pulsar .conf file: one key=value a line (keys never repeat, as the bookie would list them). */
export function writeConf(file: string, keys: Record<string, string>): void {
  fs.writeFileSync(
    file,
    Object.entries(keys)
      .map(([k, v]) => `${k}=${v}\n`)
      .join(""),
  );
}

/**
 * Writes `file` as the distribution's conf/<base> with `keys` set in place: the embedded bookie reads a
 * standalone's file too, and a key that appears twice becomes a list there.
 */
export function patchConf(base: string, file: string, keys: Record<string, string>): void {
  const text = fs.readFileSync(path.join(pulsarDistribution(), "conf", base), "utf8");
  const seen = new Set<string>();
  const lines = text.split("\n").flatMap((line) => {
    const key = /^\s*([A-Za-z0-9_.]+)\s*=/.exec(line)?.[1];
    if (key === undefined || !Object.hasOwn(keys, key)) return [line];
    if (seen.has(key)) return [];
    seen.add(key);
    return [`${key}=${keys[key]}`];
  });
  for (const [k, v] of Object.entries(keys)) if (!seen.has(k)) lines.push(`${k}=${v}`);
  fs.writeFileSync(file, `${lines.join("\n")}\n`);
}

/** The HTTP status of a GET (0 when nothing answers). */
export async function httpStatus(url: string): Promise<number> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
    await res.arrayBuffer();
    return res.status;
  } catch {
    return 0;
  }
}

export function tcpOpen(port: number, host = "127.0.0.1"): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}

export interface PulsarProcess {
  pid: number;
  /** Where the process's stdout and stderr go. */
  logFile: string;
  /** The last lines of the log, for failure messages. */
  tail(lines?: number): string;
  alive(): boolean;
  /** Waits until `ready` holds; rejects early (with the log's tail) if the process exits. */
  waitUntil(what: string, ready: () => Promise<boolean>, timeoutMs: number): Promise<void>;
  /** SIGTERM to the whole group, SIGKILL after `graceMs`; resolves once the process is gone. */
  stop(graceMs?: number): Promise<void>;
}

/**
 * Runs `bin/pulsar <args>` from the distribution in a new process group. `env` adds to the test's
 * environment; PULSAR_MEM defaults to a small heap and logs go to `dir`.
 */
export function runPulsar(args: string[], dir: string, env: Record<string, string>): PulsarProcess {
  const dist = pulsarDistribution();
  const logFile = path.join(dir, `${args[0] ?? "pulsar"}.out`);
  const tmp = path.join(dir, "tmp");
  fs.mkdirSync(tmp, { recursive: true });
  const fd = fs.openSync(logFile, "a");
  const child = spawn(path.join(dist, "bin", "pulsar"), args, {
    cwd: dist,
    detached: true,
    stdio: ["ignore", fd, fd],
    env: {
      ...process.env,
      JAVA_HOME: javaHome(),
      PULSAR_LOG_DIR: path.join(dir, "logs"),
      PULSAR_MEM: "-Xms64m -Xmx256m -XX:MaxDirectMemorySize=256m",
      PULSAR_GC: "-XX:+UseG1GC -XX:+PerfDisableSharedMem",
      PULSAR_GC_LOG: " ",
      PULSAR_EXTRA_OPTS: `-Djava.io.tmpdir=${tmp} -Dpulsar.allocator.exit_on_oom=true`,
      ...env,
    },
  });
  fs.closeSync(fd);
  const pid = child.pid;
  if (pid === undefined) throw new Error(`bin/pulsar ${args.join(" ")} did not start`);
  let exited = false;
  child.once("exit", () => (exited = true));
  child.unref();
  // A test that crashes must not leave a JVM behind: the group dies with the test process.
  const killOnExit = () => signalGroup("SIGKILL");
  process.once("exit", killOnExit);
  function signalGroup(sig: NodeJS.Signals): void {
    try {
      process.kill(-(pid as number), sig);
    } catch {
      /* already gone */
    }
  }
  const tail = (lines = 40) => {
    try {
      return fs.readFileSync(logFile, "utf8").split("\n").slice(-lines).join("\n");
    } catch {
      return `(no log at ${logFile})`;
    }
  };
  return {
    pid,
    logFile,
    tail,
    alive: () => !exited,
    async waitUntil(what, ready, timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        if (exited) throw new Error(`${what}: the process exited. Last lines of ${logFile}:\n${tail()}`);
        if (await ready()) return;
        await new Promise((r) => setTimeout(r, 250));
      }
      throw new Error(`${what}: not ready after ${timeoutMs} ms. Last lines of ${logFile}:\n${tail()}`);
    },
    async stop(graceMs = 15_000) {
      process.removeListener("exit", killOnExit);
      if (exited) return;
      signalGroup("SIGTERM");
      const deadline = Date.now() + graceMs;
      while (!exited && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      if (!exited) signalGroup("SIGKILL");
      while (!exited) await new Promise((r) => setTimeout(r, 50));
    },
  };
}
