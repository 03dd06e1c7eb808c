// A Pulsar of a test's own (other ports, own data folder), for scenarios that restart, stop or
// reconfigure the broker: the shared one is never touched.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { ROOT } from "./brokers";
import { freePort } from "./node-red-process";

export interface OwnPulsar {
  serviceUrl: string;
  home: string;
  /** Runs scripts/brokers.mjs with this instance's settings (e.g. "start", "pulsar"); returns stdout. */
  brokers(...args: string[]): string;
  /** Extra environment for the next brokers() calls (e.g. BROKERS_KEEP_DATA). */
  env: NodeJS.ProcessEnv;
  /** Stops the instance and removes its data. */
  dispose(): void;
}

export async function ownPulsar(extraEnv: Record<string, string> = {}): Promise<OwnPulsar> {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), "own-pulsar-"));
  const port = await freePort();
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    BROKERS_HOME: home,
    PULSAR_PORT: String(port),
    PULSAR_HTTP_PORT: String(await freePort()),
    ...extraEnv,
  };
  const brokers = (...args: string[]): string => {
    const r = spawnSync(process.execPath, [path.join(ROOT, "scripts", "brokers.mjs"), ...args], {
      env,
      encoding: "utf8",
    });
    if (r.status !== 0) throw new Error(`brokers ${args.join(" ")} failed:\n${r.stderr}`);
    return r.stdout.trim();
  };
  return {
    serviceUrl: `pulsar://127.0.0.1:${port}`,
    home,
    brokers,
    env,
    dispose() {
      brokers("stop", "pulsar");
      fs.rmSync(home, { recursive: true, force: true });
    },
  };
}
