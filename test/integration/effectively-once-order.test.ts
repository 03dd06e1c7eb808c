// Effectively-once keeps each partition's order end to end, in a real Node-RED runtime against the real
// brokers, read back with Pulsar's Java client: keyed records to a 4-partition topic (one key, one partition,
// in offset order); a function that throws for some records (kafka-in replays the partition from there);
// Pulsar out of reach for longer than the send timeout mid-stream (a Pulsar of the test's own behind a
// TCP proxy); the native engine refused at deploy.
import { byPartition } from "../support/flow-nodes";
import assert from "node:assert/strict";
import fs from "node:fs";
import { after, test } from "node:test";
import { helper, loadFlow, unloadFlow, stopHelper } from "../support/flow";
import {
  committedOffsets,
  createTopic,
  deleteTopic,
  groupMembers,
  produce,
  testKafka,
} from "../support/kafka";
import { kafkaBrokers, pulsarAdmin, pulsarHttpUrl, pulsarUrl, uniqueName } from "../support/brokers";
import { createClient } from "../../src/pulsar/client";
import { readWithJavaPulsar, type JavaPulsarMessage } from "../support/java-kafka";
import { ownBrokers } from "../support/own-brokers";
import { makeUserDir, startNodeRed } from "../support/node-red-process";
import { tcpProxy } from "../support/tcp-proxy";
import { javaStringHash } from "../../src/pulsar/hash";
import { waitFor } from "../support/wait";
import { dedupNamespace } from "../support/pulsar";

after(() => stopHelper());

async function allCommitted(groupId: string, topic: string, partitions: number): Promise<boolean> {
  const offsets = await committedOffsets(groupId, topic);
  return offsets.size === partitions && [...offsets.values()].every((o) => o.committed === o.logEnd);
}

function bridge(o: {
  kafkaTopic: string;
  groupId: string;
  pulsarTopic: string;
  between?: Record<string, unknown>[];
  inWires?: string[];
  serviceUrl?: string;
  adminUrl?: string;
  pulsarOut?: Record<string, unknown>;
  kafkaIn?: Record<string, unknown>;
}) {
  return [
    { id: "kc", type: "kafka-cluster", brokers: kafkaBrokers.join(","), clientId: "eo-order" },
    {
      id: "pc",
      type: "pulsar-cluster",
      serviceUrl: o.serviceUrl ?? pulsarUrl,
      adminUrl: o.adminUrl ?? pulsarHttpUrl,
    },
    {
      id: "in",
      type: "kafka-in",
      cluster: "kc",
      topics: o.kafkaTopic,
      groupId: o.groupId,
      startFrom: "earliest",
      retryBackoffMs: 100,
      maxAttempts: 0,
      ...o.kafkaIn,
      wires: [o.inWires ?? ["out"]],
    },
    ...(o.between ?? []),
    {
      id: "out",
      type: "pulsar-out",
      cluster: "pc",
      topic: o.pulsarTopic,
      effectivelyOnce: true,
      wires: [],
      ...o.pulsarOut,
    },
  ];
}

const values = (ms: JavaPulsarMessage[]) => ms.map((m) => m.data?.toString() ?? "");

