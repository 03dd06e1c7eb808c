// kafka-in's schema registry format, in a real Node-RED runtime against the real brokers and the test
// registry (Apicurio Registry's Confluent-compatible API): Avro records written by Apicurio's Java serializer
// in the Confluent wire format are decoded field for field and reach Pulsar; values that are not in the wire
// format, name an unknown schema or do not decode are dead-lettered; a registry that cannot be reached makes
// the partition wait (nothing committed, nothing dead-lettered) until it can; end to end, pulsar-out
// publishes them with an AVRO schema that Pulsar's Java client reads back.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { helper, loadFlow, stopHelper, unloadFlow } from "../support/flow";
import { committedOffsets, consoleConsume, createTopic, produce, testKafka } from "../support/kafka";
import { kafkaBrokers, pulsarUrl, registryUrl, runToolOk, uniqueName } from "../support/brokers";
import { produceWithJava, produceWithRegistrySerializer, readWithJavaSchema } from "../support/java-kafka";
import { protocEncode } from "../support/protobuf";
import { storedPayloads } from "../support/pulsar";
import { freePort } from "../support/node-red-process";
import { waitFor } from "../support/wait";
import { createClient } from "../../src/pulsar/client";
import type { PulsarClient } from "../../src/pulsar/types";
import type { KafkaProvenance } from "../../src/bridge/record-to-msg";

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
  namespace: "com.example.sensors",
  fields: [
    { name: "id", type: "long" },
    { name: "name", type: "string" },
    { name: "active", type: "boolean" },
    { name: "score", type: "double" },
    { name: "count", type: "int" },
    { name: "raw", type: "bytes" },
    { name: "price", type: { type: "bytes", logicalType: "decimal", precision: 9, scale: 2 } },
    { name: "kind", type: { type: "enum", name: "Kind", symbols: ["TEMPERATURE", "HUMIDITY"] } },
    { name: "note", type: ["null", "string"] },
    { name: "tags", type: { type: "array", items: "string" } },
    { name: "limits", type: { type: "map", values: "int" } },
    { name: "at", type: { type: "long", logicalType: "timestamp-millis" } },
    { name: "place", type: { type: "record", name: "Place", fields: [{ name: "room", type: "int" }] } },
  ],
};

/** Avro's JSON encoding of bytes: each byte as the code point of the same number. */
const avroBytes = (b: number[]) => String.fromCharCode(...b);

// three readings: the second has an id beyond 2^53, the third a negative price and no note
const READINGS = [
  { id: 1, price: [0x04, 0xd2], priceText: "12.34", note: "first", raw: [0, 255] },
  { id: 9007199254740993n, price: [0x00], priceText: "0.00", note: "big", raw: [] },
  { id: -7, price: [0xfb, 0x2e], priceText: "-12.34", note: null, raw: [1] },
].map((r, i) => ({
  priceBytes: Buffer.from(r.price),
  json: `{"id":${String(r.id)},"name":"sensor-${i}","active":${i % 2 === 0},"score":${i + 0.5},"count":${i},"raw":${JSON.stringify(avroBytes(r.raw))},"price":${JSON.stringify(avroBytes(r.price))},"kind":"${i === 1 ? "HUMIDITY" : "TEMPERATURE"}","note":${r.note === null ? "null" : JSON.stringify({ string: r.note })},"tags":["a","b${i}"],"limits":{"low":${i},"high":${i + 10}},"at":${1_700_000_000_000 + i},"place":{"room":${i + 100}}}`,
  expected: {
    id: r.id,
    name: `sensor-${i}`,
    active: i % 2 === 0,
    score: i + 0.5,
    count: i,
    raw: Buffer.from(r.raw),
    price: r.priceText,
    kind: i === 1 ? "HUMIDITY" : "TEMPERATURE",
    note: r.note,
    tags: ["a", `b${i}`],
    limits: { low: i, high: i + 10 },
    at: 1_700_000_000_000 + i,
    place: { room: i + 100 },
  },
}));

