// kafka-out's logic: msg -> Kafka record (msg-to-kafka), the round trip Kafka -> Pulsar -> Kafka of keys,
// values, headers and timestamps through pulsar-out's property mapping, and the publisher's batching,
// ordering, failures and close (against a stand-in for the kafkajs producer: what Kafka stores is checked
// in test/integration/kafka-out.test.ts).
import assert from "node:assert/strict";
import { test } from "node:test";
import type { Kafka, Producer, ProducerBatch } from "kafkajs";
import { CompressionTypes } from "kafkajs";
import { msgToKafka } from "../../src/bridge/msg-to-kafka";
import { msgToPulsar } from "../../src/bridge/msg-to-pulsar";
import { recordToMsg } from "../../src/bridge/record-to-msg";
import { KAFKA_TOPICS, TopicResolver } from "../../src/bridge/topic";
import { KafkaPublisher, publisherProducer } from "../../src/kafka/publisher";
import { kafkajsStandIn } from "../support/kafkajs-standin";
import { BridgeError, failureScope } from "../../src/common/errors";

const where = { topic: "in", partition: 0, groupId: "g" };
const auto = { value: "auto", key: "auto" } as const;

test("kafka-out: a msg from kafka-in is written back as its record: key, value bytes, every header in order, null values as the exact list, the timestamp", () => {
  const record = {
    key: Buffer.from("k1"),
    value: Buffer.from([0xff, 0x00, 0x41]),
    timestamp: "1700000000123",
    offset: "7",
    headers: { a: [Buffer.from("1"), Buffer.from("2")], bin: Buffer.from([0xc3]), none: null },
  };
  const msg = recordToMsg(record, where, auto);
  const out = msgToKafka(msg, { mapHeaders: true });
  assert.deepEqual(out.key, "k1");
  assert.deepEqual(out.value, Buffer.from([0xff, 0x00, 0x41]));
  assert.equal(out.timestamp, "1700000000123");
  assert.deepEqual(out.headers.a, [Buffer.from("1"), Buffer.from("2")]);
  assert.deepEqual(out.headers.bin, Buffer.from([0xc3]));
  assert.deepEqual(out.headers.none, Buffer.alloc(0), "kafkajs cannot write a null value: empty");
  assert.ok(typeof out.headers["kafka.headers"] === "string", "with the exact list");
  // a tombstone stays one; a msg without kafka provenance and without eventTime has no timestamp
  assert.equal(msgToKafka({ payload: null }, { mapHeaders: true }).value, null);
  assert.equal(msgToKafka({ payload: "x" }, { mapHeaders: true }).timestamp, undefined);
  assert.deepEqual(msgToKafka({ payload: { a: 1n } }, { mapHeaders: true }).value, Buffer.from('{"a":1}'));
  assert.equal(msgToKafka({ payload: "x", eventTime: new Date(5) }, { mapHeaders: true }).timestamp, "5");
  assert.deepEqual(msgToKafka(msg, { mapHeaders: false }).headers, {});
});

test("kafka-out: Kafka -> Pulsar -> Kafka keeps binary headers, repeated names and values that look like the marker (through pulsar-out's properties)", () => {
  const record = {
    key: Buffer.from([0x01, 0xfe]),
    value: Buffer.from("v"),
    timestamp: "1700000000000",
    offset: "1",
    headers: {
      text: Buffer.from("plain"),
      bin: Buffer.from([0x00, 0xff]),
      tricky: Buffer.from("base64:AAAA"),
      rep: [Buffer.from("x"), Buffer.from("y")],
    },
  };
  const fromKafka = recordToMsg(record, where, { value: "buffer", key: "buffer" });
  const pulsar = msgToPulsar(fromKafka, { mapHeaders: true, provenanceProperties: false });
  // what a Pulsar input makes of that message: the properties, the key, the event time
  const fromPulsar = {
    payload: pulsar.payload,
    key: pulsar.key,
    properties: pulsar.properties,
    eventTime: pulsar.eventTime,
  };
  const back = msgToKafka(fromPulsar, { mapHeaders: true });
  assert.deepEqual(back.key, Buffer.from([0x01, 0xfe]));
  assert.deepEqual(back.value, Buffer.from("v"));
  assert.equal(back.timestamp, "1700000000000");
  assert.deepEqual(back.headers.text, Buffer.from("plain"));
  assert.deepEqual(back.headers.bin, Buffer.from([0x00, 0xff]));
  assert.deepEqual(back.headers.tricky, Buffer.from("base64:AAAA"));
  assert.deepEqual(back.headers.rep, [Buffer.from("x"), Buffer.from("y")]);
  assert.equal(back.headers["kafka.headers"], undefined, "the list is read, not written as a header");
  // plain properties of a Pulsar message: one header each
  assert.deepEqual(msgToKafka({ payload: "p", properties: { a: "1", n: 2 } }, { mapHeaders: true }).headers, {
    a: Buffer.from("1"),
    n: Buffer.from("2"),
  });
});

