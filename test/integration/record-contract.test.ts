// The msg contract end to end, in a real Node-RED runtime against the real brokers: records written by
// Kafka's Java producer (headers without a value, names repeated out of order and kept so, tombstones, empty values,
// binary and empty keys, no timestamp, LogAppendTime, big integers in JSON) go through kafka-in and
// pulsar-out, and Pulsar's Java client reads them back; the offsets commit to the log end.
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { loadFlow, unloadFlow, stopHelper, helper } from "../support/flow";
import { committedOffsets, createTopic, produce, testKafka, toolTopicId } from "../support/kafka";
import { kafkaBrokers, pulsarUrl, runToolOk, uniqueName } from "../support/brokers";
import { produceWithJava, readWithJavaPulsar, type JavaRecord } from "../support/java-kafka";
import { waitFor } from "../support/wait";
import type { KafkaProvenance } from "../../src/bridge/record-to-msg";
import { kafkaHeadersFromList } from "../../src/bridge/msg-to-pulsar";

after(async () => {
  await stopHelper();
});

function bridgeFlow(o: { kafkaTopic: string; pulsarTopic: string; groupId: string; valueFormat?: string }) {
  return [
    { id: "kc", type: "kafka-cluster", brokers: kafkaBrokers.join(","), clientId: "contract-test" },
    { id: "pc", type: "pulsar-cluster", serviceUrl: pulsarUrl },
    {
      id: "in",
      type: "kafka-in",
      cluster: "kc",
      topics: o.kafkaTopic,
      groupId: o.groupId,
      startFrom: "earliest",
      valueFormat: o.valueFormat ?? "auto",
      keyFormat: "auto",
      wires: [["out"]],
    },
    {
      id: "out",
      type: "pulsar-out",
      cluster: "pc",
      topic: o.pulsarTopic,
      mapHeaders: true,
      provenanceProperties: true,
      wires: [],
    },
  ];
}

interface Seen {
  payload: unknown;
  key: unknown;
  kafka: KafkaProvenance;
}

/** Runs the bridge over `kafkaTopic` until the group has committed the log end; the msgs pulsar-out got. */
async function bridge(
  kafkaTopic: string,
  pulsarTopic: string,
  count: number,
  valueFormat?: string,
): Promise<Seen[]> {
  const groupId = uniqueName("contract");
  await loadFlow(bridgeFlow({ kafkaTopic, pulsarTopic, groupId, valueFormat }));
  const seen: Seen[] = [];
  try {
    // A listener of one argument is no handler Node-RED waits on: pulsar-out alone settles the msg.
    helper.getNode("out")?.on("input", (msg: Seen) => {
      seen.push({ payload: msg.payload, key: msg.key, kafka: msg.kafka });
    });
    await waitFor(
      "the offsets committed to the log end",
      async () => {
        const offsets = await committedOffsets(groupId, kafkaTopic);
        return [...offsets.values()].some((o) => o.logEnd === count && o.committed === count);
      },
      90_000,
      1000,
    );
  } finally {
    await unloadFlow();
  }
  return seen;
}

const utf8 = (s: string) => Buffer.from(s, "utf8");
const listJson = (pairs: [string, string | null][]) => JSON.stringify(pairs);

