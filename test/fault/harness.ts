// The fault suite's machinery (issue 6): a Kafka and a Pulsar of its own behind TCP proxies it controls,
// real `node-red` processes running the bridge kafka-in -> pulsar-out, one fault injected mid-stream per
// scenario, and an independent read-back of the Pulsar topic with the official `pulsar-client consume`.
// Each run reports records lost, duplicated and reordered per key.
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { ROOT, requestJson, uniqueName } from "../support/brokers";
import { createTopic, groupMembers, groupOffsets, produce, testKafka } from "../support/kafka";
import { makeUserDir, startNodeRed, type NodeRedProcess } from "../support/node-red-process";
import { ownBrokers, type OwnBrokers } from "../support/own-brokers";
import { tcpProxy, type TcpProxy } from "../support/tcp-proxy";
import { waitFor } from "../support/wait";

/** The brokers advertise this loopback address; the proxies listen on it and forward to 127.0.0.1. */
const PROXY_HOST = "127.0.0.2";
const PARTITIONS = 3;
const KEYS = 60;

export type Mode = "settled" | "effectively-once";

export interface Lab {
  brokers: OwnBrokers;
  kafkaProxy: TcpProxy;
  pulsarProxy: TcpProxy;
  /** What Node-RED is given: the proxies' addresses. */
  kafkaBootstrap: string;
  serviceUrl: string;
  close(): Promise<void>;
}

export async function startLab(log: (line: string) => void = () => {}): Promise<Lab> {
  const brokers = await ownBrokers({ BROKERS_ADVERTISED_HOST: PROXY_HOST });
  const proxies: TcpProxy[] = [];
  const through = async (port: number) => {
    const p = await tcpProxy({ host: PROXY_HOST, port }, { host: "127.0.0.1", port });
    proxies.push(p);
    return p;
  };
  try {
    const kafkaProxy = await through(brokers.kafkaPort);
    const pulsarProxy = await through(brokers.pulsarPort);
    // The broker's own HTTP calls to its advertised address; never cut.
    await through(brokers.pulsarHttpPort);
    const t0 = Date.now();
    await brokers.brokers("start");
    log(`lab: own Kafka and Pulsar ready in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    return {
      brokers,
      kafkaProxy,
      pulsarProxy,
      kafkaBootstrap: `${PROXY_HOST}:${brokers.kafkaPort}`,
      serviceUrl: `pulsar://${PROXY_HOST}:${brokers.pulsarPort}`,
      async close() {
        await brokers.dispose();
        await Promise.all(proxies.map((p) => p.close()));
      },
    };
  } catch (err) {
    await brokers.dispose().catch(() => undefined);
    await Promise.all(proxies.map((p) => p.close()));
    throw err;
  }
}

/** What a scenario's fault sees and may use. */
export interface Run {
  lab: Lab;
  mode: Mode;
  records: number;
  nodeReds: NodeRedProcess[];
  flow: unknown[];
  /** Records stored in the Pulsar topic so far (admin stats). */
  stored(): Promise<number>;
  /** Kills (or stops) node-red number i and starts it again on its user directory. */
  restartNodeRed(i: number, signal?: NodeJS.Signals): Promise<void>;
  log(line: string): void;
}