function flow(o: {
  kafkaTopic: string;
  pulsarTopic: string;
  groupId: string;
  url?: string;
  deadLetterTopic?: string;
}) {
  return [
    { id: "kc", type: "kafka-cluster", brokers: kafkaBrokers.join(","), clientId: "registry-test" },
    { id: "pc", type: "pulsar-cluster", serviceUrl: pulsarUrl },
    { id: "sr", type: "schema-registry", url: o.url ?? registryUrl },
    {
      id: "in",
      type: "kafka-in",
      cluster: "kc",
      topics: o.kafkaTopic,
      groupId: o.groupId,
      startFrom: "earliest",
      valueFormat: "registry",
      keyFormat: "string",
      registry: "sr",
      retryBackoffMs: 200,
      ...(o.deadLetterTopic
        ? { failurePolicy: "dead-letter", deadLetterTarget: "kafka", deadLetterTopic: o.deadLetterTopic }
        : {}),
      wires: [["out"]],
    },
    { id: "out", type: "pulsar-out", cluster: "pc", topic: o.pulsarTopic, wires: [] },
    { id: "st", type: "status", scope: ["in"], wires: [["st-h"]] },
    { id: "st-h", type: "helper" },
  ];
}

interface Seen {
  payload: unknown;
  key: unknown;
  kafka: KafkaProvenance;
}

function watch(): { seen: Seen[]; statuses: string[] } {
  const seen: Seen[] = [];
  const statuses: string[] = [];
  // a listener of one argument is no handler Node-RED waits on: pulsar-out alone settles the msg
  helper
    .getNode("out")
    ?.on("input", (msg: Seen) => seen.push({ payload: msg.payload, key: msg.key, kafka: msg.kafka }));
  helper.getNode("st-h")?.on("input", (msg: { status: { text: string } }) => statuses.push(msg.status.text));
  return { seen, statuses };
}

const committed = async (groupId: string, topic: string) =>
  (await committedOffsets(groupId, topic)).get(0)?.committed ?? -1;

/** Creates `topic` and writes READINGS to it with the Java serializer (keys k0, k1, k2). */
async function writeReadings(topic: string): Promise<void> {
  await createTopic(topic, 1);
  await produceWithRegistrySerializer(
    topic,
    READING,
    READINGS.map((r, i) => ({ key: `k${i}`, value: r.json })),
  );
}

/** Runs `nodes` until the group committed offset `count` on `topic`; the msgs pulsar-out got meanwhile. */
async function untilCommitted(
  nodes: unknown[],
  groupId: string,
  topic: string,
  count: number,
): Promise<Seen[]> {
  await loadFlow(nodes);
  try {
    const { seen } = watch();
    await waitFor(
      `offset ${count} committed`,
      async () => (await committed(groupId, topic)) === count,
      60_000,
      500,
    );
    return seen;
  } finally {
    await unloadFlow();
  }
}

/** JSON text as pulsar-out writes it: BigInt as its digits, Buffer as Node's JSON of a Buffer. */
const asJson = (v: unknown) =>
  JSON.stringify(v, (_k, x: unknown) => (typeof x === "bigint" ? `#${x.toString()}#` : x)).replace(
    /"#(-?\d+)#"/g,
    "$1",
  );

