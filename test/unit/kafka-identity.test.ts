// src/kafka/identity.ts without a broker: the Metadata v10-v13 codec byte for byte against the protocol's
// field order, Kafka's printed form of a UUID, and the kafkajs internals the module reaches (these tests
// fail first when a kafkajs upgrade changes them; the integration test runs the whole path).
import assert from "node:assert/strict";
import { test } from "node:test";
import { Kafka, logLevel } from "kafkajs";
import {
  KafkaIdentityError,
  decodeMetadataResponse,
  encodeMetadataRequest,
  uuidToString,
} from "../../src/kafka/identity";

// ---- a little writer for hand-made responses (flexible versions: compact types, tagged fields)

const uvarint = (n: number): number[] => {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return out;
};
const int16 = (n: number) => [(n >> 8) & 0xff, n & 0xff];
const int32 = (n: number) => [...Buffer.from(Int32Array.of(n).buffer).reverse()];
const str = (s: string | null) =>
  s === null ? [0] : [...uvarint(Buffer.byteLength(s) + 1), ...Buffer.from(s)];
const arr = (items: number[][]) => [...uvarint(items.length + 1), ...items.flat()];
const noTags = [0];
/** One unknown tagged field of `size` bytes, which a reader must skip. */
const someTags = (size: number) => [
  1,
  ...uvarint(7),
  ...uvarint(size),
  ...new Array<number>(size).fill(0xab),
];

const TOPIC_ID = "e43BwEHgT_azNXib0j2g9w";

function response(version: number, tags: number[]): Buffer {
  const partition = [
    ...int16(0),
    ...int32(1), // index
    ...int32(1), // leader
    ...int32(4), // leader epoch
    ...arr([int32(1), int32(2)]), // replicas
    ...arr([int32(1)]), // in sync
    ...arr([]), // offline
    ...tags,
  ];
  const topic = (errorCode: number, name: string | null, id: Buffer, partitions: number[][]) => [
    ...int16(errorCode),
    ...str(name),
    ...id,
    0, // is internal
    ...arr(partitions),
    ...int32(-2147483648), // authorized operations
    ...tags,
  ];
  return Buffer.from([
    ...tags, // response header v1
    ...int32(25), // throttle
    ...arr([[...int32(1), ...str("broker-1"), ...int32(9092), ...str(null), ...tags]]),
    ...str("cluster-α"),
    ...int32(1),
    ...arr([
      topic(0, "orders", Buffer.from(TOPIC_ID, "base64url"), [partition, partition]),
      topic(3, "gone", Buffer.alloc(16), []),
    ]),
    ...(version === 10 ? int32(-2147483648) : []),
    ...(version >= 13 ? int16(0) : []),
    ...tags,
  ]);
}

test("Metadata request v10-v13: the fields in the protocol's order, no auto-creation", () => {
  const topic = [2, ...new Array<number>(16).fill(0), 3, 0x61, 0x62, 0]; // one topic: zero id, "ab", no tags
  // auto-create, [cluster operations (v10 only)], topic operations, tags
  assert.deepEqual([...encodeMetadataRequest(10, ["ab"])], [...topic, 0, 0, 0, 0]);
  for (const v of [11, 12, 13]) assert.deepEqual([...encodeMetadataRequest(v, ["ab"])], [...topic, 0, 0, 0]);
  assert.deepEqual([...encodeMetadataRequest(12, [])], [1, 0, 0, 0], "an empty array asks for no topics");
  const long = "t".repeat(200); // a length varint of two bytes
  assert.deepEqual([...encodeMetadataRequest(12, [long]).subarray(17, 19)], [0xc9, 0x01]);
  assert.throws(() => encodeMetadataRequest(9, []), RangeError);
  assert.throws(() => encodeMetadataRequest(14, []), RangeError);
});