test("keyed records to a 4-partition topic: each key on the one partition its hash names, in offset order", async () => {
  const ns = await dedupNamespace("eo-order");
  const pulsarTopic = `persistent://public/${ns}/keyed`;
  assert.equal(
    (await pulsarAdmin("PUT", `/admin/v2/persistent/public/${ns}/keyed/partitions`, 4)).status,
    204,
  );
  const kafkaTopic = uniqueName("eo-keyed");
  const groupId = uniqueName("eo-keyed-group");
  await createTopic(kafkaTopic, 1);
  const keys = ["same-key", "device-7", "device-12"];
  const RECORDS = 90;
  await produce(
    kafkaTopic,
    Array.from({ length: RECORDS }, (_, i) => ({ key: keys[i % 3], value: `${keys[i % 3]}:${i}` })),
  );
  await loadFlow(bridge({ kafkaTopic, groupId, pulsarTopic }));
  try {
    await waitFor("every record committed", () => allCommitted(groupId, kafkaTopic, 1), 60_000);
  } finally {
    await unloadFlow();
  }
  const where = new Map<string, Set<number>>();
  const perKey = new Map<string, number[]>();
  for (let p = 0; p < 4; p++) {
    const got = await readWithJavaPulsar(`${pulsarTopic}-partition-${p}`, RECORDS, 15);
    for (const v of values(got)) {
      const [key, n] = v.split(":");
      if (!where.has(key)) where.set(key, new Set());
      where.get(key)?.add(p);
      if (!perKey.has(key)) perKey.set(key, []);
      perKey.get(key)?.push(Number(n));
    }
  }
  for (const key of keys) {
    assert.deepEqual(
      [...(where.get(key) ?? [])],
      [javaStringHash(key) % 4],
      `${key}: one partition, the Java hash's`,
    );
    const ns_ = perKey.get(key) ?? [];
    assert.equal(ns_.length, RECORDS / 3, `${key}: every record once`);
    assert.deepEqual(
      ns_,
      [...ns_].sort((a, b) => a - b),
      `${key}: in offset order`,
    );
  }
});

test("a function that throws on the first try of some records: the partition is replayed from each, every record stored once and in order", async () => {
  const ns = await dedupNamespace("eo-order");
  const pulsarTopic = `persistent://public/${ns}/throws`;
  const kafkaTopic = uniqueName("eo-throws");
  const groupId = uniqueName("eo-throws-group");
  await createTopic(kafkaTopic, 2);
  const RECORDS = 2000;
  await produce(
    kafkaTopic,
    Array.from({ length: RECORDS }, (_, i) => ({ partition: i % 2, key: `k${i % 2}`, value: `v${i}` })),
  );
  const between = [
    {
      id: "fn",
      type: "function",
      // one record in 150 fails its first pass (the replays carry a higher attempt)
      func: "if (msg.kafka.attempt === 1 && Number(msg.kafka.offset) % 150 === 7) throw new Error('first try fails'); return msg;",
      outputs: 1,
      wires: [["out"]],
    },
  ];
  await loadFlow(bridge({ kafkaTopic, groupId, pulsarTopic, between, inWires: ["fn"] }));
  try {
    await waitFor("every record committed", () => allCommitted(groupId, kafkaTopic, 2), 120_000);
  } finally {
    await unloadFlow();
  }
  const got = values(await readWithJavaPulsar(pulsarTopic, RECORDS + 10, 20));
  const n = got.map((v) => Number(v.slice(1)));
  assert.equal(new Set(n).size, RECORDS, "every record stored");
  assert.equal(n.length, RECORDS, "none twice");
  for (const parity of [0, 1]) {
    const mine = n.filter((x) => x % 2 === parity);
    assert.deepEqual(
      mine,
      [...mine].sort((a, b) => a - b),
      `partition ${parity} in offset order`,
    );
  }
});

