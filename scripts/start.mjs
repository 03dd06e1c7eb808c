#!/usr/bin/env node
// The main job (`npm start`): local Kafka and Pulsar (unless KAFKA_BROKERS and PULSAR_URL point elsewhere),
// a generator of demo sensor records into Kafka, and a real Node-RED with this package loaded from a
// project-local user directory (.node-red/) and the bridge example deployed (when the user directory has no
// flows yet). Prints the editor URL and a live count of records bridged. Ctrl-C stops everything it started.
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { startDemoGenerator } from "./demo-generator.mjs";

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
  const kafkaBrokers = process.env.KAFKA_BROKERS || "127.0.0.1:9092";
  const pulsarUrl = process.env.PULSAR_URL || "pulsar://127.0.0.1:6650";
  const pulsarHttp = process.env.PULSAR_HTTP_URL || "http://127.0.0.1:8080";
  const red = spawn(
    process.execPath,
    [path.join(ROOT, "node_modules", "node-red", "red.js"), "--userDir", USER_DIR, "--port", String(PORT)],
    { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] },
  );
  const logFile = fs.createWriteStream(path.join(USER_DIR, "node-red.log"));
  red.stdout.pipe(logFile);
  red.stderr.pipe(logFile);
  const editor = `http://127.0.0.1:${PORT}/`;
  await waitForEditor(editor);
  await deployExampleIfEmpty(editor, kafkaBrokers, pulsarUrl);
  const generator = await startDemoGenerator({
    brokers: kafkaBrokers.split(","),
    topic: "sensors",
    partitions: 3,
    ratePerSecond: 20,
  });
  console.log(`\nNode-RED editor: ${editor}   (log: ${path.join(USER_DIR, "node-red.log")})`);
  console.log(
    "Demo records go to the Kafka topic sensors; the bridge publishes them to persistent://public/default/sensors.",
  );
  console.log("Ctrl-C stops everything this command started.\n");
  const ticker = setInterval(() => {
    void bridgedCount(pulsarHttp).then((n) => {
      process.stdout.write(
        `\rproduced to Kafka: ${generator.state.produced}   bridged to Pulsar: ${n ?? "?"}   `,
      );
    });
  }, 2000);
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    clearInterval(ticker);
    red.kill("SIGINT");
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
  red.on("close", stop);
  await new Promise((resolve) => red.on("close", resolve));
  await generator.stop();
  console.log("");
  if (startedBrokers) run(process.execPath, [brokersScript, "stop"]);
}

async function waitForEditor(url) {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    try {
      if ((await fetch(`${url}settings`)).ok) return;
    } catch {
      /* not up yet */
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`Node-RED did not start; see ${path.join(USER_DIR, "node-red.log")}`);
}

async function deployExampleIfEmpty(url, kafkaBrokers, pulsarUrl) {
  const current = await (await fetch(`${url}flows`, { headers: { accept: "application/json" } })).json();
  if (Array.isArray(current) && current.length > 0) return;
  const flow = JSON.parse(
    fs.readFileSync(path.join(ROOT, "examples", "01 - Kafka to Pulsar bridge.json"), "utf8"),
  );
  for (const n of flow) {
    if (n.type === "kafka-cluster") n.brokers = kafkaBrokers;
    if (n.type === "pulsar-cluster") n.serviceUrl = pulsarUrl;
  }
  const res = await fetch(`${url}flows`, {
    method: "POST",
    headers: { "content-type": "application/json", "Node-RED-Deployment-Type": "full" },
    body: JSON.stringify(flow),
  });
  if (!res.ok) throw new Error(`deploying the example failed: ${res.status} ${await res.text()}`);
}

async function bridgedCount(pulsarHttp) {
  try {
    const res = await fetch(`${pulsarHttp}/admin/v2/persistent/public/default/sensors/stats`);
    if (!res.ok) return undefined;
    return (await res.json()).msgInCounter;
  } catch {
    return undefined;
  }
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exitCode = 1;
});