test("Avro records from Apicurio's Java serializer (Confluent wire format) decode field for field; msg.kafka.schema names the schema; Pulsar gets their JSON", async () => {
  const kafkaTopic = uniqueName("registry-avro");
  const pulsarTopic = `persistent://public/default/${uniqueName("registry-avro")}`;
  const groupId = uniqueName("registry");
  await writeReadings(kafkaTopic);
  const seen = await untilCommitted(flow({ kafkaTopic, pulsarTopic, groupId }), groupId, kafkaTopic, 3);
  assert.equal(seen.length, 3);
  const subjects = (await (await fetch(`${registryUrl}/subjects`)).json()) as string[];
  assert.ok(subjects.includes(`${kafkaTopic}-value`), "the serializer registered the topic's subject");
  const id = (
    (await (await fetch(`${registryUrl}/subjects/${kafkaTopic}-value/versions/latest`)).json()) as {
      id: number;
    }
  ).id;
  seen.forEach((m, i) => {
    const expected = READINGS[i]?.expected;
    // field for field, exact types: BigInt beyond 2^53, Buffer for bytes, the decimal's digits
    assert.deepEqual({ ...(m.payload as object) }, expected, `record ${i}`);
    assert.equal(typeof (m.payload as { id: unknown }).id, i === 1 ? "bigint" : "number");
    assert.ok(Buffer.isBuffer((m.payload as { raw: unknown }).raw));
    assert.equal(m.key, `k${i}`);
    assert.deepEqual(m.kafka.schema, { id, type: "AVRO", subject: `${kafkaTopic}-value`, version: 1 });
  });
  const stored = await storedPayloads(pulsar, pulsarTopic);
  assert.deepEqual(
    stored,
    READINGS.map((r) => asJson(r.expected)),
    "the same values reach Pulsar, the big id as its digits",
  );
});

test("values not in the wire format, of a schema id the registry does not have, or that do not decode with their schema are dead-lettered with the reason; the good records go on and everything commits", async () => {
  const kafkaTopic = uniqueName("registry-bad");
  const deadLetterTopic = uniqueName("registry-dlq");
  const pulsarTopic = `persistent://public/default/${uniqueName("registry-bad")}`;
  const groupId = uniqueName("registry");
  await createTopic(kafkaTopic, 1);
  await createTopic(deadLetterTopic, 1);
  // a schema of this test's own: a string
  const registered = await fetch(`${registryUrl}/subjects/${kafkaTopic}-value/versions`, {
    method: "POST",
    headers: { "content-type": "application/vnd.schemaregistry.v1+json" },
    body: JSON.stringify({ schema: '"string"' }),
  });
  const { id } = (await registered.json()) as { id: number };
  const header = (schemaId: number) => {
    const b = Buffer.alloc(5);
    b.writeUInt32BE(schemaId, 1);
    return b;
  };
  await produce(kafkaTopic, [
    { key: "plain", value: "just text" },
    { key: "unknown", value: Buffer.concat([header(987654), Buffer.from([2, 0x41])]) },
    // a string of 4 bytes (zigzag 8) with only one byte after it
    { key: "short", value: Buffer.concat([header(id), Buffer.from([8, 0x41])]) },
    { key: "good", value: Buffer.concat([header(id), Buffer.from([4, 0x6f, 0x6b])]) },
  ]);
  const seen = await untilCommitted(
    flow({ kafkaTopic, pulsarTopic, groupId, deadLetterTopic }),
    groupId,
    kafkaTopic,
    4,
  );
  assert.deepEqual(
    seen.map((m) => [m.key, m.payload]),
    [["good", "ok"]],
  );
  const dead = await consoleConsume(deadLetterTopic, 3);
  // per offset, the reason (and, for the first, the raw value kept)
  const reasons = new Map(
    dead
      .split("\n")
      .filter((l) => l.includes("dlq.error"))
      .map((l) => [/dlq\.offset:(\d+)/.exec(l)?.[1], l]),
  );
  assert.deepEqual([...reasons.keys()].sort(), ["0", "1", "2"], dead);
  assert.match(reasons.get("0") ?? "", /magic byte/);
  assert.match(reasons.get("0") ?? "", /just text$/, "the raw value is kept");
  assert.match(reasons.get("1") ?? "", /no schema with id 987654/);
  assert.match(reasons.get("2") ?? "", /does not decode with its AVRO schema/);
});

