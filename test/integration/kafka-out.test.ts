// kafka-out in a real Node-RED runtime against the real Kafka broker, read back by Kafka's own console
// consumer: keys, values, headers (from msg.properties, binary ones decoded), timestamps, tombstones and
// compression arrive as written; a key picks the partition Kafka's Java client picks; a msg is done only
// after Kafka has the record, and a bad one fails to Catch; end to end, kafka-in -> kafka-out copies
// records with their headers and commits only what the copy has.
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { helper, loadFlow, stopHelper, unloadFlow } from "../support/flow";
import { committedOffsets, consoleRecords, createTopic, produce } from "../support/kafka";
import { kafkaBrokers, uniqueName } from "../support/brokers";
import { produceWithJava } from "../support/java-kafka";
import { waitFor } from "../support/wait";

after(() => stopHelper());

function flow(topic: string, extra: Record<string, unknown> = {}) {
  return [
    { id: "kc", type: "kafka-cluster", brokers: kafkaBrokers.join(","), clientId: "kafka-out-test" },
    { id: "out", type: "kafka-out", cluster: "kc", topic, ...extra },
    { id: "done", type: "complete", scope: ["out"], wires: [["done-h"]] },
    { id: "ct", type: "catch", scope: ["out"], wires: [["ct-h"]] },
    { id: "done-h", type: "helper" },
    { id: "ct-h", type: "helper" },
  ];
}

/** Sends `msgs` into kafka-out; resolves with the msgs done and the errors caught, once all are one or the other. */
async function write(msgs: Record<string, unknown>[]): Promise<{ done: number; caught: string[] }> {
  const caught: string[] = [];
  let done = 0;
  helper.getNode("done-h")?.on("input", () => done++);
  helper.getNode("ct-h")?.on("input", (m: { error: { message: string } }) => caught.push(m.error.message));
  for (const m of msgs) helper.getNode("out")?.receive(m);
  await waitFor(
    "every msg done or caught",
    () => Promise.resolve(done + caught.length === msgs.length),
    30_000,
    50,
  );
  return { done, caught };
}

for (const compression of ["none", "lz4", "zstd"])
  test(`kafka-out (${compression}) writes what Kafka's console consumer reads back: keys, values, headers from msg.properties, timestamps, tombstones; bad msgs go to Catch`, async () => {
    const topic = uniqueName(`kafka-out-${compression}`);
    await createTopic(topic, 3);
    await loadFlow(flow(topic, { compression }));
    try {
      const msgs = Array.from({ length: 20 }, (_, i) => ({
        payload: i === 3 ? null : { n: i },
        key: `key-${i}`,
        eventTime: 1_700_000_000_000 + i,
        properties: { source: "pulsar", bin: "base64:AP8=" },
      }));
      const bad = [
        { payload: "x", key: { no: 1 } },
        { payload: "x", partition: -2 },
      ];
      const { done, caught } = await write([...msgs, ...bad]);
      assert.equal(done, 20);
      assert.equal(caught.length, 2, caught.join());
      assert.match(caught.join(), /msg\.key must be/);
      const read = await consoleRecords(topic, 20);
      const byKey = new Map(read.map((r) => [r.key, r]));
      for (const [i, m] of msgs.entries()) {
        const r = byKey.get(m.key);
        assert.ok(r, m.key);
        assert.equal(r.value, i === 3 ? "null" : JSON.stringify({ n: i }));
        assert.equal(r.timestamp, m.eventTime);
        // the console consumer prints header values as text: \u0000\u00ff for the decoded bytes
        assert.match(r.headers, /^source:pulsar,bin:/);
        assert.doesNotMatch(r.headers, /base64/);
      }
      // the partitions Kafka's Java client picks for the same keys
      const javaTopic = uniqueName("kafka-out-java");
      await createTopic(javaTopic, 3);
      const java = await produceWithJava(
        javaTopic,
        msgs.map((m) => ({ key: m.key, value: "v" })),
      );
      assert.deepEqual(
        msgs.map((m) => byKey.get(m.key)?.partition),
        java.map((w) => w.partition),
      );
    } finally {
      await unloadFlow();
    }
  });

test("kafka-in -> kafka-out: records copied with their bytes, keys and headers; the source group commits what the copy has", async () => {
  const source = uniqueName("kafka-out-src");
  const copy = uniqueName("kafka-out-copy");
  const groupId = uniqueName("kafka-out-group");
  await createTopic(source, 1);
  await createTopic(copy, 1);
  await produce(
    source,
    Array.from({ length: 50 }, (_, i) => ({
      key: `k${i}`,
      value: `v${i}`,
      headers: { h: `x${i}` },
    })),
  );
  await loadFlow([
    { id: "kc", type: "kafka-cluster", brokers: kafkaBrokers.join(","), clientId: "kafka-out-copy" },
    {
      id: "in",
      type: "kafka-in",
      cluster: "kc",
      topics: source,
      groupId,
      startFrom: "earliest",
      wires: [["out"]],
    },
    { id: "out", type: "kafka-out", cluster: "kc", topic: copy },
  ]);
  try {
    await waitFor(
      "offset 50 committed",
      async () => (await committedOffsets(groupId, source)).get(0)?.committed === 50,
      60_000,
      500,
    );
  } finally {
    await unloadFlow();
  }
  const read = await consoleRecords(copy, 50);
  assert.deepEqual(
    read.map((r) => [r.key, r.value, r.headers]),
    Array.from({ length: 50 }, (_, i) => [`k${i}`, `v${i}`, `h:x${i}`]),
  );
});
