// The bridge in a real Node-RED runtime against the real brokers: records from Kafka reach Pulsar with
// their bytes, keys, headers and timestamps; offsets are committed only for settled records.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { helper, loadFlow, unloadFlow, stopHelper } from "../support/flow";
import {
  consoleConsume,
  createTopic,
  committedOffsets,
  produce,
  testKafka,
  type TestRecord,
} from "../support/kafka";
import { kafkaBrokers, pulsarUrl, uniqueName } from "../support/brokers";
import { createClient } from "../../src/pulsar/client";
import type { Consumer, PulsarClient, ReceivedMessage } from "../../src/pulsar/types";
import { waitFor } from "../support/wait";

let pulsar: PulsarClient;
before(() => {
  pulsar = createClient({ serviceUrl: pulsarUrl });
});
after(async () => {
  await pulsar.close();
  await stopHelper();
});

async function drain(consumer: Consumer, n: number, timeoutMs = 60_000): Promise<ReceivedMessage[]> {
  const out: ReceivedMessage[] = [];
  const deadline = Date.now() + timeoutMs;
  while (out.length < n) {
    const left = deadline - Date.now();
    if (left <= 0) break;
    try {
      const m = await consumer.receive(Math.min(left, 5000));
      out.push(m);
      await consumer.acknowledge(m);
    } catch {
      /* keep waiting until the deadline */
    }
  }
  return out;
}

function bridgeFlow(o: {
  kafkaTopic: string;
  pulsarTopic: string;
  groupId: string;
  between?: unknown[];
  inWires?: string[];
}) {
  return [
    { id: "kc", type: "kafka-cluster", brokers: kafkaBrokers.join(","), clientId: "bridge-test" },
    { id: "pc", type: "pulsar-cluster", serviceUrl: pulsarUrl },
    {
      id: "in",
      type: "kafka-in",
      cluster: "kc",
      topics: o.kafkaTopic,
      groupId: o.groupId,
      startFrom: "earliest",
      maxInFlight: Number(process.env.TEST_MAX_IN_FLIGHT ?? 500),
      wires: [o.inWires ?? ["out"]],
    },
    ...(o.between ?? []),
    { id: "out", type: "pulsar-out", cluster: "pc", topic: o.pulsarTopic, wires: [] },
  ];
}

test("10k records over 3 partitions arrive in Pulsar with identical bytes, keys, headers and event time; offsets reach the log end", async () => {
  const kafkaTopic = uniqueName("bridge");
  const pulsarTopic = `persistent://public/default/${uniqueName("bridge")}`;
  const groupId = uniqueName("group");
  await createTopic(kafkaTopic, 3);
  const consumer = await pulsar.subscribe({
    topic: pulsarTopic,
    subscription: "check",
    initialPosition: "earliest",
  });

  const records: TestRecord[] = [];
  for (let i = 0; i < 10_000; i++) {
    const binary = i % 5 === 0;
    records.push({
      partition: i % 3,
      key: i % 7 === 0 ? Buffer.from([0xff, 0xfe, i & 0xff]) : `key-${i % 50}`,
      value:
        i % 11 === 0
          ? null
          : binary
            ? Buffer.from([0x00, 0xc3, 0x28, i & 0xff, (i >> 8) & 0xff])
            : `value ${i} ünïcødé`,
      headers: { seq: String(i), ...(i % 4 === 0 ? { bin: Buffer.from([0xc0, 0x80, 1]) } : {}) },
      timestamp: String(1700000000000 + i),
    });
  }
  await produce(kafkaTopic, records);
  await loadFlow(bridgeFlow({ kafkaTopic, pulsarTopic, groupId }));
  try {
    const got = await drain(consumer, records.length, 120_000);
    assert.equal(got.length, records.length, "every record arrived");
    const bySeq = new Map(got.map((m) => [m.properties.seq, m]));
    for (let i = 0; i < records.length; i++) {
      const r = records[i];
      const m = bySeq.get(String(i));
      assert.ok(m, `record ${i} arrived`);
      const value =
        r.value === null
          ? Buffer.alloc(0)
          : Buffer.isBuffer(r.value)
            ? r.value
            : Buffer.from(r.value, "utf8");
      assert.deepEqual(m.payload, value, `bytes of record ${i}`);
      const key = Buffer.isBuffer(r.key) ? r.key : Buffer.from(String(r.key), "utf8");
      assert.deepEqual(m.keyBytes, key, `key of record ${i}`);
      assert.equal(m.eventTime, 1700000000000 + i, `event time of record ${i}`);
      if (i % 4 === 0)
        assert.equal(m.properties.bin, `base64:${Buffer.from([0xc0, 0x80, 1]).toString("base64")}`);
    }
    await waitFor("committed offsets at the log end", async () => {
      const offsets = await committedOffsets(groupId, kafkaTopic);
      return offsets.size === 3 && [...offsets.values()].every((o) => o.committed === o.logEnd);
    });
  } finally {
    await unloadFlow();
    await consumer.close();
  }
});

