// The msg contract: Kafka record -> msg (record-to-msg) and msg -> Pulsar message or Kafka dead-letter
// headers (msg-to-pulsar). Records are decoded by kafkajs's own record decoder where the shape matters.
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  decodeHeaders,
  parseJson,
  recordToMsg,
  type KafkaHeader,
  type KafkaRecordLike,
} from "../../src/bridge/record-to-msg";
import {
  BINARY_PROPERTY_MARKER,
  HEADER_LIST_PROPERTY,
  headerToProperty,
  kafkaHeadersFromList,
  msgToPulsar,
  payloadBytes,
} from "../../src/bridge/msg-to-pulsar";
import { BridgeError } from "../../src/common/errors";

// kafkajs internals, to decode record bytes exactly as the consumer does and to check what its encoder writes.
interface KafkajsEncoder {
  writeInt8(v: number): KafkajsEncoder;
  writeVarInt(v: number): KafkajsEncoder;
  writeVarLong(v: number): KafkajsEncoder;
  writeVarIntBytes(v: Buffer | string | null): KafkajsEncoder;
  writeVarIntArray(v: KafkajsEncoder[]): KafkajsEncoder;
  buffer: Buffer;
}
/* eslint-disable @typescript-eslint/no-require-imports */
const Encoder = require("kafkajs/src/protocol/encoder") as new () => KafkajsEncoder;
const Decoder = require("kafkajs/src/protocol/decoder") as new (b: Buffer) => unknown;
const encodeHeader = require("kafkajs/src/protocol/recordBatch/header/v0") as (h: {
  key: string;
  value: Buffer | string | null;
}) => KafkajsEncoder;
const encodeRecord = require("kafkajs/src/protocol/recordBatch/record/v0") as (r: {
  key: Buffer | null;
  value: Buffer | null;
  headers: Record<string, unknown>;
}) => KafkajsEncoder;
const decodeRecord = require("kafkajs/src/protocol/recordBatch/record/v0/decoder") as (
  d: unknown,
  context: Record<string, unknown>,
) => KafkaRecordLike;
/* eslint-enable @typescript-eslint/no-require-imports */

/** A record body (after its length) as Kafka stores it, with headers in exactly the given order. */
function recordBytes(o: {
  key: Buffer | null;
  value: Buffer | null;
  headers: [string, Buffer | null][];
}): Buffer {
  return new Encoder()
    .writeInt8(0)
    .writeVarLong(0)
    .writeVarInt(0)
    .writeVarIntBytes(o.key)
    .writeVarIntBytes(o.value)
    .writeVarIntArray(o.headers.map(([key, value]) => encodeHeader({ key, value }))).buffer;
}

const context = (
  timestampType: number,
  firstTimestamp = "1700000000000",
  maxTimestamp = "1700000000999",
) => ({
  firstOffset: "9007199254740993",
  firstTimestamp,
  maxTimestamp,
  magicByte: 2,
  timestampType,
});
const where = { topic: "t", partition: 3, groupId: "g" };
const auto = { value: "auto", key: "auto" } as const;
const both = { mapHeaders: true, provenanceProperties: true };
const headersOnly = { mapHeaders: true, provenanceProperties: false };