test("Java-written records: null header values, repeated names, tombstone, empty value, binary/empty/no key, no timestamp", async () => {
  const kafkaTopic = uniqueName("contract");
  const pulsarTopic = `persistent://public/default/${uniqueName("contract")}`;
  await createTopic(kafkaTopic, 1);
  const binaryKey = Buffer.from([0xff, 0x00, 0xfe]);
  const binaryValue = Buffer.from([0x00, 0xc3, 0x28, 0xff]);
  const records: JavaRecord[] = [
    {
      partition: 0,
      key: "k0",
      value: "headers",
      headers: [
        ["A", "a1"],
        ["h", null],
        ["A", "a2"],
        ["bin", Buffer.from([0xc3, 0x28])],
        ["7", "seven"],
      ],
    },
    { partition: 0, key: binaryKey, value: binaryValue },
    { partition: 0, key: "tomb", value: null, headers: [["why", "deleted"]] },
    { partition: 0, key: "empty", value: "" },
    { partition: 0, key: null, value: "no key" },
    { partition: 0, key: "", value: "empty key" },
    { partition: 0, key: "none", timestamp: "none", value: "no timestamp" },
    { partition: 0, key: "zero", timestamp: 0, value: "epoch" },
    { partition: 0, key: "mine", value: "provenance name", headers: [["kafka.topic", "mine"]] },
  ];
  const written = await produceWithJava(kafkaTopic, records);
  assert.equal(written[6]?.timestamp, -1, "Kafka stored the record without a timestamp");
  assert.equal(written[7]?.timestamp, 0);

  const seen = await bridge(kafkaTopic, pulsarTopic, records.length);
  const got = await readWithJavaPulsar(pulsarTopic, records.length + 1, 30);
  assert.equal(got.length, records.length, "each record once, none more");

  // What the flow saw (msg.kafka in the runtime).
  const first = seen.find((m) => m.kafka.offset === "0");
  assert.ok(first);
  assert.deepEqual(first.kafka.headerList, [
    { key: "A", value: "a1" },
    { key: "h", value: null },
    { key: "A", value: "a2" },
    { key: "bin", value: Buffer.from([0xc3, 0x28]) },
    { key: "7", value: "seven" },
  ]);
  assert.deepEqual(first.kafka.headers, { A: "a2", h: null, bin: Buffer.from([0xc3, 0x28]), 7: "seven" });
  assert.equal(first.kafka.timestampType, "CreateTime");
  assert.equal(first.kafka.topicId, await toolTopicId(kafkaTopic), "the topic id, as kafka-topics.sh says");
  assert.equal(seen.find((m) => m.kafka.offset === "2")?.payload, null, "a tombstone is null");
  assert.equal(seen.find((m) => m.kafka.offset === "3")?.payload, "", "an empty value is empty");
  assert.equal(seen.find((m) => m.kafka.offset === "6")?.kafka.timestamp, -1);

  // What Pulsar's Java client reads.
  const provenance = (offset: number) => ({
    "kafka.topic": kafkaTopic,
    "kafka.partition": "0",
    "kafka.offset": String(offset),
  });
  const [headers, binary, tomb, empty, noKey, emptyKey, noTime, zero, mine] = got;
  assert.ok(headers && binary && tomb && empty && noKey && emptyKey && noTime && zero && mine);
  assert.equal(headers.hasValue, true);
  assert.deepEqual(headers.data, utf8("headers"));
  assert.deepEqual(headers.keyBytes, utf8("k0"));
  assert.equal(headers.eventTime, written[0]?.timestamp);
  assert.deepEqual(headers.properties, {
    A: "a2",
    bin: `base64:${Buffer.from([0xc3, 0x28]).toString("base64")}`,
    7: "seven",
    "kafka.headers": listJson([
      ["A", "a1"],
      ["h", null],
      ["A", "a2"],
      ["bin", "base64:wyg="],
      ["7", "seven"],
    ]),
    ...provenance(0),
  });

  assert.equal(binary.base64Key, true);
  assert.deepEqual(binary.keyBytes, binaryKey);
  assert.deepEqual(binary.data, binaryValue);
  assert.deepEqual(binary.properties, provenance(1), "no headers, no header properties");

  assert.equal(tomb.hasValue, false, "a tombstone has no value for the Java client");
  assert.equal(tomb.data, null);
  assert.deepEqual(tomb.keyBytes, utf8("tomb"));
  assert.deepEqual(tomb.properties, { why: "deleted", ...provenance(2) });

  assert.equal(empty.hasValue, true, "an empty value is a value");
  assert.deepEqual(empty.data, Buffer.alloc(0));

  assert.equal(noKey.hasKey, false);
  assert.deepEqual(noKey.data, utf8("no key"));
  assert.equal(emptyKey.hasKey, true, "an empty key is a key");
  assert.deepEqual(emptyKey.keyBytes, Buffer.alloc(0));

  assert.deepEqual(noTime.data, utf8("no timestamp"), "a record without a timestamp is delivered");
  assert.equal(noTime.eventTime, 0, "with no event time");
  assert.equal(zero.eventTime, 0);

  assert.deepEqual(mine.properties, {
    "kafka.headers": listJson([["kafka.topic", "mine"]]),
    ...provenance(8),
  });
});