test("settled mode: drops settle, a held record blocks the commit at its offset, and everything commits once settled", async () => {
  const kafkaTopic = uniqueName("settle");
  const pulsarTopic = `persistent://public/default/${uniqueName("settle")}`;
  const groupId = uniqueName("group");
  await createTopic(kafkaTopic, 1);
  const consumer = await pulsar.subscribe({
    topic: pulsarTopic,
    subscription: "check",
    initialPosition: "earliest",
  });
  await produce(
    kafkaTopic,
    Array.from({ length: 300 }, (_, i) => ({ key: `k${i}`, value: `v${i}` })),
  );
  const between = [
    {
      id: "drop",
      type: "function",
      // every third record is dropped on purpose (returns null); offset 150 takes the slow path
      func: "const o = Number(msg.kafka.offset); if (o % 3 === 0) return null; return o === 151 ? [null, msg] : [msg, null];",
      outputs: 2,
      wires: [["out"], ["hold"]],
    },
    {
      id: "hold",
      type: "delay",
      pauseType: "delay",
      timeout: "12",
      timeoutUnits: "seconds",
      wires: [["out"]],
    },
  ];
  await loadFlow(bridgeFlow({ kafkaTopic, pulsarTopic, groupId, between, inWires: ["drop"] }));
  try {
    await waitFor(
      "the commit to reach the held record",
      async () => (await committedOffsets(groupId, kafkaTopic)).get(0)?.committed === 151,
      30_000,
    );
    const stillHeld = (await committedOffsets(groupId, kafkaTopic)).get(0);
    assert.equal(stillHeld?.committed, 151, "never past the unsettled record 151 while it is held");
    await waitFor(
      "all offsets committed",
      async () => (await committedOffsets(groupId, kafkaTopic)).get(0)?.committed === 300,
      60_000,
    );
    const got = await drain(consumer, 200, 30_000);
    const offsets = got.map((m) => Number(m.payload.toString().slice(1))).sort((a, b) => a - b);
    assert.deepEqual(
      offsets,
      Array.from({ length: 300 }, (_, i) => i).filter((i) => i % 3 !== 0),
      "exactly the records the flow did not drop",
    );
  } finally {
    await unloadFlow();
    await consumer.close();
  }
});

test("a poison record is retried, then dead-lettered to Kafka with its error; the rest flows on", async () => {
  const kafkaTopic = uniqueName("poison");
  const dlq = uniqueName("poison-dlq");
  const pulsarTopic = `persistent://public/default/${uniqueName("poison")}`;
  const groupId = uniqueName("group");
  await createTopic(kafkaTopic, 1);
  await createTopic(dlq, 1);
  const consumer = await pulsar.subscribe({
    topic: pulsarTopic,
    subscription: "check",
    initialPosition: "earliest",
  });
  await produce(
    kafkaTopic,
    Array.from({ length: 50 }, (_, i) => ({ key: `k${i}`, value: i === 20 ? "poison" : `ok-${i}` })),
  );
  const flow = bridgeFlow({
    kafkaTopic,
    pulsarTopic,
    groupId,
    inWires: ["check"],
    between: [
      {
        id: "check",
        type: "function",
        func: 'if (msg.payload === "poison") throw new Error("cannot digest this"); return msg;',
        outputs: 1,
        wires: [["out"]],
      },
    ],
  });
  Object.assign(flow[2] as Record<string, unknown>, {
    failurePolicy: "dead-letter",
    maxAttempts: 3,
    retryBackoffMs: 100,
    deadLetterTopic: dlq,
  });
  await loadFlow(flow);
  try {
    const got = await drain(consumer, 49, 30_000);
    assert.deepEqual(
      got.map((m) => m.payload.toString()).sort(),
      Array.from({ length: 50 }, (_, i) => `ok-${i}`)
        .filter((_, i) => i !== 20)
        .sort(),
    );
    const dead = await consoleConsume(dlq, 1);
    assert.match(dead, /poison/);
    assert.match(dead, /dlq\.error:.*cannot digest this/);
    assert.match(dead, /dlq\.offset:20/);
    assert.match(dead, /dlq\.attempts:3/);
    await waitFor(
      "all offsets committed",
      async () => (await committedOffsets(groupId, kafkaTopic)).get(0)?.committed === 50,
    );
  } finally {
    await unloadFlow();
    await consumer.close();
  }
});