test("record -> msg: kafkajs's decoding of null header values and names repeated out of order (A, B, A, null)", () => {
  const bytes = recordBytes({
    key: Buffer.from("k"),
    value: Buffer.from("v"),
    headers: [
      ["A", Buffer.from("a1")],
      ["B", Buffer.from([0xc3, 0x28])],
      ["A", Buffer.from("a2")],
      ["N", null],
      ["A", null],
      ["E", Buffer.alloc(0)],
    ],
  });
  const record = decodeRecord(new Decoder(bytes), context(0));
  const msg = recordToMsg(record, where, auto);
  // kafkajs groups a repeated name where it first appeared; the record's bytes give the order back
  assert.deepEqual(record.headers, {
    A: [Buffer.from("a1"), Buffer.from("a2"), null],
    B: Buffer.from([0xc3, 0x28]),
    N: null,
    E: Buffer.alloc(0),
  });
  assert.deepEqual(msg.kafka.headerList, [
    { key: "A", value: "a1" },
    { key: "B", value: Buffer.from([0xc3, 0x28]) },
    { key: "A", value: "a2" },
    { key: "N", value: null },
    { key: "A", value: null },
    { key: "E", value: "" },
  ]);
  assert.deepEqual(msg.kafka.headers, { A: null, B: Buffer.from([0xc3, 0x28]), N: null, E: "" });
  assert.equal(msg.kafka.timestampType, "CreateTime");
  assert.equal(msg.kafka.timestamp, 1700000000000);
  assert.equal(msg.kafka.offset, "9007199254740993", "offsets beyond 2^53 stay exact strings");
});

test("record -> msg: the written order, read from the record's bytes after the value or the key; kafkajs's order where neither is there or the bytes disagree", () => {
  const headers: [string, Buffer | null][] = [
    ["b", Buffer.from("1")],
    ["7", null],
    ["b", Buffer.alloc(0)],
    ["0", Buffer.from("z")],
  ];
  const written = ["b", "7", "b", "0"];
  const grouped = ["0", "7", "b", "b"];
  const order = (key: Buffer | null, value: Buffer | null) =>
    recordToMsg(
      decodeRecord(new Decoder(recordBytes({ key, value, headers })), context(0)),
      where,
      auto,
    ).kafka.headerList.map((h) => h.key);
  assert.deepEqual(order(Buffer.from("k"), Buffer.from("v")), written, "after the value");
  assert.deepEqual(order(Buffer.from("k"), Buffer.alloc(0)), written, "after an empty value");
  assert.deepEqual(order(Buffer.from("k"), null), written, "after the key of a tombstone");
  assert.deepEqual(order(Buffer.alloc(0), null), written, "after an empty key");
  assert.deepEqual(order(null, null), grouped, "no key, no value: kafkajs's order");
  // bytes after the value that are not the headers kafkajs decoded (a value copied out of its record)
  const record = decodeRecord(
    new Decoder(recordBytes({ key: null, value: Buffer.from("v"), headers })),
    context(0),
  );
  const copied = { ...record, value: Buffer.concat([record.value as Buffer, Buffer.from([2, 2, 0x62, 0])]) };
  assert.deepEqual(
    recordToMsg(copied, where, auto).kafka.headerList.map((h) => h.key),
    grouped,
    "what does not match what kafkajs decoded is not taken",
  );
  // the order is only looked for where kafkajs may have changed it: distinct names that are no indices
  const plain = decodeRecord(
    new Decoder(
      recordBytes({
        key: null,
        value: Buffer.from("v"),
        headers: [
          ["z", Buffer.from("1")],
          ["a", null],
        ],
      }),
    ),
    context(0),
  );
  assert.deepEqual(
    recordToMsg(plain, where, auto).kafka.headerList.map((h) => h.key),
    ["z", "a"],
  );
});

test("record -> msg: names that are array indices come first (a JavaScript object's order), __proto__ is a name like any", () => {
  const record = decodeRecord(
    new Decoder(
      recordBytes({
        key: null,
        value: null,
        headers: [
          ["b", Buffer.from("1")],
          ["7", Buffer.from("2")],
          ["__proto__", Buffer.from("3")],
          ["constructor", Buffer.from("4")],
        ],
      }),
    ),
    context(0),
  );
  const msg = recordToMsg(record, where, auto);
  assert.deepEqual(
    msg.kafka.headerList.map((h) => h.key),
    ["7", "b", "__proto__", "constructor"],
  );
  assert.equal(Object.getPrototypeOf(msg.kafka.headers), Object.prototype);
  assert.deepEqual(Object.keys(msg.kafka.headers), ["7", "b", "__proto__", "constructor"]);
  assert.equal(Object.getOwnPropertyDescriptor(msg.kafka.headers, "__proto__")?.value, "3");
  const out = msgToPulsar(msg, headersOnly);
  assert.equal(Object.getOwnPropertyDescriptor(out.properties, "__proto__")?.value, "3");
  assert.equal(out.properties?.constructor, "4");
});

