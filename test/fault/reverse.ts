// The fault suite for the other direction (issue 16): pulsar-in -> kafka-out in real `node-red`
// processes, on the lab's own Kafka and Pulsar behind its proxies. The records are written to a
// partitioned Pulsar topic first (keyed, a sequence per key in each value); one fault is injected when a
// share of them is in Kafka; the run ends when the subscription's backlog is 0 (every message
// acknowledged), and Kafka's own console consumer reads the Kafka topic back. Goal: 0 lost (a message
// acknowledged only once Kafka had it; duplicates are counted, allowed after a fault).
import fs from "node:fs";
import { requestJson, runTool, uniqueName } from "../support/brokers";
import { createTopic, testKafka } from "../support/kafka";
import { makeUserDir, startNodeRed, type NodeRedProcess } from "../support/node-red-process";
import { waitFor } from "../support/wait";
import { createClient } from "../../src/pulsar/client";
import { renamed, tally, type Lab, type Result } from "./harness";

const PULSAR_PARTITIONS = 2;
const KAFKA_PARTITIONS = 3;
const KEYS = 60;
const SUBSCRIPTION = "bridge";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface ReverseRun {
  lab: Lab;
  nodeReds: NodeRedProcess[];
  flow: unknown[];
  restartNodeRed(i: number, signal?: NodeJS.Signals): Promise<void>;
  log(line: string): void;
}

export interface ReverseScenario {
  name: string;
  /** node-red processes on the Shared subscription. */
  instances?: number;
  inject(run: ReverseRun): Promise<void>;
}

export const REVERSE_SCENARIOS: ReverseScenario[] = [
  {
    name: "reverse: kafka restart",
    async inject(run) {
      await run.lab.brokers.restart("kafka");
    },
  },
  {
    name: "reverse: pulsar restart",
    async inject(run) {
      await run.lab.brokers.restart("pulsar");
    },
  },
  {
    name: "reverse: node-red SIGKILL",
    async inject(run) {
      await run.restartNodeRed(0, "SIGKILL");
    },
  },
  {
    name: "reverse: 10 redeploys",
    async inject(run) {
      const types = ["full", "flows", "nodes"] as const;
      for (let i = 0; i < 10; i++) {
        // a changed name makes "flows" and "nodes" deploys restart both nodes too
        await run.nodeReds[0]?.deploy(renamed(run.flow, ["in", "out"], `#${i}`), types[i % 3]);
        await sleep(500);
      }
    },
  },
  {
    name: "reverse: 2 instances on a Shared subscription, one killed",
    instances: 2,
    async inject(run) {
      await run.nodeReds[1]?.stop("SIGKILL");
    },
  },
];

function reverseFlow(lab: Lab, pulsarTopic: string, kafkaTopic: string): unknown[] {
  return [
    { id: "tab", type: "tab", label: "reverse" },
    { id: "kc", type: "kafka-cluster", brokers: lab.kafkaBootstrap, clientId: "fault-reverse" },
    { id: "pc", type: "pulsar-cluster", serviceUrl: lab.serviceUrl, adminUrl: lab.brokers.httpUrl },
    {
      id: "in",
      type: "pulsar-in",
      z: "tab",
      cluster: "pc",
      topics: pulsarTopic,
      subscription: SUBSCRIPTION,
      subscriptionType: "shared",
      initialPosition: "earliest",
      valueFormat: "string",
      maxInFlight: 1000,
      nackDelayMs: 500,
      wires: [["out"]],
    },
    { id: "out", type: "kafka-out", z: "tab", cluster: "kc", topic: kafkaTopic, wires: [] },
  ];
}

/** Every record of a Kafka topic, read by Kafka's console consumer until it has been quiet for 10 s. */
async function readKafka(lab: Lab, topic: string): Promise<string[]> {
  const r = await runTool(
    "kafka-tool",
    [
      "console-consumer",
      "--bootstrap-server",
      lab.kafkaBootstrap,
      "--topic",
      topic,
      "--from-beginning",
      "--timeout-ms",
      "10000",
    ],
    { timeoutMs: 300_000 },
  );
  const values = r.stdout.split("\n").filter((line) => /^k\d+:\d+$/.test(line.trim()));
  if (values.length === 0)
    throw new Error(`the console consumer read nothing (exit ${r.code}):\n${r.stderr.slice(-2000)}`);
  return values.map((v) => v.trim());
}

