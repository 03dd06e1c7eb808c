// Effectively-once end to end: a real node-red process bridging Kafka to a Pulsar namespace with
// deduplication is killed with SIGKILL mid-stream and started again; Pulsar then holds every record
// exactly once.
import assert from "node:assert/strict";
import fs from "node:fs";
import { test } from "node:test";
import { createClient } from "../../src/pulsar/client";
import { kafkaBrokers, pulsarAdmin, pulsarHttpUrl, pulsarUrl, uniqueName } from "../support/brokers";
import { committedOffsets, createTopic, produce } from "../support/kafka";
import { makeUserDir, startNodeRed } from "../support/node-red-process";
import { waitFor } from "../support/wait";
import { dedupNamespace } from "../support/pulsar";

const RECORDS = 50_000;

test("SIGKILL mid-stream and restart: every record is in Pulsar exactly once", async (t) => {
  const ns = await dedupNamespace("eo");
  const kafkaTopic = uniqueName("eo");
  const groupId = uniqueName("eo-group");
  const pulsarTopic = `persistent://public/${ns}/bridged`;
  await createTopic(kafkaTopic, 3);
  await produce(
    kafkaTopic,
    Array.from({ length: RECORDS }, (_, i) => ({
      partition: i % 3,
      key: `sensor-${i % 20}`,
      value: `record-${i}`,
    })),
    2000,
  );

  const userDir = makeUserDir();
  t.after(() => fs.rmSync(userDir, { recursive: true, force: true }));
  const flow = [
    { id: "tab", type: "tab", label: "eo" },
    { id: "kc", type: "kafka-cluster", brokers: kafkaBrokers.join(",") },
    // with the admin URL, pulsar-out checks that deduplication is on before it publishes
    { id: "pc", type: "pulsar-cluster", serviceUrl: pulsarUrl, adminUrl: pulsarHttpUrl },
    {
      id: "in",
      type: "kafka-in",
      z: "tab",
      cluster: "kc",
      topics: kafkaTopic,
      groupId,
      startFrom: "earliest",
      maxInFlight: 2000,
      wires: [["out"]],
    },
    {
      id: "out",
      type: "pulsar-out",
      z: "tab",
      cluster: "pc",
      topic: pulsarTopic,
      effectivelyOnce: true,
      wires: [],
    },
  ];
  const stored = async () =>
    (
      (await pulsarAdmin("GET", `/admin/v2/persistent/public/${ns}/bridged/stats`)).json as {
        msgInCounter?: number;
      }
    ).msgInCounter ?? 0;

  const first = await startNodeRed({ userDir });
  try {
    await first.deploy(flow);
    // Polled often: the bridge can move tens of thousands of records a second.
    await waitFor("a part of the stream in Pulsar", async () => (await stored()) > RECORDS / 10, 120_000, 50);
  } finally {
    await first.stop("SIGKILL");
  }
  const atKill = await stored();
  assert.ok(atKill < RECORDS, `killed mid-stream (${atKill} of ${RECORDS} stored)`);
  // Records already in Pulsar but not yet committed in Kafka are delivered again after the restart:
  // only deduplication keeps them from being stored twice.
  const committedAtKill = [...(await committedOffsets(groupId, kafkaTopic)).values()].reduce(
    (n, o) => n + Math.max(0, o.committed),
    0,
  );
  t.diagnostic(`at the kill: ${atKill} stored in Pulsar, ${committedAtKill} committed in Kafka`);
  assert.ok(committedAtKill < atKill, "the restart redelivers records Pulsar already holds");

  const second = await startNodeRed({ userDir });
  try {
    await waitFor(
      "all offsets committed after the restart",
      async () => {
        const offsets = await committedOffsets(groupId, kafkaTopic);
        return offsets.size === 3 && [...offsets.values()].every((o) => o.committed === o.logEnd);
      },
      180_000,
    );
  } finally {
    await second.stop();
  }

  const client = createClient({ serviceUrl: pulsarUrl });
  const consumer = await client.subscribe({
    topic: pulsarTopic,
    subscription: "check",
    initialPosition: "earliest",
    receiverQueueSize: 5000,
  });
  const seen = new Map<string, number>();
  try {
    for (;;) {
      const m = await consumer.receive(5000).catch(() => undefined);
      if (!m) break;
      const v = m.payload.toString();
      seen.set(v, (seen.get(v) ?? 0) + 1);
    }
  } finally {
    await consumer.close();
    await client.close();
  }
  const duplicated = [...seen.values()].filter((n) => n > 1).length;
  const lost = Array.from({ length: RECORDS }, (_, i) => `record-${i}`).filter((v) => !seen.has(v)).length;
  assert.equal(lost, 0, "no record lost");
  assert.equal(duplicated, 0, "no record duplicated");
  assert.equal(seen.size, RECORDS);
});
