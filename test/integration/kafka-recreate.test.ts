// A Kafka topic deleted and created again while kafka-in consumes it, the new topic filled past the old
// position before kafka-in fetches again: every record of the new topic must be bridged.
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { loadFlow, unloadFlow, stopHelper } from "../support/flow";
import { committedOffsets, createTopic, produce, testKafka } from "../support/kafka";
import { kafkaBrokers, pulsarAdmin, pulsarHttpUrl, pulsarUrl, uniqueName } from "../support/brokers";
import { readWithJavaPulsar } from "../support/java-kafka";
import { waitFor } from "../support/wait";

after(() => stopHelper());

async function allCommitted(
  groupId: string,
  topic: string,
  partitions: number,
  end: number,
): Promise<boolean> {
  const offsets = await committedOffsets(groupId, topic);
  return (
    offsets.size === partitions &&
    [...offsets.values()].every((o) => o.committed === o.logEnd && o.logEnd === end)
  );
}

for (const effectivelyOnce of [false, true]) {
  test(`a Kafka topic deleted and created again while kafka-in reads it, the new one filled past the old position: ${
    effectivelyOnce ? "every record once, in order (effectively-once)" : "every new record bridged (settled)"
  }`, async () => {
    const kafkaTopic = uniqueName("recreated-live");
    const groupId = uniqueName("recreated-live-group");
    // a namespace with deduplication on (effectively-once needs it)
    const ns = uniqueName("recreated-live");
    assert.equal((await pulsarAdmin("PUT", `/admin/v2/namespaces/public/${ns}`, {})).status, 204);
    assert.equal(
      (await pulsarAdmin("POST", `/admin/v2/namespaces/public/${ns}/deduplication`, true)).status,
      204,
    );
    const pulsarTopic = `persistent://public/${ns}/bridged`;
    await createTopic(kafkaTopic, 1);
    await produce(
      kafkaTopic,
      Array.from({ length: 100 }, (_, i) => ({ key: "k", value: `old-${i}` })),
    );
    await loadFlow([
      { id: "kc", type: "kafka-cluster", brokers: kafkaBrokers.join(","), clientId: "recreate" },
      { id: "pc", type: "pulsar-cluster", serviceUrl: pulsarUrl, adminUrl: pulsarHttpUrl },
      {
        id: "in",
        type: "kafka-in",
        cluster: "kc",
        topics: kafkaTopic,
        groupId,
        startFrom: "earliest",
        wires: [["out"]],
      },
      { id: "out", type: "pulsar-out", cluster: "pc", topic: pulsarTopic, effectivelyOnce, wires: [] },
    ]);
    try {
      await waitFor(
        "the first topic's records committed",
        () => allCommitted(groupId, kafkaTopic, 1, 100),
        60_000,
      );
      const admin = testKafka("recreate-admin").admin();
      await admin.connect();
      try {
        await admin.deleteTopics({ topics: [kafkaTopic] });
        await waitFor("the topic gone", async () => !(await admin.listTopics()).includes(kafkaTopic), 60_000);
      } finally {
        await admin.disconnect();
      }
      await createTopic(kafkaTopic, 1);
      await produce(
        kafkaTopic,
        Array.from({ length: 300 }, (_, i) => ({ key: "k", value: `new-${i}` })),
      );
      await waitFor(
        "the new topic's records committed",
        () => allCommitted(groupId, kafkaTopic, 1, 300),
        60_000,
      );
    } finally {
      await unloadFlow();
    }
    const got = (await readWithJavaPulsar(pulsarTopic, 400, 20)).map((m) => m.data?.toString() ?? "");
    const missing = Array.from({ length: 300 }, (_, i) => `new-${i}`).filter((v) => !got.includes(v));
    assert.deepEqual(missing, [], `records of the new topic never bridged (${got.length} read)`);
    if (effectivelyOnce)
      assert.deepEqual(
        got,
        [
          ...Array.from({ length: 100 }, (_, i) => `old-${i}`),
          ...Array.from({ length: 300 }, (_, i) => `new-${i}`),
        ],
        "each record once, in order",
      );
  });
}