test("record -> msg: keys and values empty, null and binary; timestamps -1, 0 and LogAppendTime", () => {
  const cases: [Buffer | null, Buffer | null][] = [
    [null, null],
    [Buffer.alloc(0), Buffer.alloc(0)],
    [Buffer.from([0xff, 0x00]), Buffer.from([0x00, 0xc3, 0x28])],
  ];
  for (const [key, value] of cases) {
    const r = decodeRecord(new Decoder(recordBytes({ key, value, headers: [] })), context(0));
    const msg = recordToMsg(r, where, auto);
    assert.deepEqual(msg.key, key === null ? null : key.length === 0 ? "" : key);
    assert.deepEqual(msg.payload, value === null ? null : value.length === 0 ? "" : value);
    const buffers = recordToMsg(r, where, { value: "buffer", key: "buffer" });
    assert.deepEqual(buffers.key, key);
    assert.deepEqual(buffers.payload, value);
    assert.deepEqual(msg.kafka.headerList, []);
    assert.deepEqual(msg.kafka.headers, {});
  }
  const none = decodeRecord(new Decoder(recordBytes({ key: null, value: null, headers: [] })), {
    ...context(0, "-1", "-1"),
  });
  assert.equal(recordToMsg(none, where, auto).kafka.timestamp, -1);
  const zero = decodeRecord(new Decoder(recordBytes({ key: null, value: null, headers: [] })), {
    ...context(0, "0", "0"),
  });
  assert.equal(recordToMsg(zero, where, auto).kafka.timestamp, 0);
  const appended = decodeRecord(
    new Decoder(recordBytes({ key: null, value: null, headers: [] })),
    context(1),
  );
  const msg = recordToMsg(appended, where, auto);
  assert.equal(msg.kafka.timestampType, "LogAppendTime");
  assert.equal(msg.kafka.timestamp, 1700000000999, "the broker's append time (the batch's max timestamp)");
  // Legacy message sets (magic 0/1) have no batch context: bit 3 of the attributes.
  const legacy = { key: null, value: null, timestamp: "5", offset: "0", attributes: 0x08 };
  assert.equal(recordToMsg(legacy, where, auto).kafka.timestampType, "LogAppendTime");
  assert.equal(recordToMsg({ ...legacy, attributes: 0 }, where, auto).kafka.timestampType, "CreateTime");
});

test("record -> msg: decodeHeaders takes kafkajs's grouped shape as is, and no headers at all", () => {
  assert.deepEqual(decodeHeaders(undefined), { headers: {}, headerList: [] });
  assert.deepEqual(decodeHeaders({ a: [Buffer.from("1"), null, Buffer.from("3")], b: undefined, c: [] }), {
    headers: { a: "3" },
    headerList: [
      { key: "a", value: "1" },
      { key: "a", value: null },
      { key: "a", value: "3" },
    ],
  });
});