export interface Scenario {
  name: string;
  /** node-red processes in the consumer group. */
  instances?: number;
  /** Records (besides the normal ones) that make the flow fail every time. */
  poison?: number;
  /** Where in the stream the fault starts, as a share of the records stored in Pulsar. */
  at?: number;
  inject(run: Run): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export const SCENARIOS: Scenario[] = [
  {
    name: "pulsar restart",
    async inject(run) {
      await run.lab.brokers.restart("pulsar");
    },
  },
  {
    name: "kafka restart",
    async inject(run) {
      await run.lab.brokers.restart("kafka");
    },
  },
  {
    name: "node-red SIGKILL",
    async inject(run) {
      await run.restartNodeRed(0, "SIGKILL");
    },
  },
  {
    name: "20 redeploys",
    async inject(run) {
      const types = ["full", "flows", "nodes"] as const;
      for (let i = 0; i < 20; i++) {
        // A changed name makes "flows" and "nodes" deploys restart both bridge nodes, not only "full".
        const flow = run.flow.map((n) => {
          const node = n as { id: string; name?: string };
          return node.id === "in" || node.id === "out" ? { ...node, name: `${node.id} #${i}` } : node;
        });
        await run.nodeReds[0]?.deploy(flow, types[i % 3]);
        await sleep(300);
      }
    },
  },
  {
    name: "rebalance: 1 of 2 node-red killed",
    instances: 2,
    async inject(run) {
      await run.nodeReds[1]?.stop("SIGKILL");
    },
  },
  {
    name: "network cut to kafka (30 s)",
    async inject(run) {
      run.lab.kafkaProxy.cut();
      await sleep(30_000);
      run.lab.kafkaProxy.heal();
    },
  },
  {
    name: "network cut to pulsar (30 s)",
    async inject(run) {
      run.lab.pulsarProxy.cut();
      await sleep(30_000);
      run.lab.pulsarProxy.heal();
    },
  },
  {
    name: "poison records -> dead letter",
    poison: 5,
    at: 0,
    async inject() {
      /* the poison records are in the stream from the start */
    },
  },
];

export interface Result {
  scenario: string;
  mode: Mode;
  records: number;
  /** Offsets committed in Kafka (all partitions) when the fault began and when it was over: shows the fault hit mid-stream. */
  committedAtFault: number;
  committedAfterFault: number;
  /** Messages read back from the Pulsar topic. */
  read: number;
  lost: number;
  duplicated: number;
  reordered: number;
  /** Poison records found in the dead-letter topic (of those produced). */
  deadLettered?: string;
  seconds: number;
  /** The scenario's goal: 0 lost (settled); 0 lost and 0 duplicated (effectively-once); all poison dead-lettered. */
  ok: boolean;
  problem?: string;
}

function kafkaValue(key: number, seq: number): string {
  return `k${key}:${seq}`;
}

/** The bridge flow of a run: kafka-in -> (poison check) -> pulsar-out, through the lab's proxies. */
function bridgeFlow(o: {
  lab: Lab;
  kafkaTopic: string;
  groupId: string;
  pulsarTopic: string;
  deadLetterTopic: string;
  mode: Mode;
}): unknown[] {
  return [
    { id: "tab", type: "tab", label: "fault" },
    { id: "kc", type: "kafka-cluster", brokers: o.lab.kafkaBootstrap, clientId: "fault" },
    { id: "pc", type: "pulsar-cluster", serviceUrl: o.lab.serviceUrl, adminUrl: o.lab.brokers.httpUrl },
    {
      id: "in",
      type: "kafka-in",
      z: "tab",
      cluster: "kc",
      topics: o.kafkaTopic,
      groupId: o.groupId,
      startFrom: "earliest",
      valueFormat: "string",
      maxInFlight: 1000,
      failurePolicy: "dead-letter",
      maxAttempts: 3,
      retryBackoffMs: 200,
      deadLetterTarget: "pulsar",
      deadLetterPulsarCluster: "pc",
      deadLetterTopic: o.deadLetterTopic,
      wires: [["check"]],
    },
    {
      id: "check",
      type: "function",
      z: "tab",
      func: 'if (msg.payload.startsWith("poison")) throw new Error("indigestible record"); return msg;',
      outputs: 1,
      wires: [["out"]],
    },
    {
      id: "out",
      type: "pulsar-out",
      z: "tab",
      cluster: "pc",
      topic: o.pulsarTopic,
      effectivelyOnce: o.mode === "effectively-once",
      wires: [],
    },
  ];
}

/** Every message of a topic, read by the official CLI consumer; stops after `quietMs` without a new one. */
export async function readBack(
  lab: Lab,
  topic: string,
  expected: number,
  quietMs = 5_000,
): Promise<string[]> {
  const child = spawn(
    process.execPath,
    [
      path.join(ROOT, "scripts", "brokers.mjs"),
      "pulsar-client",
      "consume",
      "-s",
      "read-back",
      "-p",
      "Earliest",
      "-n",
      "0",
      "-q",
      "10000",
      topic,
    ],
    { cwd: ROOT, env: lab.brokers.env, stdio: ["ignore", "pipe", "pipe"] },
  );
  const values: string[] = [];
  let rest = "";
  let last = Date.now();
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => {
    const lines = (rest + d.toString("utf8")).split("\n");
    rest = lines.pop() ?? "";
    for (const line of lines) {
      const i = line.indexOf("content:");
      if (i >= 0) {
        values.push(line.slice(i + "content:".length).trim());
        last = Date.now();
      }
    }
  });
  child.stderr.on("data", (d: Buffer) => (stderr = (stderr + d.toString("utf8")).slice(-4000)));
  const exited = new Promise<void>((resolve) => child.once("close", () => resolve()));
  const started = Date.now();
  try {
    // The JVM takes a few seconds to start; then the topic drains quickly.
    await waitFor(
      `the read-back of ${topic}`,
      () =>
        child.exitCode !== null ||
        (values.length >= expected && Date.now() - last > quietMs) ||
        (values.length > 0 && Date.now() - last > 4 * quietMs) ||
        Date.now() - started > 90_000,
      180_000,
      250,
    );
  } finally {
    child.kill("SIGTERM");
    await exited;
  }
  if (values.length === 0 && expected > 0) throw new Error(`the CLI consumer read nothing:\n${stderr}`);
  return values;
}

