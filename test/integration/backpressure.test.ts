// Backpressure and outage: Pulsar (an instance of this test's own) is down while 100k records wait in Kafka.
// kafka-in stops at its in-flight window and pauses, nothing is committed past what Pulsar acknowledged,
// memory stays bounded, and once Pulsar is back every record arrives.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { createClient } from "../../src/pulsar/client";
import { kafkaBrokers, uniqueName } from "../support/brokers";
import { committedOffsets, createTopic, produce } from "../support/kafka";
import { helper, loadFlow, stopHelper, unloadFlow } from "../support/flow";
import { ownBrokers, type OwnBrokers } from "../support/own-brokers";
import { waitFor } from "../support/wait";

const RECORDS = 100_000;
let pulsar: OwnBrokers;

before(async () => {
  // created but not started: the test begins with Pulsar down
  pulsar = await ownBrokers();
});

after(async () => {
  await stopHelper();
  await pulsar.dispose();
});

test("Pulsar down: kafka-in pauses at its window, commits nothing unacknowledged; Pulsar back: nothing lost", async () => {
  const kafkaTopic = uniqueName("outage");
  const groupId = uniqueName("outage-group");
  await createTopic(kafkaTopic, 2);
  await produce(
    kafkaTopic,
    Array.from({ length: RECORDS }, (_, i) => ({ partition: i % 2, value: `r${i}` })),
    2000,
  );
  const statuses: string[] = [];
  await loadFlow([
    { id: "kc", type: "kafka-cluster", brokers: kafkaBrokers.join(",") },
    {
      id: "pc",
      type: "pulsar-cluster",
      serviceUrl: pulsar.serviceUrl,
      operationTimeoutMs: 3000,
      connectionTimeoutMs: 2000,
    },
    {
      id: "in",
      type: "kafka-in",
      cluster: "kc",
      topics: kafkaTopic,
      groupId,
      startFrom: "earliest",
      maxInFlight: 500,
      retryBackoffMs: 500,
      wires: [["out"]],
    },
    { id: "out", type: "pulsar-out", cluster: "pc", topic: "persistent://public/default/outage", wires: [] },
  ]);
  const kafkaIn = helper.getNode("in");
  assert.ok(kafkaIn);
  kafkaIn.on("call:status", (call: { args: [{ text?: string }] }) =>
    statuses.push(String(call.args[0]?.text ?? "")),
  );
  try {
    const rssBefore = process.memoryUsage().rss;
    await waitFor("kafka-in to pause", () => statuses.some((s) => s.includes("paused")), 60_000);
    const offsets = await committedOffsets(groupId, kafkaTopic);
    for (const [, o] of offsets) assert.ok(o.committed <= 0, "nothing committed while Pulsar is down");
    const rssGrowth = (process.memoryUsage().rss - rssBefore) / 1048576;
    assert.ok(rssGrowth < 200, `memory bounded while paused (+${rssGrowth.toFixed(0)} MB)`);

    await pulsar.brokers("start", "pulsar");
    await waitFor(
      "all offsets committed after Pulsar came back",
      async () => {
        const o = await committedOffsets(groupId, kafkaTopic);
        return o.size === 2 && [...o.values()].every((p) => p.committed === p.logEnd);
      },
      240_000,
    );
  } finally {
    await unloadFlow();
  }
  const client = createClient({ serviceUrl: pulsar.serviceUrl });
  const consumer = await client.subscribe({
    topic: "persistent://public/default/outage",
    subscription: "check",
    initialPosition: "earliest",
    receiverQueueSize: 5000,
  });
  const seen = new Set<string>();
  for (;;) {
    const m = await consumer.receive(5000).catch(() => undefined);
    if (!m) break;
    seen.add(m.payload.toString());
  }
  await consumer.close();
  await client.close();
  const lost = Array.from({ length: RECORDS }, (_, i) => `r${i}`).filter((v) => !seen.has(v));
  assert.equal(lost.length, 0, `nothing lost (${lost.length} missing)`);
});