export async function runReverseScenario(
  lab: Lab,
  scenario: ReverseScenario,
  records: number,
  log: (line: string) => void = () => {},
): Promise<Result> {
  const t0 = Date.now();
  const id = uniqueName("r");
  const ns = `reverse-${id}`;
  const name = "source";
  const pulsarTopic = `persistent://public/${ns}/${name}`;
  const kafkaTopic = `reverse-${id}`;
  const admin = (method: string, pathname: string, body?: unknown) =>
    requestJson(`${lab.brokers.httpUrl}${pathname}`, method, body);
  const ok = async (what: string, p: Promise<{ status: number; json: unknown }>) => {
    const r = await p;
    if (r.status !== 204) throw new Error(`${what}: ${r.status} ${JSON.stringify(r.json)}`);
  };
  await ok("creating the namespace", admin("PUT", `/admin/v2/namespaces/public/${ns}`, {}));
  await ok(
    "setting retention",
    admin("POST", `/admin/v2/namespaces/public/${ns}/retention`, {
      retentionTimeInMinutes: -1,
      retentionSizeInMB: -1,
    }),
  );
  await ok(
    "partitioning the topic",
    admin("PUT", `/admin/v2/persistent/public/${ns}/${name}/partitions`, PULSAR_PARTITIONS),
  );
  // the subscription exists before the records, at the earliest position: it keeps every one of them
  await ok(
    "creating the subscription",
    admin("PUT", `/admin/v2/persistent/public/${ns}/${name}/subscription/${SUBSCRIPTION}`, {
      entryId: -1,
      ledgerId: -1,
    }),
  );
  await createTopic(kafkaTopic, KAFKA_PARTITIONS, [lab.kafkaBootstrap]);

  // the records, written to Pulsar before the bridge starts (the reader of the result is Kafka's own tool)
  const produced = new Map<number, number>();
  const writer = createClient({ serviceUrl: lab.serviceUrl });
  try {
    const producer = await writer.createProducer({ topic: pulsarTopic, batchingEnabled: true });
    const sends: Promise<unknown>[] = [];
    for (let i = 0; i < records; i++) {
      const key = i % KEYS;
      const seq = produced.get(key) ?? 0;
      produced.set(key, seq + 1);
      sends.push(producer.send({ key: `k${key}`, payload: Buffer.from(`k${key}:${seq}`) }));
      if (sends.length >= 1000) await Promise.all(sends.splice(0));
    }
    await Promise.all(sends);
    await producer.close();
  } finally {
    await writer.close();
  }
  log(`${scenario.name}: ${records} records in Pulsar`);

  const backlog = async () => {
    const r = await admin("GET", `/admin/v2/persistent/public/${ns}/${name}/partitioned-stats`);
    const subs = (r.json as { subscriptions?: Record<string, { msgBacklog?: number }> }).subscriptions ?? {};
    return r.status === 200 ? (subs[SUBSCRIPTION]?.msgBacklog ?? -1) : -1;
  };
  const kafkaAdmin = testKafka("fault-reverse-check", [lab.kafkaBootstrap]).admin();
  const inKafka = async () =>
    (await kafkaAdmin.fetchTopicOffsets(kafkaTopic)).reduce((n, p) => n + Number(p.high), 0);
  const flow = reverseFlow(lab, pulsarTopic, kafkaTopic);
  const nodeReds: NodeRedProcess[] = [];
  const userDirs: string[] = [];
  let problem: string | undefined;
  let atFault = -1;
  let afterFault = -1;
  try {
    await kafkaAdmin.connect();
    for (let i = 0; i < (scenario.instances ?? 1); i++) {
      const userDir = makeUserDir();
      userDirs.push(userDir);
      nodeReds.push(await startNodeRed({ userDir }));
    }
    await Promise.all(nodeReds.map((nr) => nr.deploy(flow)));
    try {
      await waitFor(
        "10 % of the records in Kafka",
        async () => (await inKafka()) >= records / 10,
        120_000,
        50,
      );
      atFault = await inKafka();
      log(`${scenario.name}: fault at ${atFault} in Kafka`);
      await scenario.inject({
        lab,
        nodeReds,
        flow,
        log,
        async restartNodeRed(i, signal = "SIGKILL") {
          const old = nodeReds[i];
          if (!old) throw new Error(`no node-red #${i}`);
          await old.stop(signal);
          nodeReds[i] = await startNodeRed({ userDir: old.userDir });
        },
      });
      afterFault = await inKafka().catch(() => -1);
      await waitFor(
        "every message acknowledged",
        async () => (await backlog().catch(() => -1)) === 0,
        300_000,
        1000,
      );
    } catch (err) {
      problem = (err as Error).message;
      log(
        `${scenario.name}: backlog ${await backlog().catch(() => "?")}, ${await inKafka().catch(() => "?")} in Kafka`,
      );
      nodeReds.forEach((nr, i) =>
        log(`${scenario.name}: node-red #${i} said last:\n${nr.output().split("\n").slice(-40).join("\n")}`),
      );
    }
  } finally {
    for (const nr of nodeReds) await nr.stop();
    await kafkaAdmin.disconnect().catch(() => undefined);
    for (const dir of userDirs) fs.rmSync(dir, { recursive: true, force: true });
  }
  const values = await readKafka(lab, kafkaTopic);
  const { lost, duplicated, reordered } = tally(values, produced);
  const result: Result = {
    scenario: scenario.name,
    mode: "settled",
    records,
    committedAtFault: atFault,
    committedAfterFault: afterFault,
    read: values.length,
    lost,
    duplicated,
    reordered,
    goodDeadLettered: 0,
    seconds: Math.round((Date.now() - t0) / 1000),
    ok: !problem && lost === 0,
    problem,
  };
  log(`${scenario.name}: ${JSON.stringify(result)}`);
  await admin("DELETE", `/admin/v2/namespaces/public/${ns}?force=true`).catch(() => undefined);
  return result;
}
