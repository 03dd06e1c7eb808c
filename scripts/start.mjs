#!/usr/bin/env node
// The main job (`npm start`): local Kafka and Pulsar (unless KAFKA_BROKERS and PULSAR_URL point elsewhere)
// and a real Node-RED with this package loaded from a project-local user directory (.node-red/).
// Ctrl-C stops Node-RED and the brokers this command started.
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const USER_DIR = path.resolve(process.env.NODE_RED_USER_DIR || path.join(ROOT, ".node-red"));
const PORT = Number(process.env.NODE_RED_PORT || 1880);
const brokersScript = path.join(ROOT, "scripts", "brokers.mjs");

function run(cmd, argv) {
  const r = spawnSync(cmd, argv, { cwd: ROOT, stdio: "inherit" });
  if (r.status !== 0) throw new Error(`${path.basename(argv[0] ?? cmd)} ${argv.slice(1).join(" ")} failed`);
}

// Node-RED finds the package in the user directory's node_modules, as if it were installed there.
function prepareUserDir() {
  fs.mkdirSync(path.join(USER_DIR, "node_modules"), { recursive: true });
  const pkg = path.join(USER_DIR, "package.json");
  if (!fs.existsSync(pkg))
    fs.writeFileSync(pkg, JSON.stringify({ name: "node-red-project", private: true }, null, 2));
  const link = path.join(USER_DIR, "node_modules", "node-red-contrib-kafka-pulsar");
  fs.rmSync(link, { recursive: true, force: true });
  fs.symlinkSync(ROOT, link, "dir");
}

async function main() {
  run(process.execPath, [path.join(ROOT, "scripts", "build.mjs")]);
  const external = Boolean(process.env.KAFKA_BROKERS && process.env.PULSAR_URL);
  let startedBrokers = false;
  if (external) {
    console.log(`using Kafka at ${process.env.KAFKA_BROKERS} and Pulsar at ${process.env.PULSAR_URL}`);
  } else if (spawnSync(process.execPath, [brokersScript, "status"], { stdio: "ignore" }).status !== 0) {
    run(process.execPath, [brokersScript, "start"]);
    startedBrokers = true;
  }
  prepareUserDir();
  const red = spawn(
    process.execPath,
    [path.join(ROOT, "node_modules", "node-red", "red.js"), "--userDir", USER_DIR, "--port", String(PORT)],
    { cwd: ROOT, stdio: "inherit" },
  );
  console.log(
    `\nNode-RED editor: http://127.0.0.1:${PORT}/  (Ctrl-C stops everything this command started)\n`,
  );
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    red.kill("SIGINT");
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
  await new Promise((resolve) => red.on("close", resolve));
  if (startedBrokers) run(process.execPath, [brokersScript, "stop"]);
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exitCode = 1;
});