test("json: integers beyond 2^53 become BigInt with their exact digits, everything else is JSON.parse's", () => {
  const text =
    '{"id":12345678901234567890,"neg":-98765432109876543210,"safe":9007199254740991,"edge":9007199254740993,' +
    '"s":"12345678901234567890","esc":"\\"12345678901234567890\\\\","f":1.2345678901234567890,' +
    '"e":1e400000000000000000,"x":12345678901234567890e1,"arr":[18446744073709551615, 0, -0]}';
  const v = parseJson(text) as Record<string, unknown>;
  assert.equal(v.id, 12345678901234567890n);
  assert.equal(v.neg, -98765432109876543210n);
  assert.equal(v.safe, 9007199254740991);
  assert.equal(v.edge, 9007199254740993n);
  assert.equal(v.s, "12345678901234567890", "digits in a string stay a string");
  assert.equal(v.esc, '"12345678901234567890\\');
  assert.equal(v.f, 1.2345678901234567, "fractions are doubles, as JSON.parse makes them");
  assert.equal(v.e, Infinity);
  assert.equal(v.x, 123456789012345680000, "an exponent makes a double");
  assert.deepEqual(v.arr, [18446744073709551615n, 0, -0]);
  assert.equal(parseJson("12345678901234567890"), 12345678901234567890n);
  assert.deepEqual(parseJson('{"a":1,"a":12345678901234567890}'), { a: 12345678901234567890n }, "last wins");
  // What is not JSON is refused with JSON.parse's own error, also where a rewrite would have made it JSON.
  for (const bad of [
    "{12345678901234567890:1}",
    "[012345678901234567890]",
    "[12345678901234567890",
    '["12345678901234567890]',
    "[--12345678901234567890]",
    "[+12345678901234567890]",
    "[12345678901234567890.]",
  ]) {
    let expected: Error | undefined;
    try {
      JSON.parse(bad);
    } catch (err) {
      expected = err as Error;
    }
    assert.ok(expected, bad);
    assert.throws(() => parseJson(bad), { name: "SyntaxError", message: expected.message }, bad);
  }
});

test("json: any text parses as JSON.parse does but for unsafe integers, and writes back as the same text", () => {
  // Canonical JSON pieces (as JSON.stringify writes them), so that writing back must give the text itself.
  const pieces = [
    "12345678901234567890",
    "-12345678901234567890",
    "1234567890123456",
    '"12345678901234567890"',
    '"a\\"b\\\\"',
    "1.5e+300",
    "true",
    "null",
    '"é"',
    "0",
  ];
  const unsafe = new Set([0, 1]);
  const rand = (n: number) => Math.floor(Math.random() * n);
  let hasUnsafe = false;
  const gen = (depth: number): string => {
    const k = rand(depth > 2 ? 1 : 3);
    if (k === 0) {
      const i = rand(pieces.length);
      if (unsafe.has(i)) hasUnsafe = true;
      return pieces[i];
    }
    const items = Array.from({ length: rand(4) }, () => gen(depth + 1));
    return k === 1 ? `[${items.join(",")}]` : `{${items.map((v, i) => `"k${i}":${v}`).join(",")}}`;
  };
  let withUnsafe = 0;
  for (let i = 0; i < 2000; i++) {
    hasUnsafe = false;
    const text = `[${gen(0)}]`;
    const got = parseJson(text);
    if (hasUnsafe) withUnsafe++;
    else assert.deepEqual(got, JSON.parse(text), text);
    assert.equal(payloadBytes(got).toString(), text);
  }
  assert.ok(withUnsafe > 200, "the unsafe case was tried");
});

test("payload: BigInt goes out as its digits (top level, nested, beside Buffers and Dates); other failures stay errors", () => {
  assert.deepEqual(payloadBytes(10n), Buffer.from("10"));
  const text = '{"id":12345678901234567890,"list":[-98765432109876543210,1.5,"x"],"ok":true}';
  assert.equal(payloadBytes(parseJson(text)).toString(), text);
  assert.equal(
    payloadBytes({ n: 1n, b: Buffer.from([1]), d: new Date(0) }).toString(),
    '{"n":1,"b":{"type":"Buffer","data":[1]},"d":"1970-01-01T00:00:00.000Z"}',
  );
  const circular: Record<string, unknown> = { n: 1n };
  circular.self = circular;
  assert.throws(() => payloadBytes(circular), /cannot be serialised.*circular/);
  assert.throws(
    () => payloadBytes(Symbol("x")),
    (e: unknown) => e instanceof BridgeError && !e.retriable,
  );
  assert.equal(headerToProperty(12345678901234567890n), "12345678901234567890");
});

