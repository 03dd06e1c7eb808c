// A Kafka and a Pulsar of a test's own (other ports, own data folder), for scenarios that restart, stop,
// cut off or reconfigure a broker: the shared ones are never touched. Nothing starts until the test calls
// brokers("start", ...).
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { ROOT } from "./brokers";
import { freePort } from "./node-red-process";

export interface OwnBrokers {
  kafkaPort: number;
  /** host:port of the Kafka listener (clients are sent to BROKERS_ADVERTISED_HOST on the same port). */
  kafkaBootstrap: string;
  pulsarPort: number;
  pulsarHttpPort: number;
  serviceUrl: string;
  httpUrl: string;
  home: string;
  /**
   * Runs scripts/brokers.mjs with this instance's settings (e.g. "start", "pulsar"); resolves with stdout.
   * Asynchronous, so that the test's own event loop (sends, TCP proxies) goes on meanwhile.
   */
  brokers(...args: string[]): Promise<string>;
  /** Stops a broker and starts it again on the same data. */
  restart(broker: "kafka" | "pulsar"): Promise<void>;
  /** Environment of the brokers() calls. */
  env: NodeJS.ProcessEnv;
  /** Stops what this instance started and removes its data. */
  dispose(): Promise<void>;
}

export async function ownBrokers(extraEnv: Record<string, string> = {}): Promise<OwnBrokers> {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), "own-brokers-"));
  const [kafkaPort, kafkaControllerPort, pulsarPort, pulsarHttpPort] = [
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
  ];
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    BROKERS_HOME: home,
    KAFKA_PORT: String(kafkaPort),
    KAFKA_CONTROLLER_PORT: String(kafkaControllerPort),
    PULSAR_PORT: String(pulsarPort),
    PULSAR_HTTP_PORT: String(pulsarHttpPort),
    ...extraEnv,
  };
  const brokers = (...args: string[]): Promise<string> =>
    new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [path.join(ROOT, "scripts", "brokers.mjs"), ...args], {
        env,
        stdio: ["ignore", "pipe", "pipe"],
      });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d: Buffer) => (stdout += d.toString("utf8")));
      child.stderr.on("data", (d: Buffer) => (stderr += d.toString("utf8")));
      child.on("error", reject);
      child.on("close", (code) => {
        if (code === 0) resolve(stdout.trim());
        else reject(new Error(`brokers ${args.join(" ")} failed (${code}):\n${stderr}`));
      });
    });
  return {
    kafkaPort,
    kafkaBootstrap: `127.0.0.1:${kafkaPort}`,
    pulsarPort,
    pulsarHttpPort,
    serviceUrl: `pulsar://127.0.0.1:${pulsarPort}`,
    httpUrl: `http://127.0.0.1:${pulsarHttpPort}`,
    home,
    brokers,
    env,
    async restart(broker) {
      await brokers("stop", broker);
      env.BROKERS_KEEP_DATA = "1";
      try {
        await brokers("start", broker);
      } finally {
        delete env.BROKERS_KEEP_DATA;
      }
    },
    async dispose() {
      await brokers("stop");
      fs.rmSync(home, { recursive: true, force: true });
    },
  };
}