test("Pulsar out of reach longer than the send timeout mid-stream: the replay stores every record once, in order", async (t) => {
  const PROXY_HOST = "127.0.0.2";
  const own = await ownBrokers({ BROKERS_ADVERTISED_HOST: PROXY_HOST, PULSAR_DEDUP: "1" });
  const binary = await tcpProxy(
    { host: PROXY_HOST, port: own.pulsarPort },
    { host: "127.0.0.1", port: own.pulsarPort },
  );
  const http = await tcpProxy(
    { host: PROXY_HOST, port: own.pulsarHttpPort },
    { host: "127.0.0.1", port: own.pulsarHttpPort },
  );
  t.after(async () => {
    await own.dispose();
    await binary.close();
    await http.close();
  });
  await own.brokers("start", "pulsar");
  const pulsarTopic = `persistent://public/default/${uniqueName("eo-cut")}`;
  const kafkaTopic = uniqueName("eo-cut");
  const groupId = uniqueName("eo-cut-group");
  await createTopic(kafkaTopic, 1);
  // A trickle of records (as from sensors), so that records are still fetched, sent and stored after the
  // first sends timed out and before their next try: with a try per record, those tries came back behind
  // stored offsets and were refused for good.
  const FIRST = 500;
  const TRICKLE = 80;
  const record = (i: number) => ({ key: `k${i % 5}`, value: `v${i}` });
  await produce(
    kafkaTopic,
    Array.from({ length: FIRST }, (_, i) => record(i)),
  );
  await loadFlow(
    bridge({
      kafkaTopic,
      groupId,
      pulsarTopic,
      serviceUrl: `pulsar://${PROXY_HOST}:${own.pulsarPort}`,
      adminUrl: `http://${PROXY_HOST}:${own.pulsarHttpPort}`,
      pulsarOut: { sendTimeoutMs: 1000 },
      kafkaIn: { retryBackoffMs: 3000 },
    }),
  );
  let total = FIRST;
  try {
    await waitFor("the first records committed", () => allCommitted(groupId, kafkaTopic, 1), 60_000);
    const trickle = (async () => {
      for (let b = 0; b < TRICKLE; b++) {
        await produce(
          kafkaTopic,
          Array.from({ length: 10 }, (_, i) => record(total + i)),
        );
        total += 10;
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    // a silent cut: what was sent waits in the socket buffers and the sends time out; after the heal the
    // broker gets the old frames too, and the records sent since are stored before the failed ones' next try
    await new Promise((r) => setTimeout(r, 1000));
    binary.cut();
    await new Promise((r) => setTimeout(r, 2500));
    binary.heal();
    await trickle;
    await waitFor("every record committed", () => allCommitted(groupId, kafkaTopic, 1), 120_000);
  } finally {
    await unloadFlow();
  }
  assert.equal(total, FIRST + TRICKLE * 10);
  const got = values(await readWithJavaPulsar(pulsarTopic, total + 10, 30, own.serviceUrl));
  const n = got.map((v) => Number(v.slice(1)));
  assert.equal(new Set(n).size, total, "every record stored");
  assert.equal(n.length, total, "none twice");
  assert.deepEqual(
    n,
    [...n].sort((a, b) => a - b),
    "in offset order",
  );
});

test("rebalance: a second instance joins mid-stream and takes partitions over; the first closes their producers, every record once and in order", async (t) => {
  const ns = await dedupNamespace("eo-order");
  const pulsarTopic = `persistent://public/${ns}/scaled`;
  const kafkaTopic = uniqueName("eo-scale");
  const groupId = uniqueName("eo-scale-group");
  await createTopic(kafkaTopic, 4);
  const HALF = 8000;
  const record = (i: number) => ({ partition: i % 4, key: `k${i % 4}`, value: `v${i}` });
  await produce(
    kafkaTopic,
    Array.from({ length: HALF }, (_, i) => record(i)),
  );
  const flow: Record<string, unknown>[] = [
    { id: "tab", type: "tab", label: "eo" },
    ...bridge({ kafkaTopic, groupId, pulsarTopic }).map((n) =>
      String(n.type).endsWith("-cluster") ? n : { ...n, z: "tab" },
    ),
  ];
  const dirs = [makeUserDir(), makeUserDir()];
  t.after(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));
  const first = await startNodeRed({ userDir: dirs[0] });
  let second: Awaited<ReturnType<typeof startNodeRed>> | undefined;
  try {
    await first.deploy(flow);
    await waitFor(
      "the first instance publishing",
      async () => [...(await committedOffsets(groupId, kafkaTopic)).values()].some((o) => o.committed > 100),
      60_000,
    );
    second = await startNodeRed({ userDir: dirs[1] });
    await second.deploy(flow);
    const admin = testKafka("eo-scale-admin").admin();
    await admin.connect();
    try {
      await waitFor(
        "both instances hold partitions",
        async () => (await groupMembers(admin, groupId)).withPartitions === 2,
        60_000,
      );
    } finally {
      await admin.disconnect();
    }
    await produce(
      kafkaTopic,
      Array.from({ length: HALF }, (_, i) => record(HALF + i)),
    );
    await waitFor("every record committed", () => allCommitted(groupId, kafkaTopic, 4), 120_000);
  } finally {
    await second?.stop();
    await first.stop();
  }
  const got = values(await readWithJavaPulsar(pulsarTopic, 2 * HALF + 10, 30));
  const n = got.map((v) => Number(v.slice(1)));
  assert.equal(new Set(n).size, 2 * HALF, "every record stored");
  assert.equal(n.length, 2 * HALF, "none twice");
  for (let p = 0; p < 4; p++) {
    const mine = n.filter((x) => x % 4 === p);
    assert.deepEqual(
      mine,
      [...mine].sort((a, b) => a - b),
      `partition ${p} in offset order`,
    );
  }
});

test("a Kafka topic deleted and recreated (offsets from 0 again): its new records are stored, not taken for duplicates", async () => {
  const ns = await dedupNamespace("eo-order");
  const pulsarTopic = `persistent://public/${ns}/recreated`;
  const kafkaTopic = uniqueName("eo-recreated");
  const groupId = uniqueName("eo-recreated-group");
  await createTopic(kafkaTopic, 1);
  await produce(
    kafkaTopic,
    Array.from({ length: 50 }, (_, i) => ({ key: "k", value: `old-${i}` })),
  );
  const flow = bridge({ kafkaTopic, groupId, pulsarTopic });
  await loadFlow(flow);
  try {
    await waitFor("the first topic's records committed", () => allCommitted(groupId, kafkaTopic, 1), 60_000);
  } finally {
    await unloadFlow();
  }
  await deleteTopic(kafkaTopic);
  await createTopic(kafkaTopic, 1);
  await produce(
    kafkaTopic,
    Array.from({ length: 30 }, (_, i) => ({ key: "k", value: `new-${i}` })),
  );
  await loadFlow(flow);
  try {
    await waitFor("the new topic's records committed", () => allCommitted(groupId, kafkaTopic, 1), 60_000);
  } finally {
    await unloadFlow();
  }
  const got = values(await readWithJavaPulsar(pulsarTopic, 90, 20));
  assert.deepEqual(got, [
    ...Array.from({ length: 50 }, (_, i) => `old-${i}`),
    ...Array.from({ length: 30 }, (_, i) => `new-${i}`),
  ]);
});

test("records of one partition spread over two Pulsar topics, a join after pulsar-out: no record waits for another topic's receipt or for the join, none expires; each stored once, in order per topic", async () => {
  const ns = await dedupNamespace("eo-order");
  const kafkaTopic = uniqueName("eo-spread");
  const groupId = uniqueName("eo-spread-group");
  await createTopic(kafkaTopic, 1);
  const RECORDS = 40;
  await produce(
    kafkaTopic,
    Array.from({ length: RECORDS }, (_, i) => ({ key: i % 2 === 0 ? "a" : "b", value: `v${i}` })),
  );
  const join = {
    id: "j",
    type: "join",
    mode: "custom",
    build: "array",
    property: "payload",
    propertyType: "msg",
    count: "5",
    timeout: "",
    wires: [[]],
  };
  const caught: string[] = [];
  await loadFlow([
    ...bridge({
      kafkaTopic,
      groupId,
      pulsarTopic: `persistent://public/${ns}/t-{{key}}`,
      // a record still held when this runs out fails and is replayed: before, each waited for the
      // join to let go of the one before it
      kafkaIn: { settleTimeoutMs: 3000 },
      pulsarOut: { outputs: 1, wires: [["j"]] },
    }),
    join,
    { id: "c", type: "catch", scope: null, uncaught: false, wires: [["h"]] },
    { id: "h", type: "helper" },
  ]);
  (helper.getNode("h") as unknown as { on(e: string, cb: (m: never) => void): void }).on(
    "input",
    (m: { error?: { message?: string } }) => caught.push(m.error?.message ?? "?"),
  );
  try {
    await waitFor("every record committed", () => allCommitted(groupId, kafkaTopic, 1), 60_000);
  } finally {
    await unloadFlow();
  }
  assert.deepEqual(caught, [], "no error, no expired record");
  for (const [key, first] of [
    ["a", 0],
    ["b", 1],
  ] as const) {
    const got = values(await readWithJavaPulsar(`persistent://public/${ns}/t-${key}`, RECORDS / 2, 15));
    assert.deepEqual(
      got,
      Array.from({ length: RECORDS / 2 }, (_, i) => `v${first + 2 * i}`),
      `topic t-${key}: each record once, in offset order`,
    );
  }
});

test("core join: a join over two partitions is refused with the reason and stores nothing; joined per partition (a switch on msg.kafka.partition), each partition's records are one message", async () => {
  const ns = await dedupNamespace("eo-order");
  const pulsarTopic = `persistent://public/${ns}/joined`;
  const kafkaTopic = uniqueName("eo-join");
  const groupId = uniqueName("eo-join-group");
  await createTopic(kafkaTopic, 2);
  await produce(
    kafkaTopic,
    Array.from({ length: 6 }, (_, i) => ({ partition: i % 2, key: `k${i % 2}`, value: `p${i % 2}-${i}` })),
  );
  const joinNode = (id: string, count: number) => ({
    id,
    type: "join",
    mode: "custom",
    build: "array",
    property: "payload",
    propertyType: "msg",
    count: String(count),
    timeout: "",
    wires: [["out"]],
  });
  const caught = { id: "c", type: "catch", scope: ["out"], uncaught: false, wires: [["h"]] };
  // one join of all six records: three of each partition in one Pulsar message
  await loadFlow([
    ...bridge({ kafkaTopic, groupId, pulsarTopic, between: [joinNode("j", 6)], inWires: ["j"] }),
    caught,
    { id: "h", type: "helper" },
  ]);
  try {
    const error = await new Promise<{ message: string }>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("no error reached Catch in 30 s")), 30_000);
      (helper.getNode("h") as unknown as { on(e: string, cb: (m: never) => void): void }).on(
        "input",
        (m: { error: { message: string } }) => {
          clearTimeout(timer);
          resolve(m.error);
        },
      );
    });
    assert.match(error.message, /merges records of .* partition \d and .* partition \d/);
    assert.match(error.message, /switch on msg.kafka.partition/);
    await new Promise((r) => setTimeout(r, 1000));
    const offsets = await committedOffsets(groupId, kafkaTopic);
    assert.equal(
      [...offsets.values()].some((o) => o.committed > 0),
      false,
      `nothing committed: ${JSON.stringify([...offsets])}`,
    );
  } finally {
    await unloadFlow();
  }
  assert.deepEqual(values(await readWithJavaPulsar(pulsarTopic, 1, 5)), [], "nothing stored");

  // the same records joined per partition
  const between = [byPartition("sw", ["j0", "j1"]), joinNode("j0", 3), joinNode("j1", 3)];
  await loadFlow(bridge({ kafkaTopic, groupId, pulsarTopic, between, inWires: ["sw"] }));
  try {
    await waitFor("every record committed", () => allCommitted(groupId, kafkaTopic, 2), 60_000);
  } finally {
    await unloadFlow();
  }
  const got = values(await readWithJavaPulsar(pulsarTopic, 3, 10)).sort();
  assert.deepEqual(got, ['["p0-0","p0-2","p0-4"]', '["p1-1","p1-3","p1-5"]']);
});