test("msg -> Pulsar: a tombstone is a message without a value, unlike an empty string or Buffer", () => {
  const tomb = msgToPulsar({ payload: null }, both);
  assert.equal(tomb.nullValue, true);
  assert.deepEqual(tomb.payload, Buffer.alloc(0));
  for (const payload of ["", Buffer.alloc(0), undefined]) {
    const empty = msgToPulsar({ payload }, both);
    assert.equal(empty.nullValue, undefined, `payload ${String(payload)}`);
    assert.deepEqual(empty.payload, Buffer.alloc(0));
  }
});

test("msg -> Pulsar: a Kafka timestamp below 0 gives no event time; a bad msg.eventTime stays an error", () => {
  for (const timestamp of [-1, "-1", -5])
    assert.equal(msgToPulsar({ kafka: { timestamp } }, both).eventTime, undefined, String(timestamp));
  assert.equal(msgToPulsar({ kafka: { timestamp: 0 } }, both).eventTime, 0);
  assert.equal(msgToPulsar({ kafka: { timestamp: 1700000000000 } }, both).eventTime, 1700000000000);
  assert.equal(msgToPulsar({ eventTime: 5, kafka: { timestamp: -1 } }, both).eventTime, 5);
  for (const eventTime of [-1, "not a date", new Date(NaN), Infinity])
    assert.throws(
      () => msgToPulsar({ eventTime, kafka: { timestamp: 1 } }, both),
      (e: unknown) => e instanceof BridgeError && !e.retriable && /msg\.eventTime/.test(e.message),
      String(eventTime),
    );
  assert.throws(() => msgToPulsar({ kafka: { timestamp: "soon" } }, both), /msg\.kafka\.timestamp/);
});

/**
 * The reader the help describes: with HEADER_LIST_PROPERTY, the exact list; else one header per property
 * that is not provenance or set by msg.properties. Values: strip the marker and decode base64.
 */
function readHeaders(properties: Record<string, string>, notHeaders: string[]): [string, Buffer | null][] {
  const decode = (v: string | null) =>
    v === null
      ? null
      : v.startsWith(BINARY_PROPERTY_MARKER)
        ? Buffer.from(v.slice(BINARY_PROPERTY_MARKER.length), "base64")
        : Buffer.from(v, "utf8");
  const list = properties[HEADER_LIST_PROPERTY];
  if (list !== undefined)
    return (JSON.parse(list) as [string, string | null][]).map(([k, v]) => [k, decode(v)]);
  return Object.entries(properties)
    .filter(([k]) => !notHeaders.includes(k))
    .map(([k, v]) => [k, decode(v)]);
}

const bytesOf = (h: KafkaHeader): [string, Buffer | null] => [
  h.key,
  h.value === null ? null : Buffer.isBuffer(h.value) ? h.value : Buffer.from(h.value, "utf8"),
];