test("batch output: one msg carries many records, and all of them settle", async () => {
  const kafkaTopic = uniqueName("batch");
  const pulsarTopic = `persistent://public/default/${uniqueName("batch")}`;
  const groupId = uniqueName("group");
  await createTopic(kafkaTopic, 1);
  const consumer = await pulsar.subscribe({
    topic: pulsarTopic,
    subscription: "check",
    initialPosition: "earliest",
  });
  await produce(
    kafkaTopic,
    Array.from({ length: 1000 }, (_, i) => ({ value: `b${i}` })),
  );
  const flow = bridgeFlow({
    kafkaTopic,
    pulsarTopic,
    groupId,
    inWires: ["count"],
    // one Pulsar message per batch msg: the number of records it carried
    between: [
      {
        id: "count",
        type: "function",
        func: "msg.payload = String(msg.payload.length); return msg;",
        outputs: 1,
        wires: [["out"]],
      },
    ],
  });
  Object.assign(flow[2] as Record<string, unknown>, { batchOutput: true, batchSize: 100 });
  await loadFlow(flow);
  try {
    await waitFor(
      "all offsets committed",
      async () => (await committedOffsets(groupId, kafkaTopic)).get(0)?.committed === 1000,
    );
    const got = await drain(consumer, 10, 20_000);
    const total = got.reduce((n, m) => n + Number(m.payload.toString()), 0);
    assert.equal(total, 1000, "every record was in exactly one batch msg");
    assert.ok(got.every((m) => Number(m.payload.toString()) <= 100));
  } finally {
    await unloadFlow();
    await consumer.close();
  }
});

test("records Kafka deleted before the group consumed them (deleteRecords past the commit): kafka-in says so in an error Catch gets, and goes on from the earliest record Kafka holds", async () => {
  const kafkaTopic = uniqueName("deleted");
  const pulsarTopic = `persistent://public/default/${uniqueName("deleted")}`;
  const groupId = uniqueName("group");
  await createTopic(kafkaTopic, 1);
  const consumer = await pulsar.subscribe({
    topic: pulsarTopic,
    subscription: "check",
    initialPosition: "earliest",
  });
  const flow = [
    ...bridgeFlow({ kafkaTopic, pulsarTopic, groupId }),
    { id: "c", type: "catch", scope: ["in"], uncaught: false, wires: [["h"]] },
    { id: "h", type: "helper" },
  ];
  await produce(
    kafkaTopic,
    Array.from({ length: 10 }, (_, i) => ({ value: `v${i}` })),
  );
  await loadFlow(flow);
  try {
    await waitFor(
      "the first records committed",
      async () => (await committedOffsets(groupId, kafkaTopic)).get(0)?.committed === 10,
    );
  } finally {
    await unloadFlow();
  }
  await produce(
    kafkaTopic,
    Array.from({ length: 10 }, (_, i) => ({ value: `v${10 + i}` })),
  );
  // v10..v14 go before anybody consumed them
  const admin = testKafka("deleted-admin").admin();
  await admin.connect();
  try {
    await admin.fetchTopicMetadata({ topics: [kafkaTopic] }); // kafkajs needs it loaded first
    await admin.deleteTopicRecords({ topic: kafkaTopic, partitions: [{ partition: 0, offset: "15" }] });
  } finally {
    await admin.disconnect();
  }
  await loadFlow(flow);
  try {
    const caught: { error: { message: string }; kafka?: unknown }[] = [];
    (helper.getNode("h") as unknown as { on(e: string, cb: (m: never) => void): void }).on("input", (m) =>
      caught.push(m),
    );
    const got = await drain(consumer, 15, 30_000);
    assert.deepEqual(
      got.map((m) => m.payload.toString()),
      [
        ...Array.from({ length: 10 }, (_, i) => `v${i}`),
        ...Array.from({ length: 5 }, (_, i) => `v${15 + i}`),
      ],
    );
    await waitFor("the error in Catch", () => caught.length > 0, 10_000);
    assert.equal(caught.length, 1, "said once");
    assert.deepEqual(caught[0]?.kafka, { topic: kafkaTopic, partition: 0, groupId });
    assert.match(
      caught[0]?.error.message ?? "",
      new RegExp(`Kafka no longer holds the next record of ${kafkaTopic} partition 0 .*never delivered`),
    );
    await waitFor(
      "all offsets committed",
      async () => (await committedOffsets(groupId, kafkaTopic)).get(0)?.committed === 20,
    );
  } finally {
    await unloadFlow();
    await consumer.close();
  }
});
