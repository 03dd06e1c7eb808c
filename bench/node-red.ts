// A real `node-red` process for the benchmark (test/support/node-red-process.ts): this package and the peer
// package linked into a fresh user directory, quiet logs, optional node flags (--cpu-prof), and its
// resident memory read from /proc.
import fs from "node:fs";
import path from "node:path";
import { ROOT } from "../test/support/brokers";
import {
  makeUserDir,
  startNodeRed as startProcess,
  type NodeRedProcess,
} from "../test/support/node-red-process";

/** The peer the benchmark compares kafka-in with (a devDependency). */
export const PEER_PACKAGE = "node-red-contrib-kafka-suite";

export interface BenchNodeRed extends NodeRedProcess {
  pid: number;
  /** The node types the runtime registered (GET /nodes). */
  types(): Promise<string[]>;
  /** Stops it (SIGINT, so that --cpu-prof writes its profile) and removes the user directory. */
  stop(): Promise<void>;
}

/** Resident set size and its high-water mark of a process, in bytes (Linux /proc). */
export function memoryOf(pid: number): { rss: number; hwm: number } | undefined {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
    const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? NaN);
    return { rss: kb("VmRSS") * 1024, hwm: kb("VmHWM") * 1024 };
  } catch {
    return undefined;
  }
}

export async function startNodeRed(nodeFlags: string[] = []): Promise<BenchNodeRed> {
  const peerInstalled = fs.existsSync(path.join(ROOT, "node_modules", PEER_PACKAGE));
  const userDir = makeUserDir(peerInstalled ? [PEER_PACKAGE] : []);
  const nr = await startProcess({ userDir, nodeArgs: nodeFlags, logLevel: "warn" }).catch((err: unknown) => {
    fs.rmSync(userDir, { recursive: true, force: true });
    throw err;
  });
  return {
    ...nr,
    pid: nr.process.pid ?? -1,
    async types() {
      const r = await nr.api("GET", "/nodes");
      const sets = Array.isArray(r.json) ? (r.json as { types?: string[] }[]) : [];
      return sets.flatMap((s) => s.types ?? []);
    },
    async stop() {
      await nr.stop("SIGINT");
      fs.rmSync(userDir, { recursive: true, force: true });
    },
  };
}