test("kafka-out: bad msgs are the record's failure (key, partition, properties, topic names); the topic is fixed, rendered or msg.topic", () => {
  for (const msg of [{ key: { a: 1 } }, { partition: -1 }, { partition: 1.5 }, { properties: [] }])
    assert.throws(
      () => msgToKafka({ payload: "x", ...msg }, { mapHeaders: true }),
      (e: unknown) => e instanceof BridgeError && failureScope(e) === "record",
    );
  assert.equal(msgToKafka({ payload: "x", partition: 2 }, { mapHeaders: true }).partition, 2);
  assert.equal(new TopicResolver("orders", "str", KAFKA_TOPICS).resolve({}), "orders");
  assert.equal(
    new TopicResolver("{{pulsar.topic}}-copy", "str", KAFKA_TOPICS).resolve({ pulsar: { topic: "a.b" } }),
    "a.b-copy",
  );
  assert.throws(() => new TopicResolver("a/b", "str", KAFKA_TOPICS), /not a valid Kafka topic/);
  for (const msg of [{}, { topic: "bad topic" }, { topic: "x".repeat(250) }, { topic: ".." }])
    assert.throws(
      () => new TopicResolver("", "msg", KAFKA_TOPICS).resolve(msg),
      (e: unknown) =>
        e instanceof BridgeError &&
        e.key === "kafka-out.errors.invalid-topic" &&
        failureScope(e) === "record",
    );
  // kafkajs's answer that a record is too large is that record's failure; an authorization error is not
  const tooLarge = Object.assign(new Error("too large"), {
    name: "KafkaJSProtocolError",
    type: "MESSAGE_TOO_LARGE",
    retriable: false,
  });
  assert.equal(failureScope(tooLarge), "record");
  const denied = Object.assign(new Error("denied"), {
    name: "KafkaJSProtocolError",
    type: "TOPIC_AUTHORIZATION_FAILED",
    retriable: false,
  });
  assert.equal(failureScope(denied), "destination");
});

/** A stand-in for a kafkajs producer: each sendBatch waits until the test lets it go. */
function standIn() {
  const calls: { batch: ProducerBatch; release: (err?: Error) => void }[] = [];
  const producer = {
    sendBatch: (batch: ProducerBatch) =>
      new Promise((resolve, reject) => {
        calls.push({ batch, release: (err?: Error) => (err ? reject(err) : resolve([])) });
      }),
  } as unknown as Producer;
  return { producer, calls };
}

const tick = () => new Promise((r) => setImmediate(r));

test("kafka-out's publisher: the first record goes at once; those that come while it is on its way share the next request, in order, bounded in records and bytes; a failed request fails its records only; close fails what is queued as 'closing'", async () => {
  const { producer, calls } = standIn();
  const pendings: number[] = [];
  const p = new KafkaPublisher(
    () => Promise.resolve(producer),
    { compression: CompressionTypes.None, maxBatchRecords: 3, maxBatchBytes: 1000 },
    (n) => pendings.push(n),
  );
  const settled: string[] = [];
  const send = (id: string, size = 1, topic = "t") =>
    p.send({ topic, key: id, value: Buffer.alloc(size) }).then(
      () => settled.push(`${id} ok`),
      (e: Error) => settled.push(`${id} ${e.message}`),
    );
  const all = [send("a")];
  await tick();
  assert.equal(calls.length, 1, "at once");
  for (const id of ["b", "c", "d", "e"]) all.push(send(id, 1, id === "c" ? "u" : "t"));
  all.push(send("big", 2000));
  await tick();
  assert.equal(calls.length, 1, "one request in flight");
  calls[0]?.release();
  await tick();
  await tick();
  assert.equal(calls.length, 2);
  const keys = (i: number) =>
    calls[i]?.batch.topicMessages?.flatMap((t) => t.messages.map((m) => `${t.topic}:${String(m.key)}`));
  assert.deepEqual(keys(1), ["t:b", "t:d", "u:c"], "three records, grouped per topic, each topic in order");
  calls[1]?.release(new Error("broker says no"));
  await tick();
  await tick();
  assert.deepEqual(keys(2), ["t:e"], "the large record does not share a request that would exceed the bytes");
  calls[2]?.release();
  await tick();
  await tick();
  assert.deepEqual(keys(3), ["t:big"], "alone");
  const last = send("queued");
  all.push(last);
  await tick();
  const closing = p.close(200);
  await closing;
  await Promise.all(all.slice(0, -2).concat(last));
  assert.deepEqual(settled.slice(0, 4), ["a ok", "b broker says no", "c broker says no", "d broker says no"]);
  assert.ok(settled.includes("e ok"));
  assert.ok(settled.includes("queued kafka-out is closing"), settled.join());
  calls[3]?.release();
  await all[5];
  assert.ok(settled.includes("big ok"));
  await assert.rejects(p.send({ topic: "t", value: null }), /closing/);
  assert.equal(pendings.at(-1), 0);
});