test("Metadata response v10-v13: cluster id, topic ids and errors, past tagged fields of any size", () => {
  for (const version of [10, 11, 12, 13]) {
    for (const tags of [noTags, someTags(3), someTags(200)]) {
      const r = decodeMetadataResponse(version, response(version, tags), true);
      assert.equal(r.clusterId, "cluster-α");
      assert.equal(r.throttleTimeMs, 25);
      assert.equal(r.clientSideThrottleTime, 25);
      assert.deepEqual(r.brokers, [{ nodeId: 1, host: "broker-1", port: 9092, rack: null }]);
      assert.deepEqual(r.topics, [
        { errorCode: 0, name: "orders", topicId: TOPIC_ID, isInternal: false, partitions: 2 },
        { errorCode: 3, name: "gone", topicId: undefined, isInternal: false, partitions: 0 },
      ]);
      assert.equal(r.errorCode, 0);
    }
  }
});

test("Metadata response: a short or a long answer is an error, not a wrong identity", () => {
  const full = response(12, noTags);
  assert.throws(
    () => decodeMetadataResponse(12, full.subarray(0, full.length - 1), true),
    KafkaIdentityError,
  );
  assert.throws(() => decodeMetadataResponse(12, Buffer.concat([full, Buffer.from([0])]), true), /too many/);
  // v12's answer read as v13 misses the top-level error code
  assert.throws(() => decodeMetadataResponse(13, full, true), /ends before/);
});

test("a UUID prints as Kafka prints it: 22 characters of base64url; the zero UUID is none", () => {
  const bytes = Buffer.from(TOPIC_ID, "base64url");
  assert.equal(bytes.length, 16);
  assert.equal(uuidToString(bytes), TOPIC_ID);
  // 0xfbefbe is 111110 111110 111110 111110: "-" in base64url ("+" in base64); 0xff is "_" then "w", no "="
  assert.equal(uuidToString(Buffer.from(`${"fbefbe".repeat(5)}ff`, "hex")), `${"-".repeat(20)}_w`);
  assert.equal(uuidToString(Buffer.alloc(16, 0xff)), `${"_".repeat(21)}w`);
  assert.equal(uuidToString(Buffer.alloc(16)), undefined);
  assert.throws(() => uuidToString(Buffer.alloc(15)), RangeError);
});

test("the kafkajs internals identity.ts reaches are still there (written for kafkajs 2.2.4)", async () => {
  // package.json pins kafkajs exactly, so an upgrade is deliberate: read identity.ts's header again then
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { version } = require("kafkajs/package.json") as { version: string };
  assert.equal(version, "2.2.4", "kafkajs was upgraded: re-check the internals src/kafka/identity.ts uses");
  const kafka = new Kafka({ clientId: "unit", brokers: ["127.0.0.1:1"], logLevel: logLevel.NOTHING });
  const symbol = Object.getOwnPropertySymbols(kafka).find(
    (s) => s.description === "private:Kafka:createCluster",
  );
  assert.ok(symbol, "the Kafka client's createCluster symbol");
  const create = (kafka as unknown as Record<symbol, (o: object) => Record<string, unknown>>)[symbol];
  const cluster = create({ allowAutoTopicCreation: false });
  for (const m of ["connect", "disconnect", "refreshMetadata", "getNodeIds", "findBroker"])
    assert.equal(typeof cluster[m], "function", `Cluster.${m}`);
  // a Broker's connection pool sends a request object (brokerPool is reached here only, to make one)
  const pool = cluster.brokerPool as {
    createSeedBroker(): Promise<void>;
    seedBroker: Record<string, unknown>;
  };
  await pool.createSeedBroker();
  const connectionPool = pool.seedBroker.connectionPool as Record<string, unknown>;
  assert.equal(typeof connectionPool.send, "function", "Broker.connectionPool.send");
  // the framing: size, api key, version, correlation id, client id (header v1), then our encode()'s bytes
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const createRequest = require("kafkajs/src/protocol/request") as (o: object) => Promise<{ buffer: Buffer }>;
  const body = Buffer.from([0, 0xaa, 0xbb]);
  const framed = await createRequest({
    correlationId: 7,
    clientId: "id",
    request: { apiKey: 3, apiVersion: 12, encode: () => ({ buf: body, buffer: body }) },
  });
  assert.deepEqual(
    [...framed.buffer],
    [0, 0, 0, 15, 0, 3, 0, 12, 0, 0, 0, 7, 0, 2, 0x69, 0x64, 0, 0xaa, 0xbb],
    "kafkajs writes request header v1 and appends the body as given",
  );
});
