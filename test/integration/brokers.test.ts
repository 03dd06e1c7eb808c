// The test brokers are real: kafkajs and Kafka's own console consumer agree on a record; Pulsar's own CLI
// produces a message that its CLI and the admin REST API read back.
import assert from "node:assert/strict";
import { test } from "node:test";
import { Kafka, logLevel } from "kafkajs";
import { kafkaBrokers, pulsarAdmin, runToolOk, uniqueName } from "../support/brokers";

test("Kafka: kafkajs produces and consumes a record; Kafka's console consumer reads the same", async () => {
  const topic = uniqueName("smoke");
  const kafka = new Kafka({ clientId: "smoke-test", brokers: kafkaBrokers, logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true });
  await admin.disconnect();

  const producer = kafka.producer();
  await producer.connect();
  await producer.send({ topic, messages: [{ key: "k1", value: "hello kafka", headers: { h: "v" } }] });
  await producer.disconnect();

  const consumer = kafka.consumer({ groupId: uniqueName("smoke-group") });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const received = await new Promise<{ key: string; value: string; header: string }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("no record within 30 s")), 30_000);
    consumer
      .run({
        eachMessage: async ({ message }) => {
          clearTimeout(timer);
          resolve({
            key: message.key?.toString() ?? "",
            value: message.value?.toString() ?? "",
            header: message.headers?.h?.toString() ?? "",
          });
          return Promise.resolve();
        },
      })
      .catch(reject);
  });
  await consumer.disconnect();
  assert.deepEqual(received, { key: "k1", value: "hello kafka", header: "v" });

  const cli = await runToolOk("kafka-tool", [
    "console-consumer",
    "--bootstrap-server",
    kafkaBrokers[0] ?? "127.0.0.1:9092",
    "--topic",
    topic,
    "--from-beginning",
    "--max-messages",
    "1",
    "--property",
    "print.key=true",
    "--property",
    "key.separator=|",
  ]);
  assert.equal(cli.stdout.trim(), "k1|hello kafka");
});

test("Pulsar: the official CLI produces a message that the CLI consumer and the admin API read back", async () => {
  const topic = `persistent://public/default/${uniqueName("smoke")}`;
  // A subscription created before producing keeps the message for the consumer below.
  await runToolOk("pulsar-admin", [
    "topics",
    "create-subscription",
    "-s",
    "smoke-sub",
    "-m",
    "earliest",
    topic,
  ]);
  await runToolOk("pulsar-client", [
    "produce",
    "-m",
    "hello pulsar",
    "-k",
    "key-1",
    "-p",
    "color=blue",
    topic,
  ]);

  const stats = await pulsarAdmin(
    "GET",
    `/admin/v2/persistent/public/default/${topic.split("/").pop()}/stats`,
  );
  assert.equal(stats.status, 200);
  assert.equal((stats.json as { msgInCounter: number }).msgInCounter, 1);

  const consumed = await runToolOk("pulsar-client", ["consume", "-s", "smoke-sub", "-n", "1", topic]);
  assert.match(consumed.stdout, /key:\[key-1\]/);
  assert.match(consumed.stdout, /properties:\[color=blue\]/);
  assert.match(consumed.stdout, /content:hello pulsar/);
});
