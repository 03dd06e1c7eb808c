// The schema registry wire format and decoders, with a registry client stand-in (the real registry and a
// Java serializer are in test/integration/schema-registry.test.ts).
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import avro from "avsc";
import protobuf from "protobufjs";
import {
  RegistryError,
  registryClient,
  type RegisteredSchema,
  type RegistryClient,
} from "../../src/registry/client";
import { SchemaDecodeError, SchemaDecoder, schemaIdOf } from "../../src/registry/decoder";
import { recordToMsg } from "../../src/bridge/record-to-msg";
import { msgToPulsar } from "../../src/bridge/msg-to-pulsar";
import {
  BridgeError as BridgeErrorClass,
  ConfigurationError,
  failureScope,
  type BridgeError,
} from "../../src/common/errors";
import { payloadSchema, registryPayloadSchema } from "../../src/bridge/schema-payload";
import { protobufAsAvro } from "../../src/registry/protobuf-avro";
import { setOwn } from "../../src/common/json";
import { avroType, protobufSchema } from "../../src/registry/codecs";
import { KNOWN_PROTOS } from "../../src/registry/known-protos";

function framed(id: number, body: Buffer, indexes?: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(id, 1);
  return Buffer.concat([head, indexes ?? Buffer.alloc(0), body]);
}

function fakeClient(schemas: Record<number, RegisteredSchema>, o: { down?: () => boolean } = {}) {
  const asked: number[] = [];
  const client: RegistryClient = {
    schemaById: async (id) => {
      await Promise.resolve();
      asked.push(id);
      if (o.down?.()) throw new RegistryError("cannot reach the schema registry", undefined, undefined);
      const s = schemas[id];
      if (!s)
        throw new RegistryError(`the schema registry answered 404 to GET /schemas/ids/${id}`, 404, 40403);
      return s;
    },
    versionsOf: (id) =>
      Promise.resolve([
        { subject: "other-value", version: 3 },
        { subject: `t${id}-value`, version: 1 },
      ]),
    schemaOf: (subject) => {
      const s = Object.values(schemas).find((x) => x.schema.includes(subject));
      return s ? Promise.resolve(s) : Promise.reject(new RegistryError("404", 404, 40401));
    },
    close: () => undefined,
  };
  return { client, asked };
}

/** How decoding `bytes` fails: the failure kind and message, or "decoded". */
function failureOf(d: SchemaDecoder, bytes: Buffer): string {
  try {
    d.decode(bytes);
    return "decoded";
  } catch (e) {
    return e instanceof SchemaDecodeError ? `${e.failure}: ${e.message}` : `other: ${String(e)}`;
  }
}

/** The failure kind alone. */
const failureKind = (d: SchemaDecoder, bytes: Buffer) => failureOf(d, bytes).split(":")[0];

async function decodeOnce(d: SchemaDecoder, bytes: Buffer, subject?: string) {
  await d.prefetch([bytes]);
  return d.decode(bytes, subject);
}

test("registry: the wire format's header is checked: magic byte, length", () => {
  assert.equal(schemaIdOf(Buffer.from([0, 0, 0, 1, 2, 9])), 258);
  assert.throws(
    () => schemaIdOf(Buffer.from([1, 0, 0, 0, 1])),
    (e: unknown) => e instanceof SchemaDecodeError && e.failure === "wire" && /magic byte/.test(e.message),
  );
  assert.throws(
    () => schemaIdOf(Buffer.from([0, 0, 1])),
    (e: unknown) => e instanceof SchemaDecodeError && e.failure === "wire" && /too short/.test(e.message),
  );
});

test("registry: Avro records decode into plain values: long beyond 2^53 as BigInt, decimal as its digits, bytes as Buffer, unions, enums; the topic's subject is picked", async () => {
  const schema = {
    type: "record",
    name: "Reading",
    namespace: "com.example",
    fields: [
      { name: "id", type: "long" },
      { name: "big", type: "long" },
      { name: "price", type: { type: "bytes", logicalType: "decimal", precision: 10, scale: 2 } },
      { name: "raw", type: "bytes" },
      { name: "note", type: ["null", "string"] },
      { name: "kind", type: { type: "enum", name: "Kind", symbols: ["A", "B"] } },
      { name: "either", type: ["int", "string"] },
      {
        name: "shape",
        type: [
          { type: "record", name: "Circle", fields: [{ name: "r", type: "int" }] },
          { type: "record", name: "Square", fields: [{ name: "side", type: "int" }] },
        ],
      },
    ],
  };
  const writer = avro.Type.forSchema(
    {
      ...schema,
      fields: schema.fields.map((f) => (f.name === "big" ? { ...f, type: "long" } : f)),
    } as avro.Schema,
    { wrapUnions: true },
  );
  // avsc's own long refuses 2^53+: write that field with a Buffer-level long
  const body = Buffer.concat([
    writer.toBuffer({
      id: 7,
      big: 0,
      price: Buffer.from([0xfb, 0x2e]),
      raw: Buffer.from([1, 2]),
      note: { string: "hi" },
      kind: "B",
      either: { string: "x" },
      shape: { "com.example.Square": { side: 2 } },
    }),
  ]);
  // replace the zigzag varint of big (0 -> one byte 0x00, right after id's one byte 0x0e) with 2^60+1
  const big = (1n << 60n) + 1n;
  let z = big << 1n;
  const varint: number[] = [];
  while (z >= 0x80n) {
    varint.push(Number((z & 0x7fn) | 0x80n));
    z >>= 7n;
  }
  varint.push(Number(z));
  const patched = Buffer.concat([body.subarray(0, 1), Buffer.from(varint), body.subarray(2)]);
  const { client } = fakeClient({
    5: { schema: JSON.stringify(schema), schemaType: "AVRO", references: [] },
  });
  const d = new SchemaDecoder(client);
  const got = await decodeOnce(d, framed(5, patched), "t5-value");
  const v = got.value as Record<string, unknown>;
  assert.equal(v.id, 7);
  assert.equal(v.big, big);
  assert.equal(v.price, "-12.34");
  assert.deepEqual(v.raw, Buffer.from([1, 2]));
  assert.equal(v.note, "hi");
  assert.equal(v.kind, "B");
  assert.equal(v.either, "x", "int or string: told apart by its JavaScript type");
  assert.deepEqual(
    JSON.parse(JSON.stringify(v.shape)),
    { "com.example.Square": { side: 2 } },
    "two records: wrapped",
  );
  assert.deepEqual(got.schema, { id: 5, type: "AVRO", subject: "t5-value", version: 1 });
  assert.equal((JSON.parse(JSON.stringify({ ...v, big: String(v.big) })) as { note: string }).note, "hi");
});