test("a registry that cannot be reached: the partition waits (red status, nothing committed, nothing dead-lettered); redeployed with the registry back, every record arrives", async () => {
  const kafkaTopic = uniqueName("registry-down");
  const deadLetterTopic = uniqueName("registry-down-dlq");
  const pulsarTopic = `persistent://public/default/${uniqueName("registry-down")}`;
  const groupId = uniqueName("registry");
  await createTopic(deadLetterTopic, 1);
  await writeReadings(kafkaTopic);
  const down = `http://127.0.0.1:${await freePort()}`;
  await loadFlow(flow({ kafkaTopic, pulsarTopic, groupId, deadLetterTopic, url: down }));
  try {
    const { seen, statuses } = watch();
    await waitFor(
      "a status naming the registry",
      () => Promise.resolve(statuses.some((s) => /schema registry/.test(s))),
      30_000,
      200,
    );
    await new Promise((r) => setTimeout(r, 5000));
    assert.equal(seen.length, 0);
    assert.equal(await committed(groupId, kafkaTopic), -1, "nothing committed");
    const admin = testKafka().admin();
    await admin.connect();
    try {
      const ends = await admin.fetchTopicOffsets(deadLetterTopic);
      assert.deepEqual(
        ends.map((o) => o.high),
        ["0"],
        "nothing dead-lettered",
      );
    } finally {
      await admin.disconnect();
    }
  } finally {
    await unloadFlow();
  }
  const seen = await untilCommitted(
    flow({ kafkaTopic, pulsarTopic, groupId, deadLetterTopic }),
    groupId,
    kafkaTopic,
    3,
  );
  assert.deepEqual(
    seen.map((m) => m.key),
    ["k0", "k1", "k2"],
  );
});

for (const source of ["node", "registry"] as const)
  test(`end to end: Avro records from the Java serializer, decoded by kafka-in, published by pulsar-out with the AVRO schema ${source === "node" ? "given in the node" : "of the topic's subject in the registry"}: Pulsar registers it and its Java client reads every field back with AUTO_CONSUME`, async () => {
    const kafkaTopic = uniqueName("registry-e2e");
    const pulsarTopic = `persistent://public/default/${uniqueName("registry-e2e")}`;
    const groupId = uniqueName("registry");
    await writeReadings(kafkaTopic);
    const nodes = flow({ kafkaTopic, pulsarTopic, groupId }).map((n) =>
      n.id !== "out"
        ? n
        : source === "node"
          ? { ...n, schemaType: "avro", schemaDefinition: JSON.stringify(READING) }
          : {
              ...n,
              schemaType: "avro",
              schemaSource: "registry",
              registry: "sr",
              schemaSubject: `${kafkaTopic}-value`,
            },
    );
    await untilCommitted(nodes, groupId, kafkaTopic, 3);
    const described = await runToolOk("pulsar-admin", ["schemas", "get", pulsarTopic]);
    assert.match(described.stdout, /"type"\s*:\s*"AVRO"/, described.stdout);
    const read = await readWithJavaSchema(pulsarTopic, 3);
    // every field, as the Java client's Avro record gives it (bytes and the decimal's bytes as base64)
    assert.deepEqual(
      read,
      READINGS.map(({ expected: e, priceBytes }, i) => ({
        type: "AVRO",
        fields: {
          id: String(e.id),
          name: e.name,
          active: String(e.active),
          score: String(e.score),
          count: String(e.count),
          raw: e.raw.toString("base64"),
          price: priceBytes.toString("base64"),
          kind: e.kind,
          note: String(e.note),
          tags: `[a, b${i}]`,
          limits: `{low=${i}, high=${i + 10}}`,
          at: String(e.at),
          place: `{"room": ${i + 100}}`,
        },
      })),
    );
  });

