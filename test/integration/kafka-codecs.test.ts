// Compressed Kafka topics without native modules: records written by Kafka's own console producer with
// each codec are read by kafkajs with our codecs, and ours are read by Kafka's console consumer.
import assert from "node:assert/strict";
import { test } from "node:test";
import { CompressionTypes, Kafka, logLevel } from "kafkajs";
import { registerKafkaCodecs } from "../../src/kafka/codecs";
import { kafkaBrokers, runToolOk, uniqueName } from "../support/brokers";
import { createTopic } from "../support/kafka";

registerKafkaCodecs();
const kafka = new Kafka({ clientId: "codec-test", brokers: kafkaBrokers, logLevel: logLevel.NOTHING });
const LINES = Array.from({ length: 200 }, (_, i) => `line ${i} ${"the same words again ".repeat(i % 5)}end`);

async function readAll(topic: string, n: number): Promise<string[]> {
  const consumer = kafka.consumer({ groupId: uniqueName("codec") });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const got: string[] = [];
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`only ${got.length} of ${n} records`)), 60_000);
    consumer
      .run({
        eachMessage: ({ message }) => {
          got.push(message.value?.toString() ?? "");
          if (got.length >= n) {
            clearTimeout(timer);
            resolve();
          }
          return Promise.resolve();
        },
      })
      .catch(reject);
  });
  await consumer.disconnect();
  return got;
}

for (const codec of ["gzip", "snappy", "lz4", "zstd"]) {
  test(`${codec}: Kafka's console producer -> kafkajs, and kafkajs -> Kafka's console consumer`, async () => {
    const inbound = uniqueName(`codec-in-${codec}`);
    await createTopic(inbound, 1);
    await runToolOk(
      "kafka-tool",
      [
        "console-producer",
        "--bootstrap-server",
        kafkaBrokers[0] ?? "",
        "--topic",
        inbound,
        "--compression-codec",
        codec,
      ],
      {
        input: `${LINES.join("\n")}\n`,
      },
    );
    assert.deepEqual(await readAll(inbound, LINES.length), LINES);

    const outbound = uniqueName(`codec-out-${codec}`);
    await createTopic(outbound, 1);
    const producer = kafka.producer();
    await producer.connect();
    const type = {
      gzip: CompressionTypes.GZIP,
      snappy: CompressionTypes.Snappy,
      lz4: CompressionTypes.LZ4,
      zstd: CompressionTypes.ZSTD,
    }[codec];
    await producer.send({ topic: outbound, compression: type, messages: LINES.map((value) => ({ value })) });
    await producer.disconnect();
    const cli = await runToolOk("kafka-tool", [
      "console-consumer",
      "--bootstrap-server",
      kafkaBrokers[0] ?? "",
      "--topic",
      outbound,
      "--from-beginning",
      "--max-messages",
      String(LINES.length),
    ]);
    assert.deepEqual(cli.stdout.trimEnd().split("\n"), LINES);
  });
}