test("registry: Protobuf values with Confluent's message indexes pick the message; 64-bit fields exact; unset fields their defaults", async () => {
  const proto = `syntax = "proto3";
package shop;
message First { string a = 1; }
message Order {
  int64 id = 1;
  uint64 huge = 2;
  string item = 3;
  repeated sint64 parts = 4;
  message Line { int32 n = 1; fixed64 f = 2; }
  Line line = 5;
  bytes blob = 6;
  enum State { NEW = 0; PAID = 1; }
  State state = 7;
}`;
  const root = protobuf.parse(proto, { keepCase: true }).root;
  const Order = root.lookupType("shop.Order");
  const body = Buffer.from(
    Order.encode(
      Order.fromObject({
        id: "12",
        huge: "18446744073709551615",
        parts: ["-3", "9007199254740993"],
        line: { n: 4, f: "5" },
        state: "PAID",
      }),
    ).finish(),
  );
  const Line = root.lookupType("shop.Order.Line");
  const lineBody = Buffer.from(Line.encode(Line.fromObject({ n: 9 })).finish());
  const { client } = fakeClient({ 9: { schema: proto, schemaType: "PROTOBUF", references: [] } });
  const d = new SchemaDecoder(client);
  // indexes [1]: count 1 (zigzag 2), index 1 (zigzag 2)
  const order = (await decodeOnce(d, framed(9, body, Buffer.from([2, 2])))).value as Record<string, unknown>;
  assert.equal(order.id, 12);
  assert.equal(order.huge, 18446744073709551615n);
  assert.deepEqual(order.parts, [-3, 9007199254740993n]);
  assert.deepEqual(order.line, { n: 4, f: 5 });
  assert.equal(order.item, "", "unset: the default");
  assert.equal(order.state, "PAID");
  // [1, 0]: Order.Line
  assert.deepEqual(d.decode(framed(9, lineBody, Buffer.from([4, 2, 0]))).value, { n: 9, f: 0 });
  // a single 0 is [0]: First
  const First = root.lookupType("shop.First");
  const first = Buffer.from(First.encode(First.fromObject({ a: "z" })).finish());
  assert.deepEqual(d.decode(framed(9, first, Buffer.from([0]))).value, { a: "z" });
  assert.throws(
    () => d.decode(framed(9, first, Buffer.from([2, 10]))),
    (e: unknown) =>
      e instanceof SchemaDecodeError && e.failure === "body" && /no message at index 5/.test(e.message),
  );
});

test("registry: JSON Schema values are their JSON (integers beyond 2^53 exact)", async () => {
  const { client } = fakeClient({ 3: { schema: '{"type":"object"}', schemaType: "JSON", references: [] } });
  const d = new SchemaDecoder(client);
  const got = await decodeOnce(d, framed(3, Buffer.from('{"n":12345678901234567890,"s":"x"}')));
  assert.deepEqual(got.value, { n: 12345678901234567890n, s: "x" });
  assert.equal(got.schema.type, "JSON");
});

test("registry: Avro references are read first, so the schema can name their types", async () => {
  const address = {
    type: "record",
    name: "Address",
    namespace: "com.example",
    fields: [{ name: "city", type: "string" }],
  };
  const person = {
    type: "record",
    name: "Person",
    namespace: "com.example",
    fields: [{ name: "home", type: "com.example.Address" }],
  };
  const client: RegistryClient = {
    schemaById: () =>
      Promise.resolve({
        schema: JSON.stringify(person),
        schemaType: "AVRO",
        references: [{ name: "com.example.Address", subject: "address", version: 1 }],
      }),
    versionsOf: () => Promise.resolve([]),
    schemaOf: (subject, version) => {
      assert.deepEqual([subject, version], ["address", 1]);
      return Promise.resolve({ schema: JSON.stringify(address), schemaType: "AVRO", references: [] });
    },
    close: () => undefined,
  };
  const body = avro.Type.forSchema({
    ...person,
    fields: [{ name: "home", type: address }],
  } as avro.Schema).toBuffer({ home: { city: "Oslo" } });
  const got = await decodeOnce(new SchemaDecoder(client), framed(1, body));
  assert.deepEqual(JSON.parse(JSON.stringify(got.value)), { home: { city: "Oslo" } });
});