test("msg -> Pulsar: headers as properties — one per name while that says everything, else the exact list too", () => {
  const msgOf = (headers: [string, Buffer | null][]) =>
    recordToMsg(
      decodeRecord(new Decoder(recordBytes({ key: null, value: null, headers })), context(0)),
      where,
      auto,
    );

  const plain = msgToPulsar(
    msgOf([
      ["text", Buffer.from("plain")],
      ["bin", Buffer.from([0xc3, 0x28])],
      ["tricky", Buffer.from("base64:abc")],
      ["empty", Buffer.alloc(0)],
    ]),
    headersOnly,
  );
  assert.deepEqual(plain.properties, {
    text: "plain",
    bin: `${BINARY_PROPERTY_MARKER}${Buffer.from([0xc3, 0x28]).toString("base64")}`,
    tricky: `${BINARY_PROPERTY_MARKER}${Buffer.from("base64:abc").toString("base64")}`,
    empty: "",
  });

  const repeated = msgToPulsar(
    msgOf([
      ["a", Buffer.from("1")],
      ["b", Buffer.from([0xff])],
      ["a", Buffer.from("2")],
    ]),
    headersOnly,
  );
  assert.deepEqual(repeated.properties, {
    a: "2",
    b: "base64:/w==",
    [HEADER_LIST_PROPERTY]: '[["a","1"],["a","2"],["b","base64:/w=="]]',
  });

  const nulls = msgToPulsar(
    msgOf([
      ["n", null],
      ["a", Buffer.from("x")],
      ["a", null],
    ]),
    headersOnly,
  );
  assert.deepEqual(nulls.properties, {
    [HEADER_LIST_PROPERTY]: '[["n",null],["a","x"],["a",null]]',
  });

  // Precedence: msg.properties > provenance > header; the shadowed headers are in the list.
  const shadowed = msgToPulsar(
    {
      ...msgOf([
        ["kafka.topic", Buffer.from("mine")],
        ["kafka.headers", Buffer.from("also mine")],
        ["x", Buffer.from("header")],
        ["kafka.other", Buffer.from("free")],
      ]),
      properties: { x: "user", "kafka.offset": "user offset" },
    },
    both,
  );
  assert.deepEqual(shadowed.properties, {
    "kafka.topic": "t",
    "kafka.headers":
      '[["kafka.topic","mine"],["kafka.headers","also mine"],["x","header"],["kafka.other","free"]]',
    x: "user",
    "kafka.other": "free",
    "kafka.partition": "3",
    "kafka.offset": "user offset",
  });
  // Without provenance, a header named like it is an ordinary header.
  assert.deepEqual(msgToPulsar(msgOf([["kafka.topic", Buffer.from("mine")]]), headersOnly).properties, {
    "kafka.topic": "mine",
  });
  assert.equal(
    msgToPulsar(msgOf([["a", Buffer.from("b")]]), { ...both, mapHeaders: false }).properties?.a,
    undefined,
  );
});

test("msg -> Pulsar: msgs built without headerList map msg.kafka.headers (arrays as repeats); a broken list is an error", () => {
  assert.deepEqual(
    msgToPulsar({ kafka: { headers: { a: ["1", Buffer.from([0xff])], n: null, s: "x" } } }, headersOnly)
      .properties,
    {
      a: "base64:/w==",
      s: "x",
      [HEADER_LIST_PROPERTY]: '[["a","1"],["a","base64:/w=="],["n",null],["s","x"]]',
    },
  );
  assert.deepEqual(msgToPulsar({ kafka: { headers: { a: "b" } } }, headersOnly).properties, { a: "b" });
  assert.throws(
    () => msgToPulsar({ kafka: { headerList: [{ key: "a", value: "1" }, "junk"] } }, headersOnly),
    (e: unknown) => e instanceof BridgeError && /headerList\[1\]/.test(e.message),
  );
  const out = msgToPulsar(
    { payload: "x", key: Buffer.from([0xff]), properties: { extra: "1", n: 5 }, kafka: { timestamp: 1000 } },
    headersOnly,
  );
  assert.deepEqual(out.properties, { extra: "1", n: "5" });
  assert.deepEqual(out.key, Buffer.from([0xff]));
});

