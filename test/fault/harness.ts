// The fault suite's machinery (issue 6): a Kafka and a Pulsar of its own behind TCP proxies it controls,
// real `node-red` processes running the bridge kafka-in -> pulsar-out (or a flow a scenario wires between
// them), one fault injected mid-stream per scenario, and an independent read-back of the Pulsar topic with
// the official `pulsar-client consume`. Each run reports records lost, duplicated and reordered per key.
import { byPartition } from "../support/flow-nodes";
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { ROOT, requestJson, uniqueName } from "../support/brokers";
import { produceWithJava, type JavaRecord } from "../support/java-kafka";
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
  /**
   * Scenarios with `recreate`: waits until the records written so far are committed, deletes the Kafka
   * topic, creates it again (offsets from 0) and writes the rest of the records to it.
   */
  recreateKafkaTopic(): Promise<void>;
  log(line: string): void;
}

/** A node of the flow a run deploys. */
export type FlowNode = Record<string, unknown> & { id: string };

export interface Scenario {
  name: string;
  /** node-red processes in the consumer group. */
  instances?: number;
  /** Records (besides the normal ones) that make the flow fail every time. */
  poison?: number;
  /** Where in the stream the fault starts, as a share of the records stored in Pulsar. */
  at?: number;
  /** kafka-in settings that differ from the suite's. */
  kafkaIn?: Record<string, unknown>;
  /** pulsar-out settings that differ from the suite's. */
  pulsarOut?: Record<string, unknown>;
  /** The Pulsar topic is partitioned into this many (default: not partitioned). */
  pulsarPartitions?: number;
  /**
   * Effectively-once must also keep each key's order (every key on one Pulsar partition): 0 reordered per
   * key is part of the goal in that mode.
   */
  ordered?: boolean;
  /**
   * The nodes between kafka-in and pulsar-out (the first one gets kafka-in's msgs; they wire to "out"
   * themselves); by default the poison check alone. A function of the mode when they differ.
   */
  between?: FlowNode[] | ((mode: Mode) => FlowNode[]);
  /**
   * Records per Pulsar message: the flow joins this many into one JSON array. The read-back then expects
   * every message to be such an array, and counts the records in them.
   */
  joined?: number;
  /**
   * The records' values are JSON text, read with kafka-in's value format "json": a poison record is then
   * either text that is not JSON (a decode failure, dead-lettered at once) or a JSON string the poison check
   * refuses (dead-lettered after its tries), in turns.
   */
  json?: boolean;
  /**
   * Records written by Kafka's Java client instead of kafkajs, in 4 runs spread over the stream: in turns,
   * with a header whose value is null, with no timestamp (-1), and with both and the header name repeated.
   * Each run also holds one poison record with a null header value and no timestamp.
   */
  odd?: number;
  /**
   * Only the first half of the records is written before the fault; the scenario writes the rest to the
   * topic deleted and created again (run.recreateKafkaTopic).
   */
  recreate?: boolean;
  inject(run: Run): Promise<void>;
}

/** The per-partition joins of the join scenario in effectively-once mode. */
const JOINS = Array.from({ length: PARTITIONS }, (_, p) => `j-p${p}`);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Starts a broker the scenario stopped, on its data (as OwnBrokers.restart does between its two steps). */
async function startAgain(lab: Lab, broker: "kafka" | "pulsar"): Promise<void> {
  lab.brokers.env.BROKERS_KEEP_DATA = "1";
  try {
    await lab.brokers.brokers("start", broker);
  } finally {
    delete lab.brokers.env.BROKERS_KEEP_DATA;
  }
}

/** The flow with the nodes `ids` renamed, so that a "flows" or "nodes" deploy restarts them. */
export function renamed(flow: unknown[], ids: string[], suffix: string): unknown[] {
  return flow.map((n) => {
    const node = n as FlowNode;
    return ids.includes(node.id) ? { ...node, name: `${node.id} ${suffix}` } : node;
  });
}