test("registry: an unknown id, a body that does not fit and a registry that is down fail with what to do; a schema loaded once is not asked again", async () => {
  let down = true;
  let clock = 0;
  const { client, asked } = fakeClient(
    { 1: { schema: '"string"', schemaType: "AVRO", references: [] } },
    { down: () => down },
  );
  const d = new SchemaDecoder(client, { now: () => clock, retryAfterMs: 1000, unknownGraceMs: 0 });
  const value = framed(1, avro.Type.forSchema("string").toBuffer("ok"));
  assert.equal(failureKind(d, value), "unavailable", "being loaded");
  await d.prefetch([value]);
  assert.equal(failureKind(d, value), "unavailable", "the registry is down");
  down = false;
  assert.equal(failureKind(d, value), "unavailable", "not asked again within a second");
  clock += 1000;
  await d.prefetch([value]);
  assert.equal(d.decode(value).value, "ok");
  assert.equal(d.decode(value).value, "ok");
  assert.deepEqual(asked, [1, 1]);
  await d.prefetch([framed(2, Buffer.from("x"))]);
  assert.equal(failureKind(d, framed(2, Buffer.from("x"))), "unknown");
  assert.equal(failureKind(d, framed(1, Buffer.from([0x09]))), "body", "a string longer than its bytes");
});

test("registry: kafka-in's msg from a registry record: payload, msg.kafka.schema, a record key as its JSON text; failures are the record's, or the partition waits for the registry", async () => {
  const valueSchema = { type: "record", name: "V", fields: [{ name: "n", type: "long" }] };
  const keySchema = { type: "record", name: "K", fields: [{ name: "id", type: "string" }] };
  let down = false;
  const client: RegistryClient = {
    schemaById: (id) => {
      if (down)
        return Promise.reject(new RegistryError("cannot reach the schema registry", undefined, undefined));
      const schema = id === 1 ? valueSchema : id === 2 ? keySchema : undefined;
      return schema
        ? Promise.resolve({ schema: JSON.stringify(schema), schemaType: "AVRO", references: [] })
        : Promise.reject(new RegistryError(`answered 404 to GET /schemas/ids/${id}`, 404, 40403));
    },
    versionsOf: (id) => Promise.resolve([{ subject: id === 1 ? "t-value" : "t-key", version: 1 }]),
    schemaOf: () => Promise.reject(new Error("no references")),
    close: () => undefined,
  };
  const registry = new SchemaDecoder(client, { unknownGraceMs: 0 });
  const value = framed(1, avro.Type.forSchema(valueSchema as avro.Schema).toBuffer({ n: 5 }));
  const key = framed(2, avro.Type.forSchema(keySchema as avro.Schema).toBuffer({ id: "a" }));
  await registry.prefetch([value, key]);
  const where = { topic: "t", partition: 0, groupId: "g" };
  const formats = { value: "registry", key: "registry", registry } as const;
  const record = (v: Buffer | null, k: Buffer | null) => ({ key: k, value: v, timestamp: "1", offset: "0" });
  const msg = recordToMsg(record(value, key), where, formats);
  assert.deepEqual(JSON.parse(JSON.stringify(msg.payload)), { n: 5 });
  assert.equal(msg.key, '{"id":"a"}');
  assert.deepEqual(msg.kafka.schema, { id: 1, type: "AVRO", subject: "t-value", version: 1 });
  assert.deepEqual(msg.kafka.keySchema, { id: 2, type: "AVRO", subject: "t-key", version: 1 });
  assert.equal(recordToMsg(record(null, null), where, formats).payload, null, "a tombstone stays null");
  const errorOf = (v: Buffer) => {
    try {
      recordToMsg(record(v, null), where, formats);
    } catch (e) {
      return e as BridgeError;
    }
    throw new Error("decoded");
  };
  const wire = errorOf(Buffer.from("plain text"));
  assert.equal(wire.key, "kafka-in.errors.schema-wire");
  assert.equal(failureScope(wire), "record", "dead-lettered");
  await registry.prefetch([framed(7, Buffer.alloc(1))]);
  assert.equal(errorOf(framed(7, Buffer.alloc(1))).key, "kafka-in.errors.schema-unknown");
  down = true;
  const away = errorOf(framed(8, Buffer.alloc(1)));
  assert.equal(away.key, "kafka-in.errors.schema-registry");
  assert.equal(away.retriable, true);
  assert.equal(failureScope(away), "destination", "the partition waits; never dead-lettered");
});