test("a LogAppendTime topic: msg.kafka.timestampType and the broker's time as event time", async () => {
  const kafkaTopic = uniqueName("contract-append");
  const pulsarTopic = `persistent://public/default/${uniqueName("contract-append")}`;
  const admin = testKafka().admin();
  await admin.connect();
  try {
    await admin.createTopics({
      topics: [
        {
          topic: kafkaTopic,
          numPartitions: 1,
          configEntries: [{ name: "message.timestamp.type", value: "LogAppendTime" }],
        },
      ],
      waitForLeaders: true,
    });
  } finally {
    await admin.disconnect();
  }
  const before = Date.now();
  const written = await produceWithJava(kafkaTopic, [
    { partition: 0, timestamp: 1000, value: "old create time" },
    { partition: 0, timestamp: "none", value: "no create time" },
  ]);
  for (const w of written) assert.ok(w.timestamp >= before - 60_000, "the broker set its append time");
  const seen = await bridge(kafkaTopic, pulsarTopic, 2);
  const got = await readWithJavaPulsar(pulsarTopic, 2, 30);
  assert.equal(got.length, 2);
  for (let i = 0; i < 2; i++) {
    const msg = seen.find((m) => m.kafka.offset === String(i));
    assert.equal(msg?.kafka.timestampType, "LogAppendTime");
    assert.equal(msg?.kafka.timestamp, written[i]?.timestamp);
    assert.equal(got[i]?.eventTime, written[i]?.timestamp);
  }
});

test("the json value format keeps integers beyond 2^53: the same digits reach Pulsar", async () => {
  const kafkaTopic = uniqueName("contract-json");
  const pulsarTopic = `persistent://public/default/${uniqueName("contract-json")}`;
  await createTopic(kafkaTopic, 1);
  const text =
    '{"id":12345678901234567890,"n":[-98765432109876543210,9007199254740993,1.5],"s":"12345678901234567890"}';
  await produceWithJava(kafkaTopic, [
    { partition: 0, value: text },
    { partition: 0, value: null },
  ]);
  const seen = await bridge(kafkaTopic, pulsarTopic, 2, "json");
  const got = await readWithJavaPulsar(pulsarTopic, 2, 30);
  assert.equal(got.length, 2);
  assert.deepEqual(got[0]?.data, utf8(text));
  assert.equal(got[1]?.hasValue, false, "a tombstone stays one in the json format");
  const payload = seen.find((m) => m.kafka.offset === "0")?.payload as Record<string, unknown>;
  assert.equal(payload.id, 12345678901234567890n);
  assert.deepEqual(payload.n, [-98765432109876543210n, 9007199254740993n, 1.5]);
  assert.equal(payload.s, "12345678901234567890");
});

test("Kafka dead-letter headers: kafkajs writes them (null as empty plus the exact list, repeats, dlq.* last) and Kafka's console consumer reads them", async () => {
  const topic = uniqueName("contract-dlq");
  await createTopic(topic, 1);
  const headers = kafkaHeadersFromList(
    [
      { key: "A", value: "a1" },
      { key: "A", value: Buffer.from([0x41, 0x32]) },
      { key: "h", value: null },
      { key: "dlq.error", value: "an earlier one" },
    ],
    { "dlq.error": "boom", "dlq.offset": "7" },
  );
  await produce(topic, [{ value: "copy", headers }]);
  const r = await runToolOk("kafka-tool", [
    "console-consumer",
    "--bootstrap-server",
    kafkaBrokers[0] ?? "",
    "--topic",
    topic,
    "--from-beginning",
    "--max-messages",
    "1",
    "--timeout-ms",
    "30000",
    "--property",
    "print.headers=true",
  ]);
  assert.equal(
    r.stdout.trim(),
    // kafkajs writes a name's values together, where the name first appears: dlq.error's own is last.
    "A:a1,A:A2,h:,dlq.error:an earlier one,dlq.error:boom," +
      'kafka.headers:[["A","a1"],["A","A2"],["h",null],["dlq.error","an earlier one"]],dlq.offset:7\tcopy',
  );
});