// Protobuf: bodies encoded by Google's protoc from text format (an encoder we did not write), framed as
// Confluent's serializers frame them; the file declares another message first, so the readings carry the
// message indexes [1].
const READINGS_PROTO = `syntax = "proto3";
package iot.v1;
message Heartbeat { string device = 1; }
message Reading {
  string device = 1;
  int64 seq = 2;
  sint32 delta = 3;
  double temp = 4;
  bool ok = 5;
  bytes raw = 6;
  enum Level { LOW = 0; HIGH = 1; }
  Level level = 7;
  message Place { string site = 1; int32 floor = 2; }
  Place place = 8;
  repeated int32 samples = 9;
  map<string, string> labels = 10;
  oneof source { string sensor = 11; int32 channel = 12; }
}
`;

const PROTO_READINGS = [
  {
    text: 'device: "d-0" seq: 9007199254740993 delta: -5 temp: 21.5 ok: true raw: "\\000\\377" level: HIGH place { site: "hall" floor: 2 } samples: [1, -2] labels { key: "room" value: "a" } sensor: "s-1"',
    expected: {
      device: "d-0",
      seq: 9007199254740993n,
      delta: -5,
      temp: 21.5,
      ok: true,
      raw: Buffer.from([0, 255]),
      level: "HIGH",
      place: { site: "hall", floor: 2 },
      samples: [1, -2],
      labels: { room: "a" },
      sensor: "s-1",
    },
  },
  {
    // what proto3 leaves unset: its defaults, no place, the oneof's other member
    text: 'device: "d-1" channel: 7',
    expected: {
      device: "d-1",
      seq: 0,
      delta: 0,
      temp: 0,
      ok: false,
      raw: Buffer.alloc(0),
      level: "LOW",
      place: null,
      samples: [],
      labels: {},
      channel: 7,
    },
  },
];

test("Protobuf records (bodies from Google's protoc, message indexes [1]) decode field for field; end to end, pulsar-out publishes the subject's message as a JSON schema that Pulsar's Java client reads back with AUTO_CONSUME", async () => {
  const kafkaTopic = uniqueName("registry-proto");
  const pulsarTopic = `persistent://public/default/${uniqueName("registry-proto")}`;
  const groupId = uniqueName("registry");
  await createTopic(kafkaTopic, 1);
  const registered = await fetch(`${registryUrl}/subjects/${kafkaTopic}-value/versions`, {
    method: "POST",
    headers: { "content-type": "application/vnd.schemaregistry.v1+json" },
    body: JSON.stringify({ schemaType: "PROTOBUF", schema: READINGS_PROTO }),
  });
  assert.equal(registered.status, 200, await registered.clone().text());
  const { id } = (await registered.json()) as { id: number };
  const header = Buffer.alloc(5);
  header.writeUInt32BE(id, 1);
  const bodies = await protocEncode(
    READINGS_PROTO,
    "iot.v1.Reading",
    PROTO_READINGS.map((r) => r.text),
  );
  // the indexes [1]: a count of 1, then index 1 (each a zigzag varint)
  await produceWithJava(
    kafkaTopic,
    bodies.map((body, i) => ({ key: `k${i}`, value: Buffer.concat([header, Buffer.from([2, 2]), body]) })),
  );
  const nodes = flow({ kafkaTopic, pulsarTopic, groupId }).map((n) =>
    n.id !== "out"
      ? n
      : {
          ...n,
          schemaType: "json",
          schemaSource: "registry",
          registry: "sr",
          schemaSubject: `${kafkaTopic}-value`,
          schemaMessage: "Reading",
        },
  );
  const seen = await untilCommitted(nodes, groupId, kafkaTopic, 2);
  assert.deepEqual(
    seen.map((m) => ({ ...(m.payload as object) })),
    PROTO_READINGS.map((r) => r.expected),
  );
  assert.equal(typeof (seen[0]?.payload as { seq: unknown }).seq, "bigint");
  assert.deepEqual(seen[0]?.kafka.schema, {
    id,
    type: "PROTOBUF",
    subject: `${kafkaTopic}-value`,
    version: 1,
  });
  const described = await runToolOk("pulsar-admin", ["schemas", "get", pulsarTopic]);
  assert.match(described.stdout, /"type"\s*:\s*"JSON"/, described.stdout);
  const read = await readWithJavaSchema(pulsarTopic, 2);
  assert.deepEqual(
    read.map((r) => r.type),
    ["JSON", "JSON"],
  );
  // every field as the Java client's JSON record prints it
  assert.deepEqual(read[0]?.fields, {
    device: "d-0",
    seq: "9007199254740993",
    delta: "-5",
    temp: "21.5",
    ok: "true",
    raw: "AP8=",
    level: "HIGH",
    place: '{"site":"hall","floor":2}',
    samples: "[1,-2]",
    labels: '{"room":"a"}',
    sensor: "s-1",
    channel: "null",
  });
  assert.equal(read[1]?.fields.channel, "7");
  assert.equal(read[1]?.fields.place, "null");
  assert.equal(read[1]?.fields.level, "LOW");
});