/** A local HTTP server standing for a misconfigured registry URL (a unit test of the client, no broker). */
async function httpServer(handler: http.RequestListener) {
  const s = http.createServer(handler);
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${(s.address() as AddressInfo).port}`, close: () => s.close() };
}

test("review 30: a URL that does not serve the Confluent API (a 404 without its error body, a web page answering 200) makes the partition wait; no good record is dead-lettered", async () => {
  for (const [status, body] of [
    [404, "<html>Not Found</html>"],
    [200, "<html>app</html>"],
  ] as const) {
    const s = await httpServer((_q, r) => {
      r.writeHead(status, { "content-type": "text/html" });
      r.end(body);
    });
    const d = new SchemaDecoder(registryClient({ url: s.url }));
    const v = framed(1, Buffer.from([2, 0x41]));
    await d.prefetch([v]);
    try {
      recordToMsg(
        { key: null, value: v, timestamp: "0", offset: "0" },
        { topic: "t", partition: 0, groupId: "g" },
        {
          value: "registry",
          key: "auto",
          registry: d,
        },
      );
      assert.fail("decoded");
    } catch (e) {
      assert.equal(failureScope(e), "destination", `${status}: ${(e as Error).message}`);
      assert.match((e as Error).message, /Confluent-compatible/);
    } finally {
      d.close();
      s.close();
    }
  }
});

test("review 30: Avro longs written as objects (timestamp-micros, Debezium's nanos) beyond 2^53 are exact; defaults Java accepts and avsc would refuse do not make the schema unusable", async () => {
  const schema = {
    type: "record",
    name: "R",
    fields: [
      { name: "until", type: { type: "long", logicalType: "timestamp-micros" } },
      { name: "maybe", type: ["null", { type: "long" }] },
      { name: "label", type: ["string", "null"], default: null },
    ],
  };
  const writer = avro.Type.forSchema({
    type: "record",
    name: "R",
    fields: [
      { name: "until", type: "long" },
      { name: "maybe", type: ["null", "long"] },
      { name: "label", type: ["string", "null"] },
    ],
  });
  // longs within 2^53 written by avsc, then the first patched to 253402214400000000 (9999-12-31 in µs)
  const small = writer.toBuffer({ until: 0, maybe: 1, label: "x" });
  const big = 253402214400000000n;
  let z = big << 1n;
  const varint: number[] = [];
  while (z >= 0x80n) {
    varint.push(Number((z & 0x7fn) | 0x80n));
    z >>= 7n;
  }
  varint.push(Number(z));
  const body = Buffer.concat([Buffer.from(varint), small.subarray(1)]);
  const { client } = fakeClient({
    4: { schema: JSON.stringify(schema), schemaType: "AVRO", references: [] },
  });
  const got = (await decodeOnce(new SchemaDecoder(client), framed(4, body))).value;
  assert.deepEqual(got, { until: big, maybe: 1, label: "x" });
});

test("review 30: while a failed schema is asked for again, records are told the failure, not 'being loaded'; a closed decoder says so; failures do not grow the cache past its bound; a bytes key stays bytes", async () => {
  let clock = 0;
  const client: RegistryClient = {
    schemaById: (id) =>
      id === 1
        ? Promise.reject(
            new RegistryError("the schema registry answered 401 to GET /schemas/ids/1", 401, 40101),
          )
        : Promise.reject(
            new RegistryError(`the schema registry answered 404 to GET /schemas/ids/${id}`, 404, 40403),
          ),
    versionsOf: () => Promise.resolve([]),
    schemaOf: () => Promise.reject(new Error("none")),
    close: () => undefined,
  };
  const d = new SchemaDecoder(client, { now: () => clock, maxSchemas: 10 });
  const v = framed(1, Buffer.alloc(1));
  await d.prefetch([v]);
  const failure = () => failureOf(d, v);
  assert.match(failure(), /^refused: .*401/);
  clock += 5000;
  assert.match(failure(), /^refused: .*401/, "asked again, and meanwhile the same reason");
  for (let id = 2; id < 200; id++) await d.prefetch([framed(id, Buffer.alloc(1))]);
  assert.ok((d as unknown as { entries: Map<number, unknown> }).entries.size <= 10);
  d.close();
  assert.match(failure(), /^unavailable: .*closed/);

  const bytesKey = { type: "bytes" };
  const { client: keys } = fakeClient({
    6: { schema: JSON.stringify(bytesKey), schemaType: "AVRO", references: [] },
  });
  const registry = new SchemaDecoder(keys);
  const key = framed(6, avro.Type.forSchema("bytes").toBuffer(Buffer.from([255, 1])));
  await registry.prefetch([key]);
  const msg = recordToMsg(
    { key, value: null, timestamp: "0", offset: "0" },
    { topic: "t", partition: 0, groupId: "g" },
    { value: "auto", key: "registry", registry },
  );
  assert.deepEqual(msg.key, Buffer.from([255, 1]));
});

test("pulsar-out's schema option: msg.payload written as Avro binary or JSON text of the given schema; a payload that does not fit is the record's failure, naming the field; an invalid schema a configuration error", () => {
  const definition = JSON.stringify({
    type: "record",
    name: "Reading",
    fields: [
      { name: "id", type: "long" },
      { name: "price", type: { type: "bytes", logicalType: "decimal", precision: 9, scale: 2 } },
      { name: "note", type: ["null", "string"], default: null },
    ],
  });
  const avroOut = payloadSchema("avro", definition);
  assert.equal(avroOut.producerSchema.type, "AVRO");
  assert.deepEqual(
    JSON.parse(avroOut.producerSchema.definition),
    JSON.parse(definition),
    "the schema as given, defaults kept",
  );
  const value = { id: 9007199254740993n, price: "-12.34", note: null };
  const bytes = avroOut.encode(value);
  assert.deepEqual(
    { ...(avroType(definition).fromBuffer(bytes) as object) },
    value,
    "what kafka-in decodes, pulsar-out encodes",
  );
  const jsonOut = payloadSchema("json", definition);
  assert.equal(jsonOut.encode(value).toString(), '{"id":9007199254740993,"price":"-12.34","note":null}');
  assert.throws(
    () => avroOut.encode({ id: "seven", price: "1.00", note: null }),
    (e: unknown) =>
      e instanceof BridgeErrorClass &&
      e.key === "pulsar-out.errors.schema-payload" &&
      failureScope(e) === "record" &&
      /at id \("seven"\)/.test(e.message),
  );
  assert.throws(
    () => payloadSchema("avro", '{"type": "record"}'),
    (e: unknown) => e instanceof ConfigurationError,
  );
});

test("review 31: pulsar-out's JSON schema writes what Jackson reads (declared fields, bytes as base64, defaults for fields left out); a fixed decimal is sign-extended; undecodable payloads and non-record schemas are refused", () => {
  const definition = JSON.stringify({
    type: "record",
    name: "R",
    fields: [
      { name: "b", type: "bytes" },
      {
        name: "d",
        type: { type: "fixed", name: "D8", size: 8, logicalType: "decimal", precision: 10, scale: 2 },
      },
      { name: "i", type: "int" },
      { name: "added", type: ["null", "string"], default: null },
    ],
  });
  const json = payloadSchema("json", definition);
  assert.equal(
    json.encode({ b: Buffer.from([1, 2, 3]), d: "-12.30", i: 1, extra: "secret" }).toString(),
    '{"b":"AQID","d":"-12.30","i":1,"added":null}',
  );
  const bin = payloadSchema("avro", definition);
  const written = bin.encode({ b: Buffer.alloc(0), d: "-12.30", i: 1 });
  assert.deepEqual(
    { ...(avroType(definition).fromBuffer(written) as object) },
    {
      b: Buffer.alloc(0),
      d: "-12.30",
      i: 1,
      added: null,
    },
  );
  const scope = (fn: () => unknown) => {
    try {
      fn();
      return "encoded";
    } catch (e) {
      return `${failureScope(e)} ${(e as BridgeError).key}`;
    }
  };
  const refused = "record pulsar-out.errors.schema-payload";
  assert.equal(
    scope(() => bin.encode({ b: Buffer.alloc(0), d: "123456789012.00", i: 1 })),
    refused,
    "precision",
  );
  assert.equal(
    scope(() => bin.encode({ b: Buffer.alloc(0), d: "1.00", i: 12345678901234567890n })),
    refused,
  );
  const long = payloadSchema(
    "avro",
    JSON.stringify({ type: "record", name: "L", fields: [{ name: "n", type: "long" }] }),
  );
  assert.equal(
    scope(() => long.encode({ n: 2n ** 63n })),
    refused,
    "beyond int64",
  );
  assert.equal(
    scope(() =>
      msgToPulsar(
        { payload: undefined },
        { mapHeaders: false, provenanceProperties: false, encodePayload: long.encode },
      ),
    ),
    refused,
    "a missing payload is no empty body naming the schema",
  );
  assert.throws(
    () => payloadSchema("avro", '["null", "string"]'),
    (e: unknown) => e instanceof ConfigurationError,
  );
});

test("review 30: an id the registry says it has not is waited for a moment (a replica may lag), then refused", async () => {
  let clock = 0;
  let registered = false;
  const { client: unknownIds } = fakeClient({});
  const client: RegistryClient = {
    ...unknownIds,
    schemaById: (id) =>
      registered
        ? Promise.resolve({ schema: '"string"', schemaType: "AVRO", references: [] })
        : unknownIds.schemaById(id),
  };
  const d = new SchemaDecoder(client, { now: () => clock, unknownGraceMs: 10_000 });
  const v = framed(5, avro.Type.forSchema("string").toBuffer("late"));
  const failure = () => failureKind(d, v);
  await d.prefetch([v]);
  assert.equal(failure(), "unavailable", "waited for");
  clock += 2000;
  registered = true;
  failure();
  await d.prefetch([v]);
  assert.equal(d.decode(v).value, "late", "the lagging replica caught up");
  const w = framed(6, Buffer.from([0]));
  registered = false;
  await d.prefetch([w]);
  clock += 11_000;
  assert.equal(failureKind(d, w), "unknown", "refused after the grace");
});

test("pulsar-out's schema from the registry: a registry that cannot be read makes the records wait, never dead-letters them", () => {
  const e = new BridgeErrorClass(
    "pulsar-out.errors.schema-registry",
    "cannot read the schema of subject s",
    true,
  );
  assert.equal(failureScope(e), "destination");
});

const PROTO_READINGS = `syntax = "proto3";
package iot;
import "google/protobuf/timestamp.proto";
message Reading {
  string device = 1;
  int64 seq = 2;
  uint64 counter = 3;
  sint32 delta = 4;
  fixed32 code = 5;
  float ratio = 6;
  double temp = 7;
  bool ok = 8;
  bytes raw = 9;
  enum Level { LOW = 0; HIGH = 1; }
  Level level = 10;
  message Place { string site = 1; Place parent = 2; }
  Place place = 11;
  repeated int32 samples = 12;
  map<string, double> extra = 13;
  oneof source { string sensor = 14; int32 channel = 15; }
  optional string note = 16;
  google.protobuf.Timestamp at = 17;
  repeated Place route = 18;
}
message Other { string x = 1; }`;

test("Protobuf subjects for pulsar-out: the Avro record of a message describes what kafka-in decodes, so a decoded record is published unchanged (AVRO and JSON); a payload built in the flow may leave fields out", async () => {
  const reading: RegisteredSchema = { schema: PROTO_READINGS, schemaType: "PROTOBUF", references: [] };
  const definition = await protobufAsAvro(reading, () => Promise.reject(new Error("no references")));
  const schema = JSON.parse(definition) as {
    name: string;
    namespace: string;
    fields: { name: string; type: unknown; default?: unknown }[];
  };
  assert.equal(`${schema.namespace}.${schema.name}`, "iot.Reading", "the first message by default");
  const field = (n: string) => schema.fields.find((f) => f.name === n);
  assert.deepEqual(field("seq"), { name: "seq", type: "long", default: 0 });
  assert.deepEqual(field("delta"), { name: "delta", type: "int", default: 0 });
  assert.deepEqual(field("code"), { name: "code", type: "long", default: 0 });
  assert.deepEqual(field("level")?.type, {
    type: "enum",
    name: "Level",
    namespace: "iot.Reading",
    symbols: ["LOW", "HIGH"],
  });
  assert.deepEqual(field("sensor"), { name: "sensor", type: ["null", "string"], default: null });
  assert.deepEqual(field("note"), { name: "note", type: ["null", "string"], default: null });
  assert.deepEqual(field("extra"), { name: "extra", type: { type: "map", values: "double" }, default: {} });
  // the recursive message is named once, then referred to
  assert.deepEqual(field("route")?.type, { type: "array", items: "iot.Reading.Place" });

  const root = protobuf.parse(PROTO_READINGS, { keepCase: true }).root;
  root.addJSON(
    (
      protobuf.common.get("google/protobuf/timestamp.proto") as {
        nested: Record<string, protobuf.AnyNestedObject>;
      }
    ).nested,
  );
  const Reading = root.lookupType("iot.Reading");
  const body = Buffer.from(
    Reading.encode(
      Reading.fromObject({
        device: "d-1",
        seq: "9007199254740993",
        counter: "18",
        delta: -7,
        code: 4000000000,
        ratio: 0.5,
        temp: 21.25,
        ok: true,
        raw: Buffer.from([0, 255]),
        level: "HIGH",
        place: { site: "hall", parent: { site: "campus" } },
        samples: [1, -2],
        extra: { rh: 40.5 },
        channel: 3,
        at: { seconds: "1767225600", nanos: 5 },
        route: [{ site: "a" }],
      }),
    ).finish(),
  );
  const { client } = fakeClient({ 4: reading });
  const decoded = (await decodeOnce(new SchemaDecoder(client), framed(4, body, Buffer.from([0])))).value;
  const asAvro = payloadSchema("avro", definition);
  const back = avroType(definition).fromBuffer(asAvro.encode(decoded)) as Record<string, unknown>;
  assert.equal(back.seq, 9007199254740993n);
  assert.equal(back.code, 4000000000);
  assert.equal(back.level, "HIGH");
  assert.deepEqual(back.raw, Buffer.from([0, 255]));
  const plain = (v: unknown) => JSON.parse(JSON.stringify(v)) as unknown;
  assert.deepEqual(plain(back.place), { site: "hall", parent: { site: "campus", parent: null } });
  assert.equal(back.channel, 3);
  assert.equal(back.sensor, null, "the oneof member not set");
  assert.equal(back.note, null, "an optional field not set");
  assert.deepEqual(plain(back.at), { seconds: 1767225600, nanos: 5 });
  const json = JSON.parse(payloadSchema("json", definition).encode(decoded).toString("utf8")) as Record<
    string,
    unknown
  >;
  assert.equal(json.raw, "AP8=");
  assert.equal(json.level, "HIGH");
  assert.deepEqual(json.extra, { rh: 40.5 });
  // a payload built in the flow: the fields it leaves out take their Protobuf defaults
  const built = avroType(definition).fromBuffer(asAvro.encode({ device: "d-2" })) as Record<string, unknown>;
  assert.equal(built.seq, 0);
  assert.equal(built.level, "LOW");
  assert.equal(built.place, null);
  assert.deepEqual(built.samples, []);
  // a uint64 beyond Avro's long and an enum number the schema does not name are the record's failure
  for (const bad of [{ counter: 18446744073709551615n }, { level: 7 }])
    assert.throws(
      () => asAvro.encode({ device: "d-3", ...bad }),
      (e: unknown) =>
        e instanceof BridgeErrorClass && e.key === "pulsar-out.errors.schema-payload" && !e.retriable,
    );
  // another message, by name or full name
  for (const name of ["Other", "iot.Other", ".iot.Other"])
    assert.equal(
      (
        JSON.parse(await protobufAsAvro(reading, () => Promise.reject(new Error("none")), name)) as {
          name: string;
        }
      ).name,
      "Other",
    );
});

test("pulsar-out's schema from a registry subject: Avro as it is, Protobuf mapped; another type, or a message the schema lacks, is a configuration error kept; the registry away is asked again", async () => {
  let down = true;
  const subjects: Record<string, RegisteredSchema> = {
    "avro-value": {
      schema: '{"type":"record","name":"A","fields":[{"name":"a","type":"int"}]}',
      schemaType: "AVRO",
      references: [],
    },
    "proto-value": { schema: PROTO_READINGS, schemaType: "PROTOBUF", references: [] },
    "json-value": { schema: '{"type":"object"}', schemaType: "JSON", references: [] },
  };
  let asked = 0;
  const client = {
    schemaOf: async (subject: string) => {
      await Promise.resolve();
      asked++;
      if (down) throw new RegistryError("cannot reach the schema registry", undefined, undefined);
      return subjects[subject];
    },
  } as unknown as RegistryClient;
  const avroLoad = registryPayloadSchema(client, " avro-value ", "avro");
  await assert.rejects(
    avroLoad(),
    (e: unknown) => e instanceof BridgeErrorClass && e.retriable && failureScope(e) === "destination",
  );
  down = false;
  assert.equal((await avroLoad()).producerSchema.name, "A");
  const protoLoad = registryPayloadSchema(client, "proto-value", "json");
  const proto = await protoLoad();
  assert.equal(proto.producerSchema.type, "JSON");
  assert.equal(proto.producerSchema.name, "iot.Reading");
  const before = asked;
  await protoLoad();
  assert.equal(asked, before, "read once");
  for (const load of [
    registryPayloadSchema(client, "json-value", "avro"),
    registryPayloadSchema(client, "proto-value", "avro", "Missing"),
  ]) {
    await assert.rejects(
      load(),
      (e: unknown) => e instanceof ConfigurationError && /JSON|no message Missing/.test(e.message),
    );
    const n = asked;
    await assert.rejects(load(), ConfigurationError);
    assert.equal(asked, n, "a configuration error is kept, not asked again");
  }
  assert.throws(() => registryPayloadSchema(client, " ", "avro"), /needs a subject/);
});

test("review 32 F1: a registry that redirects (http -> https, a login gateway), a proxy asking for credentials or any 4xx but 'not found' makes the partition wait; no good record is dead-lettered", async () => {
  for (const status of [301, 302, 307, 308, 400, 405, 406, 407]) {
    const { url, close } = await httpServer((_req, res) => {
      res.writeHead(status, { location: "https://elsewhere.invalid/", "content-type": "text/html" });
      res.end("<html>moved</html>");
    });
    const d = new SchemaDecoder(registryClient({ url }));
    try {
      const value = framed(7, Buffer.from([2]));
      await d.prefetch([value]);
      const e = failureOf(d, value);
      assert.match(e, /^(unavailable|refused):/, `${status}: ${e}`);
      if (status < 400) assert.match(e, /redirects/);
    } finally {
      d.close();
      close();
    }
  }
});

test("review 32 F5-F7: Protobuf without a package maps to a valid Avro schema (top-level names keep the empty namespace); a proto2 bytes default is kept; JSON keeps a map key __proto__", async () => {
  const none = () => Promise.reject(new Error("no references"));
  const flat = await protobufAsAvro(
    {
      schema: `syntax = "proto3";
message Outer { message Inner { Leaf leaf = 1; Kind k = 2; } Inner inner = 1; Leaf other = 2; Kind k2 = 3; }
message Leaf { int32 x = 1; }
enum Kind { A = 0; B = 1; }`,
      schemaType: "PROTOBUF",
      references: [],
    },
    none,
  );
  const flatSchema = payloadSchema("avro", flat);
  const back = avroType(flat).fromBuffer(
    flatSchema.encode({ inner: { leaf: { x: 1 }, k: "B" }, other: { x: 2 }, k2: "A" }),
  ) as { other: { x: number } };
  assert.equal(back.other.x, 2);
  const p2 = await protobufAsAvro(
    {
      schema: `syntax = "proto2"; package p; message M { optional string s = 1; optional bytes b = 2 [default = "ab"]; }`,
      schemaType: "PROTOBUF",
      references: [],
    },
    none,
  );
  const m = avroType(p2).fromBuffer(payloadSchema("avro", p2).encode({ s: "x" })) as { b: Buffer };
  assert.deepEqual(m.b, Buffer.from("ab"));
  const tags: Record<string, string> = {};
  setOwn(tags, "__proto__", "x");
  const mapDef = JSON.stringify({
    type: "record",
    name: "R",
    fields: [{ name: "tags", type: { type: "map", values: "string" } }],
  });
  assert.equal(payloadSchema("json", mapDef).encode({ tags }).toString("utf8"), '{"tags":{"__proto__":"x"}}');
});

test("review 32 F4: an Avro subject with references gives pulsar-out one self-contained schema: each referenced type written out where first named (its namespace spelled out), named again after", async () => {
  const subjects: Record<string, RegisteredSchema> = {
    country: {
      schema: JSON.stringify({ type: "enum", name: "Country", namespace: "geo", symbols: ["NO", "SE"] }),
      schemaType: "AVRO",
      references: [],
    },
    address: {
      schema: JSON.stringify({
        type: "record",
        name: "Address",
        namespace: "acme",
        fields: [
          { name: "city", type: "string" },
          { name: "country", type: "geo.Country" },
          { name: "kind", type: { type: "enum", name: "Kind", symbols: ["HOME", "WORK"] } },
        ],
      }),
      schemaType: "AVRO",
      references: [{ name: "geo.Country", subject: "country", version: 1 }],
    },
    "orders-value": {
      schema: JSON.stringify({
        type: "record",
        name: "Order",
        namespace: "shop",
        fields: [
          { name: "id", type: "string" },
          { name: "ship", type: "acme.Address" },
          { name: "bill", type: ["null", "acme.Address"], default: null },
          { name: "kinds", type: { type: "array", items: "acme.Kind" } },
        ],
      }),
      schemaType: "AVRO",
      references: [{ name: "acme.Address", subject: "address", version: 1 }],
    },
  };
  const client = {
    schemaOf: (subject: string) => Promise.resolve(subjects[subject]),
  } as unknown as RegistryClient;
  const p = await registryPayloadSchema(client, "orders-value", "avro")();
  const def = JSON.parse(p.producerSchema.definition) as { fields: { name: string; type: unknown }[] };
  const ship = def.fields[1]?.type as { name: string; namespace: string; fields: { type: unknown }[] };
  assert.equal(`${ship.namespace}.${ship.name}`, "acme.Address");
  assert.deepEqual(ship.fields[1]?.type, {
    type: "enum",
    name: "Country",
    namespace: "geo",
    symbols: ["NO", "SE"],
  });
  assert.deepEqual(def.fields[2]?.type, ["null", "acme.Address"], "named, not written twice");
  const value = {
    id: "o1",
    ship: { city: "Oslo", country: "NO", kind: "HOME" },
    bill: null,
    kinds: ["WORK"],
  };
  const back: unknown = avroType(p.producerSchema.definition).fromBuffer(p.encode(value));
  assert.deepEqual(JSON.parse(JSON.stringify(back)), value);
});

test("review 32 F2: Protobuf schemas importing the files Confluent takes as known (google/type/*, confluent/meta.proto and its decimal) decode, with no reference for them", async () => {
  const none = () => Promise.reject(new Error("no reference should be asked for"));
  // each known file is usable alone
  for (const file of Object.keys(KNOWN_PROTOS))
    await protobufSchema(
      {
        schema: `syntax = "proto3";\npackage t;\nimport "${file}";\nmessage M { string a = 1; }`,
        schemaType: "PROTOBUF",
        references: [],
      },
      none,
    );
  const proto = `syntax = "proto3";
package shop;
import "confluent/meta.proto";
import "confluent/type/decimal.proto";
import "google/type/date.proto";
import "google/type/money.proto";
message Order {
  option (confluent.message_meta).doc = "an order";
  string id = 1 [(confluent.field_meta).doc = "the id"];
  google.type.Date day = 2;
  google.type.Money total = 3;
  confluent.type.Decimal amount = 4;
}`;
  const { client } = fakeClient({ 3: { schema: proto, schemaType: "PROTOBUF", references: [] } });
  const root = new protobuf.Root();
  for (const f of ["google/type/date.proto", "google/type/money.proto", "confluent/type/decimal.proto"])
    protobuf.parse(KNOWN_PROTOS[f], root, { keepCase: true });
  protobuf.parse(
    'syntax = "proto3"; package shop; message Order { string id = 1; google.type.Date day = 2; google.type.Money total = 3; confluent.type.Decimal amount = 4; }',
    root,
    { keepCase: true },
  );
  const Order = root.lookupType("shop.Order");
  const body = Buffer.from(
    Order.encode(
      Order.fromObject({
        id: "o1",
        day: { year: 2026, month: 12, day: 7 },
        total: { currency_code: "EUR", units: "12", nanos: 500000000 },
        amount: { value: Buffer.from([0x04, 0xd2]), precision: 6, scale: 2 },
      }),
    ).finish(),
  );
  const order = (await decodeOnce(new SchemaDecoder(client), framed(3, body, Buffer.from([0])))).value;
  assert.deepEqual(JSON.parse(JSON.stringify(order)), {
    id: "o1",
    day: { year: 2026, month: 12, day: 7 },
    total: { currency_code: "EUR", units: 12, nanos: 500000000 },
    amount: { value: { type: "Buffer", data: [4, 210] }, precision: 6, scale: 2 },
  });
});

test("review 32 F3: pulsar-out's registry schema follows the subject: a msg decoded with a newer version has the latest read again (once for all msgs waiting); an older or equal one does not; a registry still behind makes the msg wait", async () => {
  const v1 = '{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}';
  const v2 =
    '{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"note","type":["null","string"],"default":null}]}';
  let latest: RegisteredSchema = { schema: v1, schemaType: "AVRO", references: [], version: 1, id: 10 };
  let asked = 0;
  const client = {
    schemaOf: async () => {
      await Promise.resolve();
      asked++;
      return latest;
    },
  } as unknown as RegistryClient;
  const load = registryPayloadSchema(client, "r-value", "avro");
  const first = await load();
  assert.equal(first.version, 1);
  assert.equal(await load(1), first, "the version loaded: not asked again");
  assert.equal(asked, 1);
  latest = { schema: v2, schemaType: "AVRO", references: [], version: 2, id: 11 };
  const [x, y] = await Promise.all([load(2), load(2)]);
  assert.equal(x, y);
  assert.equal(x.version, 2);
  assert.equal(asked, 2, "one read for the msgs waiting together");
  assert.equal(await load(), x, "the newer schema stays");
  assert.equal(await load(1), x);
  const back = avroType(x.producerSchema.definition).fromBuffer(x.encode({ a: 1, note: "n" })) as {
    note: string;
  };
  assert.equal(back.note, "n");
  await assert.rejects(
    load(5),
    (e: unknown) => e instanceof BridgeErrorClass && e.retriable && failureScope(e) === "destination",
  );
  assert.equal(await load(), x, "what was loaded goes on");
});
