// The engine seam: the builtin engine needs nothing; the pulsar-client engine loads the official module
// only when selected, adapts it to our types, and says how to install it when it is absent.
import assert from "node:assert/strict";
import { test } from "node:test";
import { createEngine, type NativeModule } from "../../src/pulsar/engine";
import { ConfigError } from "../../src/pulsar/errors";
import { tokenAuth } from "../../src/pulsar/auth";

function fakeModule(log: unknown[]): NativeModule {
  class Client {
    constructor(config: Record<string, unknown>) {
      log.push(["client", config]);
    }
    createProducer(config: Record<string, unknown>) {
      log.push(["producer", config]);
      return Promise.resolve({
        send: (m: Record<string, unknown>) => {
          log.push(["send", m]);
          return Promise.resolve({ toString: () => "(12,34,-1,-1)" });
        },
        flush: () => Promise.resolve(null),
        close: () => Promise.resolve(null),
        getProducerName: () => "native-1",
        getTopic: () => String(config.topic),
      });
    }
    subscribe(config: Record<string, unknown>) {
      log.push(["subscribe", config]);
      const message = {
        getData: () => Buffer.from("hi"),
        getPartitionKey: () => "k",
        getProperties: () => ({ a: "b" }),
        getEventTimestamp: () => 5,
        getPublishTimestamp: () => 6,
        getMessageId: () => ({ toString: () => "(1,2,3,4)" }),
        getTopicName: () => String(config.topic),
        getRedeliveryCount: () => 0,
      };
      return Promise.resolve({
        receive: () => Promise.resolve(message),
        acknowledge: (m: unknown) => {
          log.push(["ack", m === message]);
          return Promise.resolve(null);
        },
        negativeAcknowledge: (m: unknown) => log.push(["nack", m === message]),
        close: () => Promise.resolve(null),
      });
    }
    close() {
      log.push(["close"]);
      return Promise.resolve(null);
    }
  }
  class AuthenticationToken {
    constructor(readonly params: unknown) {}
  }
  return { Client, AuthenticationToken };
}

test("pulsar-client engine: options, sends and receives are adapted, the hash scheme is always explicit", async () => {
  const log: unknown[] = [];
  const client = await createEngine(
    "pulsar-client",
    { serviceUrl: "pulsar://h:6650", auth: tokenAuth({ token: "abc" }), operationTimeoutMs: 9000 },
    () => fakeModule(log),
  );
  const producer = await client.createProducer({ topic: "t", compression: "lz4", producerName: "p" });
  const receipt = await producer.send({
    payload: Buffer.from("x"),
    key: Buffer.from([0xff]),
    properties: { h: "1" },
    eventTime: 7,
  });
  assert.deepEqual(receipt.messageId, { ledgerId: 12, entryId: 34, partition: -1, batchIndex: -1 });
  assert.equal(producer.lastSequenceId, -1, "the native client cannot tell the last sequence id");
  const consumer = await client.subscribe({ topic: "t", subscription: "s", initialPosition: "earliest" });
  const m = await consumer.receive();
  assert.equal(m.payload.toString(), "hi");
  assert.deepEqual(m.messageId, { ledgerId: 1, entryId: 2, partition: 3, batchIndex: 4 });
  await consumer.acknowledge(m);
  await producer.close();
  await client.close();
  const find = (kind: string) =>
    (log.find((e) => (e as unknown[])[0] === kind) as unknown[])[1] as Record<string, unknown>;
  assert.equal(find("client").operationTimeoutSeconds, 9);
  assert.ok(find("client").authentication, "token authentication passed on");
  assert.equal(find("producer").hashingScheme, "JavaStringHash");
  assert.equal(find("producer").compressionType, "LZ4");
  assert.equal(find("send").partitionKey, Buffer.from([0xff]).toString("base64"));
  assert.equal(find("subscribe").subscriptionInitialPosition, "Earliest");
  assert.ok(log.some((e) => (e as unknown[])[0] === "ack" && (e as unknown[])[1] === true));
});

test("pulsar-client engine absent: one clear error saying how to install it", async () => {
  await assert.rejects(
    createEngine("pulsar-client", { serviceUrl: "pulsar://h:6650" }, () => {
      throw new Error("Cannot find module 'pulsar-client'");
    }),
    (e: unknown) =>
      e instanceof ConfigError && /npm install pulsar-client/.test(e.message) && /builtin/.test(e.message),
  );
  await assert.rejects(
    createEngine("nope" as "builtin", { serviceUrl: "pulsar://h:6650" }),
    /unknown Pulsar engine/,
  );
});

test("builtin engine: created without loading anything", async () => {
  const client = await createEngine("builtin", { serviceUrl: "pulsar://127.0.0.1:1" }, () => {
    throw new Error("must not be loaded");
  });
  await client.close();
});