test("review 33 F1: a record for a partition the topic does not have fails as the record's (kafkajs leaves it out silently); F2: a missing topic fails once kafka-out's bounded retries end, as a destination error (upstream waits, no try used)", async () => {
  const { producer, state } = kafkajsStandIn(
    { out: 2 },
    { retries: 2, initialRetryTime: 20, maxRetryTime: 50 },
  );
  await producer.connect();
  const p = new KafkaPublisher(() => Promise.resolve(producer), { compression: CompressionTypes.None });
  await assert.rejects(
    p.send({ topic: "out", ...msgToKafka({ payload: "x", partition: 5 }, { mapHeaders: true }) }),
    (e: unknown) =>
      e instanceof BridgeError && failureScope(e) === "record" && /no partition 5/.test(e.message),
  );
  assert.deepEqual(state.produced, []);
  await p.send({ topic: "out", ...msgToKafka({ payload: "x", partition: 1 }, { mapHeaders: true }) });
  await assert.rejects(
    p.send({ topic: "missing", value: Buffer.from("y") }),
    (e: unknown) => failureScope(e) === "destination",
  );
  await p.close(100);
  await producer.disconnect();
  // kafka-out's own producer: bounded retries, idempotent, one request in flight, no topic created
  let options: Record<string, unknown> = {};
  publisherProducer({ producer: (o: Record<string, unknown>) => ((options = o), {}) } as unknown as Kafka);
  assert.deepEqual(options.retry, { retries: 8, initialRetryTime: 300, maxRetryTime: 30_000 });
  assert.equal(options.idempotent, true);
  assert.equal(options.maxInFlightRequests, 1);
  assert.equal(options.allowAutoTopicCreation, false);
});

test("review 33 F4: a request Kafka refuses for one record (too large, invalid timestamp) is sent again a record at a time: only that record fails, its neighbours are written, in order", async () => {
  const requests: string[][] = [];
  const producer = {
    sendBatch: (batch: ProducerBatch) => {
      const keys = (batch.topicMessages ?? []).flatMap((t) => t.messages.map((m) => String(m.key)));
      requests.push(keys);
      if (keys.includes("bad"))
        return Promise.reject(
          Object.assign(new Error("The request included a message larger than the max message size"), {
            name: "KafkaJSProtocolError",
            type: "MESSAGE_TOO_LARGE",
            retriable: false,
          }),
        );
      return Promise.resolve([]);
    },
  } as unknown as Producer;
  const p = new KafkaPublisher(() => Promise.resolve(producer), { compression: CompressionTypes.None });
  const outcome: string[] = [];
  const first = p.send({ topic: "t", key: "first", value: "x" });
  const rest = ["a", "bad", "b"].map((k) =>
    p.send({ topic: "t", key: k, value: "x" }).then(
      () => outcome.push(`${k} ok`),
      (e: Error) => outcome.push(`${k} ${failureScope(e)}`),
    ),
  );
  await first;
  await Promise.all(rest);
  assert.deepEqual(outcome, ["a ok", "bad record", "b ok"]);
  assert.deepEqual(requests, [["first"], ["a", "bad", "b"], ["a"], ["bad"], ["b"]]);
  await p.close();
});