/** Lost, duplicated and reordered-per-key counts of what was read against the records produced. */
export function tally(
  values: string[],
  produced: Map<number, number>,
): { lost: number; duplicated: number; reordered: number } {
  const seen = new Map<string, number>();
  const highest = new Map<string, number>();
  let reordered = 0;
  for (const v of values) {
    const n = seen.get(v) ?? 0;
    seen.set(v, n + 1);
    if (n > 0) continue; // a duplicate is counted once, as a duplicate
    const [key, seq] = v.split(":");
    if (key === undefined || seq === undefined) continue;
    const s = Number(seq);
    if (s < (highest.get(key) ?? -1)) reordered++;
    else highest.set(key, s);
  }
  let lost = 0;
  for (const [key, count] of produced) {
    for (let s = 0; s < count; s++) if (!seen.has(kafkaValue(key, s))) lost++;
  }
  let duplicated = 0;
  for (const n of seen.values()) duplicated += n - 1;
  return { lost, duplicated, reordered };
}

export async function runScenario(
  lab: Lab,
  scenario: Scenario,
  mode: Mode,
  records: number,
  log: (line: string) => void = () => {},
): Promise<Result> {
  const t0 = Date.now();
  const id = uniqueName("f");
  const ns = `fault-${id}`;
  const kafkaTopic = `fault-${id}`;
  const groupId = `fault-group-${id}`;
  const pulsarTopic = `persistent://public/${ns}/bridged`;
  const deadLetterTopic = `persistent://public/${ns}/dead`;
  const admin = (method: string, pathname: string, body?: unknown) =>
    requestJson(`${lab.brokers.httpUrl}${pathname}`, method, body);

  let r = await admin("PUT", `/admin/v2/namespaces/public/${ns}`, {});
  if (r.status !== 204) throw new Error(`creating namespace ${ns}: ${r.status} ${JSON.stringify(r.json)}`);
  if (mode === "effectively-once") {
    r = await admin("POST", `/admin/v2/namespaces/public/${ns}/deduplication`, true);
    if (r.status !== 204) throw new Error(`enabling deduplication: ${r.status}`);
  }

  // The records: KEYS keys, a per-key sequence in each value, keys hashed to partitions by Kafka.
  await createTopic(kafkaTopic, PARTITIONS, [lab.kafkaBootstrap]);
  const produced = new Map<number, number>();
  const batch: { key: string; value: string }[] = [];
  const poisonAt = new Set<number>();
  for (let p = 0; p < (scenario.poison ?? 0); p++)
    poisonAt.add(Math.floor(((p + 1) * records) / ((scenario.poison ?? 0) + 1)));
  for (let i = 0; i < records; i++) {
    const key = i % KEYS;
    const seq = produced.get(key) ?? 0;
    produced.set(key, seq + 1);
    batch.push({ key: `k${key}`, value: kafkaValue(key, seq) });
    if (poisonAt.has(i)) batch.push({ key: `k${key}`, value: `poison-${i}` });
  }
  const flow = bridgeFlow({ lab, kafkaTopic, groupId, pulsarTopic, deadLetterTopic, mode });
  const userDirs: string[] = [];
  const nodeReds: NodeRedProcess[] = [];
  const stored = async () => {
    const s = await admin("GET", `/admin/v2/persistent/public/${ns}/bridged/stats`);
    return s.status === 200 ? ((s.json as { msgInCounter?: number }).msgInCounter ?? 0) : 0;
  };
  const kafkaAdmin = testKafka("fault-check", [lab.kafkaBootstrap]).admin();
  let problem: string | undefined;
  let committedAtFault = -1;
  let committedAfterFault = -1;
  try {
    for (let i = 0; i < (scenario.instances ?? 1); i++) {
      const userDir = makeUserDir();
      userDirs.push(userDir);
      nodeReds.push(await startNodeRed({ userDir }));
    }
    await Promise.all(nodeReds.map((nr) => nr.deploy(flow)));
    // Every instance holds partitions before the stream starts, so that a fault on one of them matters.
    await kafkaAdmin.connect();
    await waitFor(
      "every node-red in the consumer group with partitions",
      async () => {
        const g = await groupMembers(kafkaAdmin, groupId);
        return g.members === nodeReds.length && g.withPartitions === nodeReds.length;
      },
      60_000,
      250,
    );
    await produce(kafkaTopic, batch, 5000, [lab.kafkaBootstrap]);
    log(`${scenario.name} / ${mode}: ${batch.length} records in Kafka`);
    const run: Run = {
      lab,
      mode,
      records,
      nodeReds,
      flow,
      stored,
      log,
      async restartNodeRed(i, signal = "SIGKILL") {
        const old = nodeReds[i];
        if (!old) throw new Error(`no node-red #${i}`);
        await old.stop(signal);
        nodeReds[i] = await startNodeRed({ userDir: old.userDir });
      },
    };
    const at = scenario.at ?? 0.1;
    await waitFor(
      `${Math.round(at * 100)} % of the stream in Pulsar`,
      async () => (await stored()) >= at * records,
      120_000,
      50,
    );
    const offsets = () => groupOffsets(kafkaAdmin, groupId, kafkaTopic);
    const settled = async () => (await offsets()).settled;
    committedAtFault = (await offsets()).committed;
    log(`${scenario.name} / ${mode}: fault at ${await stored()} stored, ${committedAtFault} committed`);
    await scenario.inject(run);
    committedAfterFault = await offsets().then(
      (o) => o.committed,
      () => -1,
    );
    try {
      await waitFor("every offset committed", () => settled().catch(() => false), 300_000, 1000);
    } catch (err) {
      problem = (err as Error).message;
    }
  } finally {
    for (const nr of nodeReds) await nr.stop();
    await kafkaAdmin.disconnect().catch(() => {});
    for (const dir of userDirs) fs.rmSync(dir, { recursive: true, force: true });
  }

  const values = await readBack(lab, pulsarTopic, records);
  const { lost, duplicated, reordered } = tally(values, produced);
  let deadLettered: string | undefined;
  let deadOk = true;
  if (scenario.poison) {
    const dead = await readBack(lab, deadLetterTopic, scenario.poison);
    const found = [...poisonAt].filter((i) => dead.includes(`poison-${i}`)).length;
    deadLettered = `${found}/${scenario.poison}`;
    deadOk = found === scenario.poison && values.every((v) => !v.startsWith("poison"));
  }
  const ok = !problem && lost === 0 && deadOk && (mode === "settled" || duplicated === 0);
  const result: Result = {
    scenario: scenario.name,
    mode,
    records,
    committedAtFault,
    committedAfterFault,
    read: values.length,
    lost,
    duplicated,
    reordered,
    deadLettered,
    seconds: Math.round((Date.now() - t0) / 1000),
    ok,
    problem,
  };
  log(`${scenario.name} / ${mode}: ${JSON.stringify(result)}`);
  await admin("DELETE", `/admin/v2/namespaces/public/${ns}?force=true`).catch(() => undefined);
  return result;
}

/** The results as a Markdown table. */
export function resultsTable(results: Result[]): string {
  const rows = results.map(
    (r) =>
      `| ${r.scenario} | ${r.mode} | ${r.records} | ${r.committedAtFault} → ${r.committedAfterFault} | ${r.read} | ${r.lost} | ${r.duplicated} | ${r.reordered} | ${r.deadLettered ?? "–"} | ${r.seconds} | ${r.ok ? "met" : `**missed**${r.problem ? `: ${r.problem}` : ""}`} |`,
  );
  return [
    "| scenario | mode | records | committed during the fault | read back | lost | duplicated | reordered per key | dead-lettered | s | goal |",
    "| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | --- | ---: | --- |",
    ...rows,
  ].join("\n");
}