test("a registry URL carrying a user and password is refused with the reason (they belong in the credentials), and the password is not shown", async () => {
  const kafkaTopic = uniqueName("registry-url-creds");
  await createTopic(kafkaTopic, 1);
  const url = registryUrl.replace("http://", "http://bridge:s3cret@");
  await loadFlow(
    flow({ kafkaTopic, pulsarTopic: `persistent://public/default/${kafkaTopic}`, groupId: kafkaTopic, url }),
  );
  try {
    const logged = () => helper.log().args.map(([entry]) => String(entry.msg));
    await waitFor(
      "kafka-in's refusal",
      () => Promise.resolve(logged().some((m) => /URL carries a user or password/.test(m))),
      10_000,
      100,
    );
    assert.ok(!logged().some((m) => m.includes("s3cret")), JSON.stringify(logged()));
  } finally {
    await unloadFlow();
  }
});

test("the subject evolves while the bridge runs: records of a newer version (written by the Java serializer) make pulsar-out read the latest schema and reopen its producer; Pulsar's Java client reads the new field", async () => {
  const kafkaTopic = uniqueName("registry-evolve");
  const pulsarTopic = `persistent://public/default/${uniqueName("registry-evolve")}`;
  const groupId = uniqueName("registry");
  const v1 = {
    type: "record",
    name: "Ping",
    namespace: "com.example",
    fields: [{ name: "n", type: "int" }],
  };
  const v2 = { ...v1, fields: [...v1.fields, { name: "note", type: ["null", "string"], default: null }] };
  await createTopic(kafkaTopic, 1);
  await produceWithRegistrySerializer(kafkaTopic, v1, [
    { key: "a", value: '{"n":1}' },
    { key: "b", value: '{"n":2}' },
  ]);
  const nodes = flow({ kafkaTopic, pulsarTopic, groupId }).map((n) =>
    n.id !== "out"
      ? n
      : {
          ...n,
          schemaType: "avro",
          schemaSource: "registry",
          registry: "sr",
          schemaSubject: `${kafkaTopic}-value`,
        },
  );
  await loadFlow(nodes);
  try {
    await waitFor(
      "offset 2 committed",
      async () => (await committed(groupId, kafkaTopic)) === 2,
      60_000,
      500,
    );
    await produceWithRegistrySerializer(kafkaTopic, v2, [
      { key: "c", value: '{"n":3,"note":{"string":"third"}}' },
      { key: "d", value: '{"n":4,"note":null}' },
    ]);
    await waitFor(
      "offset 4 committed",
      async () => (await committed(groupId, kafkaTopic)) === 4,
      60_000,
      500,
    );
  } finally {
    await unloadFlow();
  }
  const read = await readWithJavaSchema(pulsarTopic, 4);
  assert.deepEqual(
    read.map((r) => r.fields),
    [{ n: "1" }, { n: "2" }, { n: "3", note: "third" }, { n: "4", note: "null" }],
  );
});
