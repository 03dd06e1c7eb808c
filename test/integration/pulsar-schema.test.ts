// Producer schemas of our Pulsar client against the real broker: a producer declaring an AVRO or JSON
// schema registers it (pulsar-admin schemas get shows it), every message carries the schema version the
// broker gave, and Pulsar's Java client with Schema.AUTO_CONSUME() decodes the messages field for field; a
// schema the topic's compatibility check refuses fails the producer with IncompatibleSchema.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import avro from "avsc";
import { pulsarUrl, runToolOk, uniqueName } from "../support/brokers";
import { readWithJavaSchema } from "../support/java-kafka";
import { helper, loadFlow, stopHelper, unloadFlow } from "../support/flow";
import { waitFor } from "../support/wait";
import { createClient } from "../../src/pulsar/client";
import { PulsarError } from "../../src/pulsar/errors";
import type { PulsarClient } from "../../src/pulsar/types";

let pulsar: PulsarClient;
before(() => {
  pulsar = createClient({ serviceUrl: pulsarUrl });
});
after(async () => {
  await pulsar.close();
  await stopHelper();
});

const READING = {
  type: "record",
  name: "Reading",
  namespace: "com.example",
  fields: [
    { name: "id", type: "long" },
    { name: "name", type: "string" },
    { name: "note", type: ["null", "string"], default: null },
  ],
};

for (const type of ["AVRO", "JSON"] as const) {
  test(`a producer with a ${type} schema: the broker registers it, each message names its version, the Java client decodes them with AUTO_CONSUME`, async () => {
    const topic = `persistent://public/default/${uniqueName(`schema-${type.toLowerCase()}`)}`;
    const encoder = avro.Type.forSchema(READING as avro.Schema);
    const values = [
      { id: 1, name: "first", note: "hello" },
      { id: 2, name: "second", note: null },
    ];
    // batched and single messages both carry the version
    for (const batchingEnabled of [false, true]) {
      const producer = await pulsar.createProducer({
        topic,
        batchingEnabled,
        schema: { type, definition: JSON.stringify(READING), name: "reading" },
      });
      try {
        for (const v of values)
          await producer.send({
            payload: type === "AVRO" ? encoder.toBuffer(v) : Buffer.from(JSON.stringify(v)),
          });
      } finally {
        await producer.close();
      }
    }
    const described = await runToolOk("pulsar-admin", ["schemas", "get", topic]);
    assert.match(described.stdout, new RegExp(`"type"\\s*:\\s*"${type}"`), described.stdout);
    assert.match(described.stdout, /Reading/);
    const read = await readWithJavaSchema(topic, 4);
    assert.deepEqual(
      read.map((r) => [r.type, r.fields]),
      [...values, ...values].map((v) => [type, { id: String(v.id), name: v.name, note: String(v.note) }]),
    );
  });
}

test("a schema the topic's compatibility check refuses fails the producer with IncompatibleSchema, at once", async () => {
  const topic = `persistent://public/default/${uniqueName("schema-incompatible")}`;
  const first = await pulsar.createProducer({
    topic,
    schema: { type: "AVRO", definition: JSON.stringify(READING) },
  });
  await first.close();
  const changed = { ...READING, fields: [{ name: "id", type: "string" }] };
  const started = Date.now();
  await assert.rejects(
    pulsar.createProducer({ topic, schema: { type: "AVRO", definition: JSON.stringify(changed) } }),
    (err: unknown) => err instanceof PulsarError && err.code === "IncompatibleSchema",
  );
  assert.ok(Date.now() - started < 10_000, "not retried");
});

test("pulsar-out with an invalid schema on a fixed topic: the red status stays (no producer is opened without the schema), and a msg fails with the reason", async () => {
  const topic = `persistent://public/default/${uniqueName("schema-invalid")}`;
  await loadFlow([
    { id: "pc", type: "pulsar-cluster", serviceUrl: pulsarUrl },
    {
      id: "out",
      type: "pulsar-out",
      cluster: "pc",
      topic,
      schemaType: "avro",
      schemaDefinition: '{"type":"record","name":"R","fields":[{"name":"a","type":"nope"}]}',
      wires: [],
    },
    { id: "st", type: "status", scope: ["out"], wires: [["st-h"]] },
    { id: "ct", type: "catch", scope: ["out"], wires: [["ct-h"]] },
    { id: "st-h", type: "helper" },
    { id: "ct-h", type: "helper" },
  ]);
  try {
    const fills: string[] = [];
    const caught: string[] = [];
    helper.getNode("st-h")?.on("input", (msg: { status: { fill: string } }) => fills.push(msg.status.fill));
    helper
      .getNode("ct-h")
      ?.on("input", (msg: { error: { message: string } }) => caught.push(msg.error.message));
    await new Promise((r) => setTimeout(r, 3000));
    assert.ok(!fills.includes("green"), JSON.stringify(fills));
    helper.getNode("out")?.receive({ payload: { a: 1 } });
    await waitFor("the msg fails with the reason", () => Promise.resolve(caught.length > 0), 10_000, 100);
    assert.match(caught[0] ?? "", /not a valid Avro schema/);
  } finally {
    await unloadFlow();
  }
});