test("dead-letter copy to Pulsar (buffer formats, headers, provenance, dlq.* as msg.properties) keeps every header and the value", () => {
  const rand = (n: number) => Math.floor(Math.random() * n);
  const names = ["a", "b", "kafka.topic", "kafka.headers", "dlq.error", "__proto__", "1"];
  const values = [
    null,
    Buffer.alloc(0),
    Buffer.from("text"),
    Buffer.from([0xc3, 0x28]),
    Buffer.from("base64:x"),
  ];
  for (let round = 0; round < 500; round++) {
    const headers: [string, Buffer | null][] = Array.from({ length: rand(6) }, () => [
      names[rand(names.length)],
      values[rand(values.length)] as Buffer | null,
    ]);
    const value = values[rand(values.length)] as Buffer | null;
    const record = decodeRecord(
      new Decoder(recordBytes({ key: Buffer.from([0xff]), value, headers })),
      context(0),
    );
    const msg = recordToMsg(record, where, { value: "buffer", key: "auto" });
    const dlq = { "dlq.error": "boom", "dlq.offset": record.offset };
    const out = msgToPulsar({ ...msg, properties: dlq }, both);
    assert.equal(out.nullValue, value === null ? true : undefined);
    assert.deepEqual(out.payload, value ?? Buffer.alloc(0));
    assert.deepEqual(out.key, Buffer.from([0xff]));
    assert.equal(out.properties?.["dlq.error"], "boom");
    assert.equal(out.properties?.["kafka.offset"], "9007199254740993");
    const back = readHeaders(out.properties ?? {}, [
      "kafka.topic",
      "kafka.partition",
      "kafka.offset",
      ...Object.keys(dlq),
    ]);
    // Pulsar's properties are a map: distinct names (no exact list then) keep names and values, not order
    const sorted = (l: [string, Buffer | null][]) =>
      out.properties?.[HEADER_LIST_PROPERTY] === undefined
        ? [...l].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
        : l;
    assert.deepEqual(sorted(back), sorted(msg.kafka.headerList.map(bytesOf)), JSON.stringify(headers));
    assert.deepEqual(
      msg.kafka.headerList.map(bytesOf),
      headers.map(([k, v]) => [k, v]),
      "the msg has the headers in the written order",
    );
  }
});

test("dead-letter copy to Kafka: kafkajs writes the headers (repeats kept, nulls as empty plus the exact list), dlq.* last", () => {
  const list: KafkaHeader[] = [
    { key: "a", value: "1" },
    { key: "a", value: Buffer.from([0xff]) },
    { key: "n", value: null },
    { key: "dlq.error", value: "earlier" },
  ];
  const headers = kafkaHeadersFromList(list, { "dlq.error": "now", "dlq.topic": "t" });
  assert.deepEqual(headers, {
    a: ["1", Buffer.from([0xff])],
    n: Buffer.alloc(0),
    "dlq.error": ["earlier", "now"],
    [HEADER_LIST_PROPERTY]: '[["a","1"],["a","base64:/w=="],["n",null],["dlq.error","earlier"]]',
    "dlq.topic": "t",
  });
  // What kafkajs's own encoder writes, read back by its decoder (its record body follows a varint length).
  const encoded = encodeRecord({ key: null, value: Buffer.from("v"), headers }).buffer;
  const decoder = new Decoder(encoded) as { readVarInt(): number };
  decoder.readVarInt();
  const back = decodeRecord(decoder, context(0));
  assert.deepEqual(back.headers, {
    a: [Buffer.from("1"), Buffer.from([0xff])],
    n: Buffer.alloc(0),
    "dlq.error": [Buffer.from("earlier"), Buffer.from("now")],
    [HEADER_LIST_PROPERTY]: Buffer.from(headers[HEADER_LIST_PROPERTY]),
    "dlq.topic": Buffer.from("t"),
  });
  // kafkajs itself cannot write null: the reason for the list.
  assert.throws(() => encodeRecord({ key: null, value: null, headers: { n: null } }), TypeError);
  // Nothing to add when the headers say everything.
  assert.deepEqual(kafkaHeadersFromList([{ key: "a", value: "1" }]), { a: "1" });
  assert.deepEqual(kafkaHeadersFromList([{ key: HEADER_LIST_PROPERTY, value: "x" }]), {
    [HEADER_LIST_PROPERTY]: ["x", '[["kafka.headers","x"]]'],
  });
});