/** The suite's poison check (the flow throws for a poison record, every time), wired to `wires`. */
function check(wires: string[]): FlowNode {
  return {
    id: "check",
    type: "function",
    func: 'if (msg.payload.startsWith("poison")) throw new Error("indigestible record"); return msg;',
    outputs: 1,
    wires: [wires],
  };
}

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
        await run.nodeReds[0]?.deploy(renamed(run.flow, ["in", "out"], `#${i}`), types[i % 3]);
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
  {
    // Issue 12, case 1: Node-RED raises onSend for a disabled node, which never calls done(). A small
    // window (max in flight 50, as in the issue) shows a stall at once; then Pulsar is restarted and the
    // function is redeployed while the disabled node stays wired.
    name: "disabled node downstream",
    kafkaIn: { maxInFlight: 50 },
    between: [check(["out", "dbg"]), { id: "dbg", type: "debug", d: true, active: true, wires: [] }],
    async inject(run) {
      await run.lab.brokers.restart("pulsar");
      await run.nodeReds[0]?.deploy(renamed(run.flow, ["check"], "#1"), "nodes");
    },
  },
  {
    // Issue 12, case 2: a core join holds its parts' records until the joined msg is in Pulsar. Pulsar is
    // stopped (so what pulsar-out holds is never stored by a closing producer) while the join holds parts
    // and pulsar-out holds joined msgs; the join alone is redeployed (it calls its parts' done() on close:
    // they must be emitted again, not settled), then the whole flow; Pulsar starts again, and the join is
    // redeployed 3 times more while the stream flows, with nothing after it that would deliver the records
    // of its held parts again. The join's 2 s timeout sends the last, short group of the stream.
    name: "join of 5 across a redeploy",
    joined: 5,
    // Effectively-once: one Pulsar message holds records of one Kafka partition (the producer that
    // deduplicates it is the partition's), so the records are joined per partition there, as the help says.
    between: (mode) => {
      const joins = mode === "effectively-once" ? JOINS : ["j1"];
      return [
        check([mode === "effectively-once" ? "by-partition" : "j1"]),
        ...(mode === "effectively-once" ? [byPartition("by-partition", joins) as FlowNode] : []),
        ...joins.map((id) => ({
          // not "join": Node-RED takes a property naming a node id (here its type) for a dependency
          id,
          type: "join",
          mode: "custom",
          build: "array",
          property: "payload",
          propertyType: "msg",
          count: "5",
          timeout: "2",
          wires: [["out"]],
        })),
      ];
    },
    async inject(run) {
      const deployJoin = (i: number, type: "nodes" | "full") =>
        run.nodeReds[0]?.deploy(renamed(run.flow, ["j1", ...JOINS], `#${i}`), type);
      await run.lab.brokers.brokers("stop", "pulsar");
      try {
        await sleep(3000);
        await deployJoin(1, "nodes");
        run.log("join redeployed with Pulsar stopped");
        await sleep(3000);
        await deployJoin(2, "full");
        run.log("whole flow redeployed with Pulsar stopped");
        await sleep(3000);
      } finally {
        await startAgain(run.lab, "pulsar");
      }
      run.log(`Pulsar started again, ${await run.stored()} stored`);
      for (let i = 3; i <= 5; i++) {
        await sleep(1000);
        await deployJoin(i, "nodes");
      }
      run.log(`join redeployed 3 times while the stream flows, ${await run.stored()} stored`);
    },
  },
  {
    // Issue 13: keyed records to a 4-partition topic keep their key's partition (the Java hash), so the
    // order per key holds in effectively-once mode too; Pulsar is restarted mid-stream.
    name: "keyed 4-partition topic",
    pulsarPartitions: 4,
    ordered: true,
    async inject(run) {
      await run.lab.brokers.restart("pulsar");
    },
  },
  {
    // Issue 13: the sends time out while Pulsar cannot be reached (5 s send timeout, a 20 s silent cut):
    // kafka-in replays each partition from its first failed record, in order.
    name: "pulsar cut longer than the send timeout",
    pulsarOut: { sendTimeoutMs: 5000 },
    ordered: true,
    async inject(run) {
      run.lab.pulsarProxy.cut();
      await sleep(20_000);
      run.lab.pulsarProxy.heal();
    },
  },
  {
    // Issue 13: one of two instances is redeployed twice: its partitions move to the other and back, and
    // the instance that loses a partition closes its named producers so that the new owner can open them.
    name: "rebalance: 2 instances, one redeployed",
    instances: 2,
    ordered: true,
    async inject(run) {
      for (let i = 1; i <= 2; i++) {
        await run.nodeReds[1]?.deploy(renamed(run.flow, ["in", "out"], `#${i}`), "full");
        await sleep(5000);
      }
    },
  },
  {
    // Issue 13: the Kafka topic is deleted and created again under the same name while node-red runs on
    // (no redeploy): its new records start at offset 0 again, below offsets that the effectively-once
    // producers already stored, and must be stored as new records (a new topic id names new producers),
    // neither taken for duplicates nor stored twice. Kafka itself drops the old topic's records, so the
    // topic is deleted once all of them are committed.
    name: "Kafka topic deleted and recreated",
    recreate: true,
    ordered: true,
    async inject(run) {
      await run.recreateKafkaTopic();
    },
  },
  {
    // Issue 12, case 3: valid records only Kafka's Java client writes (a null header value, timestamp -1)
    // among the normal ones must be delivered, and poison records (not JSON; or JSON the flow refuses) must
    // all reach the dead-letter topic, including ones that have a null header and no timestamp themselves.
    name: "null-header and −1 records",
    json: true,
    odd: 200,
    poison: 4,
    at: 0,
    async inject() {
      /* the odd and the poison records are in the stream from the start */
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
  /** Poison records produced. */
  poison?: number;
  /**
   * Records in the dead-letter topic that are not poison: read back with the poison ones, else counted by
   * the topic's stats.
   */
  goodDeadLettered: number;
  /** Why the first good record was dead-lettered (its dead-letter copy's dlq.error), when one was. */
  deadLetterReason?: string;
  /** Joined scenarios: messages read back that are not a JSON array of 1 to `joined` records. */
  notJoined?: number;
  seconds: number;
  /**
   * The scenario's goal: 0 lost (settled); 0 lost and 0 duplicated (effectively-once); all poison and
   * nothing else dead-lettered (scenarios with poison); every message a join (joined scenarios).
   */
  ok: boolean;
  problem?: string;
}

function kafkaValue(key: number, seq: number): string {
  return `k${key}:${seq}`;
}

/**
 * The bridge flow of a run: kafka-in -> (poison check, or the scenario's nodes) -> pulsar-out, through the
 * lab's proxies.
 */
function bridgeFlow(o: {
  lab: Lab;
  kafkaTopic: string;
  groupId: string;
  pulsarTopic: string;
  deadLetterTopic: string;
  mode: Mode;
  scenario: Scenario;
}): unknown[] {
  const wanted = o.scenario.between ?? [check(["out"])];
  const between = typeof wanted === "function" ? wanted(o.mode) : wanted;
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
      valueFormat: o.scenario.json ? "json" : "string",
      maxInFlight: 1000,
      failurePolicy: "dead-letter",
      maxAttempts: 3,
      retryBackoffMs: 200,
      deadLetterTarget: "pulsar",
      deadLetterPulsarCluster: "pc",
      deadLetterTopic: o.deadLetterTopic,
      ...o.scenario.kafkaIn,
      wires: [[between[0]?.id]],
    },
    ...between.map((n) => ({ ...n, z: "tab" })),
    {
      id: "out",
      type: "pulsar-out",
      z: "tab",
      cluster: "pc",
      topic: o.pulsarTopic,
      effectivelyOnce: o.mode === "effectively-once",
      ...o.scenario.pulsarOut,
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

/** The record values of a joined message (a JSON array of 1 to `n` strings), else undefined. */
export function joinedParts(content: string, n: number): string[] | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(content);
  } catch {
    return undefined;
  }
  return Array.isArray(parsed) &&
    parsed.length >= 1 &&
    parsed.length <= n &&
    parsed.every((v) => typeof v === "string")
    ? parsed
    : undefined;
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
  // Pulsar keeps what it stored until the read-back, although no subscription holds it meanwhile: with the
  // default retention (none), a ledger that the deduplication cursor has passed is deleted when it rolls
  // over (a broker restart does that), and the suite would count Pulsar's own trimming as records lost.
  r = await admin("POST", `/admin/v2/namespaces/public/${ns}/retention`, {
    retentionTimeInMinutes: -1,
    retentionSizeInMB: -1,
  });
  if (r.status !== 204) throw new Error(`setting retention: ${r.status} ${JSON.stringify(r.json)}`);
  if (scenario.pulsarPartitions) {
    r = await admin("PUT", `/admin/v2/persistent/public/${ns}/bridged/partitions`, scenario.pulsarPartitions);
    if (r.status !== 204) throw new Error(`partitioning the topic: ${r.status} ${JSON.stringify(r.json)}`);
  }

  // The records: KEYS keys, a per-key sequence in each value, keys hashed to partitions by Kafka (kafkajs's
  // default partitioner and the Java client's hash keys alike). Written in order, in runs: by kafkajs, and
  // (scenario.odd) by Kafka's Java producer.
  await createTopic(kafkaTopic, PARTITIONS, [lab.kafkaBootstrap]);
  const produced = new Map<number, number>();
  const encode = (text: string) => (scenario.json ? JSON.stringify(text) : text);
  type Runs = { java: boolean; records: JavaRecord[] }[];
  // what is written before the fault, and (scenario.recreate) the rest, written to the recreated topic
  const runs: Runs = [];
  const laterRuns: Runs = [];
  let writing = runs;
  const write = (java: boolean, record: JavaRecord) => {
    const last = writing[writing.length - 1];
    if (last?.java === java) last.records.push(record);
    else writing.push({ java, records: [record] });
  };
  // What each poison record's dead-letter copy holds: its value as written.
  const poisonValues: string[] = [];
  const poisonAt = new Set<number>();
  for (let p = 0; p < (scenario.poison ?? 0); p++)
    poisonAt.add(Math.floor(((p + 1) * records) / ((scenario.poison ?? 0) + 1)));
  const odd = Math.min(scenario.odd ?? 0, Math.floor(records / 2));
  const oddRuns =
    odd > 0
      ? [0, 1, 2, 3].map((c) => ({
          start: Math.floor(((c + 1) * records) / 5),
          length: c < 3 ? Math.floor(odd / 4) : odd - 3 * Math.floor(odd / 4),
        }))
      : [];
  for (let i = 0; i < records; i++) {
    if (scenario.recreate && i === Math.floor(records / 2)) writing = laterRuns;
    const key = i % KEYS;
    const seq = produced.get(key) ?? 0;
    produced.set(key, seq + 1);
    const value = encode(kafkaValue(key, seq));
    const oddRun = oddRuns.find((r) => i >= r.start && i < r.start + r.length);
    if (oddRun) {
      const kind = (i - oddRun.start) % 3;
      write(true, {
        key: `k${key}`,
        value,
        timestamp: kind === 0 ? undefined : "none",
        headers:
          kind === 0
            ? [["odd", null]]
            : kind === 1
              ? [["odd", "no timestamp"]]
              : [
                  ["odd", null],
                  ["via", "java"],
                  ["odd", "again"],
                ],
      });
      if (i - oddRun.start === Math.floor(oddRun.length / 2)) {
        const poison = `poison-${i}-java`;
        poisonValues.push(poison);
        write(true, { key: `k${key}`, value: poison, timestamp: "none", headers: [["odd", null]] });
      }
    } else write(false, { key: `k${key}`, value });
    if (poisonAt.has(i)) {
      // JSON values: in turns, text that is not JSON, and a JSON string the poison check throws for
      const poison =
        scenario.json && poisonValues.length % 2 === 1 ? JSON.stringify(`poison-${i}`) : `poison-${i}`;
      poisonValues.push(poison);
      write(false, { key: `k${key}`, value: poison });
    }
  }
  const writeAll = async (all: Runs) => {
    for (const run of all) {
      if (!run.java) {
        await produce(
          kafkaTopic,
          run.records.map((r) => ({ key: r.key as string, value: r.value })),
          5000,
          [lab.kafkaBootstrap],
        );
        continue;
      }
      const written = await produceWithJava(kafkaTopic, run.records, lab.kafkaBootstrap);
      // the oddity must be real: Kafka stored "no timestamp" for the records written without one
      const wrong = run.records.filter((r, i) => r.timestamp === "none" && written[i]?.timestamp !== -1);
      if (wrong.length > 0) throw new Error(`${wrong.length} records written without a timestamp got one`);
    }
  };
  const total = [...runs, ...laterRuns].reduce((n, r) => n + r.records.length, 0);
  const flow = bridgeFlow({ lab, kafkaTopic, groupId, pulsarTopic, deadLetterTopic, mode, scenario });
  const userDirs: string[] = [];
  const nodeReds: NodeRedProcess[] = [];
  // Messages a topic took in since Pulsar last started (admin stats).
  const msgsIn = async (name: string) => {
    const s = await admin("GET", `/admin/v2/persistent/public/${ns}/${name}/stats`);
    return s.status === 200 ? ((s.json as { msgInCounter?: number }).msgInCounter ?? 0) : 0;
  };
  const stored = async () => {
    if (!scenario.pulsarPartitions) return msgsIn("bridged");
    const s = await admin("GET", `/admin/v2/persistent/public/${ns}/bridged/partitioned-stats`);
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
    await writeAll(runs);
    log(`${scenario.name} / ${mode}: ${total} records in Kafka (${odd} by the Java client)`);
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
      async recreateKafkaTopic() {
        await waitFor(
          "the first topic's records committed",
          () => settled().catch(() => false),
          300_000,
          500,
        );
        await kafkaAdmin.deleteTopics({ topics: [kafkaTopic] });
        await waitFor(
          "the Kafka topic gone",
          async () => !(await kafkaAdmin.listTopics()).includes(kafkaTopic),
          60_000,
        );
        log(`${scenario.name} / ${mode}: Kafka topic deleted at ${await stored()} stored`);
        await createTopic(kafkaTopic, PARTITIONS, [lab.kafkaBootstrap]);
        await writeAll(laterRuns);
        log(`${scenario.name} / ${mode}: topic created again, the other records written to it`);
      },
    };
    const at = scenario.at ?? 0.1;
    const offsets = () => groupOffsets(kafkaAdmin, groupId, kafkaTopic);
    const settled = async () => (await offsets()).settled;
    let stalled = false;
    try {
      await waitFor(
        `${Math.round(at * 100)} % of the stream in Pulsar`,
        async () => (await stored()) >= (at * records) / (scenario.joined ?? 1),
        120_000,
        50,
      );
    } catch {
      // the bridge stalled before the fault: no fault then, and the run reports what reached Pulsar
      stalled = true;
      problem = `stalled before the fault: ${await stored()} messages in Pulsar after 120 s`;
    }
    if (!stalled) {
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
    }
    if (problem) {
      // what node-red said last, and where each partition stands: the clues to a stall
      log(`${scenario.name} / ${mode}: offsets ${JSON.stringify(await offsets().catch(() => undefined))}`);
      nodeReds.forEach((nr, i) =>
        log(
          `${scenario.name} / ${mode}: node-red #${i} said last:\n${nr.output().split("\n").slice(-40).join("\n")}`,
        ),
      );
    }
  } finally {
    for (const nr of nodeReds) await nr.stop();
    await kafkaAdmin.disconnect().catch(() => {});
    for (const dir of userDirs) fs.rmSync(dir, { recursive: true, force: true });
  }

  const joined = scenario.joined;
  const messages = await readBack(lab, pulsarTopic, joined ? Math.ceil(records / joined) : records);
  let values = messages;
  let notJoined: number | undefined;
  if (joined) {
    // every message a join of 1 to `joined` records (a short one at the join's timeout); the records counted
    values = [];
    notJoined = 0;
    for (const m of messages) {
      const parts = joinedParts(m, joined);
      if (parts) values.push(...parts);
      else {
        notJoined++;
        values.push(m);
      }
    }
  }
  const { lost, duplicated, reordered } = tally(values, produced);
  let deadLettered: string | undefined;
  let goodDeadLettered: number;
  let deadOk = true;
  if (poisonValues.length > 0) {
    const dead = await readBack(lab, deadLetterTopic, poisonValues.length);
    const poison = new Set(poisonValues);
    const found = poisonValues.filter((v) => dead.includes(v)).length;
    deadLettered = `${found}/${poisonValues.length}`;
    goodDeadLettered = dead.filter((v) => !poison.has(v)).length;
    deadOk =
      found === poisonValues.length && goodDeadLettered === 0 && values.every((v) => !v.startsWith("poison"));
  } else goodDeadLettered = await msgsIn("dead");
  // the reason a good record was dead-lettered: the property of the first copy, as Pulsar's admin shows it
  let deadLetterReason: string | undefined;
  if (goodDeadLettered > 0 && poisonValues.length === 0) {
    const res = await fetch(
      `${lab.brokers.httpUrl}/admin/v2/persistent/public/${ns}/dead/examinemessage?initialPosition=earliest&messagePosition=1`,
    ).catch(() => undefined);
    // the properties come as one JSON object in X-Pulsar-PROPERTY
    let reason: unknown;
    try {
      reason = (JSON.parse(res?.headers.get("x-pulsar-property") ?? "{}") as Record<string, unknown>)[
        "dlq.error"
      ];
    } catch {
      reason = undefined;
    }
    deadLetterReason = typeof reason === "string" ? reason : `unknown (admin answered ${res?.status})`;
  }
  const ok =
    !problem &&
    lost === 0 &&
    deadOk &&
    (notJoined ?? 0) === 0 &&
    (mode === "settled" || (duplicated === 0 && (!scenario.ordered || reordered === 0)));
  const result: Result = {
    scenario: scenario.name,
    mode,
    records,
    committedAtFault,
    committedAfterFault,
    read: messages.length,
    lost,
    duplicated,
    reordered,
    deadLettered,
    poison: poisonValues.length || undefined,
    goodDeadLettered,
    deadLetterReason,
    notJoined,
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
  const rows = results.map((r) => {
    const good = r.goodDeadLettered ? `${r.goodDeadLettered} good` : "";
    const dead = [r.deadLettered, good].filter(Boolean).join(" + ") || "–";
    const why = [r.problem, r.notJoined ? `${r.notJoined} messages not joined` : ""]
      .filter(Boolean)
      .join("; ");
    return `| ${r.scenario} | ${r.mode} | ${r.records} | ${r.committedAtFault} → ${r.committedAfterFault} | ${r.read} | ${r.lost} | ${r.duplicated} | ${r.reordered} | ${dead} | ${r.seconds} | ${r.ok ? "met" : `**missed**${why ? `: ${why}` : ""}`} |`;
  });
  return [
    "| scenario | mode | records | committed during the fault | read back | lost | duplicated | reordered per key | dead-lettered | s | goal |",
    "| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | --- | ---: | --- |",
    ...rows,
  ].join("\n");
}