test("the native engine is refused for effectively-once at deploy, with the reason", async () => {
  const flow = [
    { id: "pc", type: "pulsar-cluster", serviceUrl: pulsarUrl, engine: "pulsar-client" },
    {
      id: "out",
      type: "pulsar-out",
      cluster: "pc",
      topic: "persistent://public/default/x",
      effectivelyOnce: true,
    },
    { id: "c", type: "catch", scope: null, uncaught: false, wires: [["h"]] },
    { id: "h", type: "helper" },
  ];
  await loadFlow(flow);
  try {
    const out = helper.getNode("out") as unknown as {
      receive(msg: unknown): void;
      on(event: string, cb: (...a: unknown[]) => void): void;
    };
    const caught = new Promise<{ error: { message: string } }>((resolve) =>
      (helper.getNode("h") as unknown as { on(e: string, cb: (m: never) => void): void }).on(
        "input",
        resolve,
      ),
    );
    out.receive({ payload: "x", kafka: { topic: "t", partition: 0, offset: "1" } });
    const msg = await caught;
    assert.match(msg.error.message, /effectively-once needs the builtin Pulsar engine/);
  } finally {
    await unloadFlow();
  }
});

test("a producer name Pulsar still has on another connection (ProducerBusy): the status says what it waits for, the records keep their tries (no dead letter at 1 try), and go once the name is free, each once", async () => {
  const ns = await dedupNamespace("eo-order");
  const pulsarTopic = `persistent://public/${ns}/busy`;
  const kafkaTopic = uniqueName("eo-busy");
  const groupId = uniqueName("eo-busy-group");
  const deadLetterTopic = uniqueName("eo-busy-dlq");
  await createTopic(kafkaTopic, 1);
  await createTopic(deadLetterTopic, 1);
  await produce(kafkaTopic, [{ key: "k", value: "first" }]);
  const flow = [
    ...bridge({
      kafkaTopic,
      groupId,
      pulsarTopic,
      kafkaIn: { maxAttempts: 1, failurePolicy: "dead-letter", deadLetterTopic, retryBackoffMs: 200 },
    }).map((n) => (n.id === "pc" ? { ...n, operationTimeoutMs: 1500 } : n)),
    { id: "st", type: "status", scope: ["out"], wires: [["h"]] },
    { id: "h", type: "helper" },
  ];
  const stats = async () =>
    (await pulsarAdmin("GET", `/admin/v2/persistent/public/${ns}/busy/stats`)).json as {
      publishers?: { producerName?: string }[];
    };
  // the name the bridge's producer of this partition has (it is derived, not configured)
  let name: string | undefined;
  await loadFlow(flow);
  try {
    await waitFor("the first record committed", () => allCommitted(groupId, kafkaTopic, 1), 60_000);
    await waitFor(
      "the producer's name",
      async () => (name = (await stats()).publishers?.[0]?.producerName) !== undefined,
      10_000,
    );
  } finally {
    await unloadFlow();
  }
  // another connection takes the name (as the instance that had the partition, until its connection closes)
  const blocker = createClient({ serviceUrl: pulsarUrl });
  const holder = await blocker.createProducer({ topic: pulsarTopic, producerName: name });
  await produce(
    kafkaTopic,
    Array.from({ length: 5 }, (_, i) => ({ key: "k", value: `v${i}` })),
  );
  const statuses: string[] = [];
  await loadFlow(flow);
  try {
    (
      helper.getNode("h") as unknown as {
        on(e: string, cb: (m: { status: { text?: string } }) => void): void;
      }
    ).on("input", (m) => statuses.push(m.status.text ?? ""));
    const waiting = () => statuses.filter((s) => s.startsWith(`Waiting for the producer ${name}`)).length;
    // each try waits out the operation timeout: three tries, two more than the record has
    await waitFor("three tries refused as busy, said in the status", () => waiting() >= 3, 60_000);
    const offsets = await committedOffsets(groupId, kafkaTopic);
    assert.equal(offsets.get(0)?.committed, 1, "nothing committed while the name is held");
    await holder.close();
    await waitFor("every record committed", () => allCommitted(groupId, kafkaTopic, 1), 60_000);
  } finally {
    await unloadFlow();
    await blocker.close();
  }
  const admin = testKafka("eo-busy-admin").admin();
  await admin.connect();
  try {
    const dead = await admin.fetchTopicOffsets(deadLetterTopic);
    assert.deepEqual(
      dead.map((o) => o.high),
      ["0"],
      "nothing dead-lettered",
    );
  } finally {
    await admin.disconnect();
  }
  assert.deepEqual(values(await readWithJavaPulsar(pulsarTopic, 10, 15)), [
    "first",
    "v0",
    "v1",
    "v2",
    "v3",
    "v4",
  ]);
});
