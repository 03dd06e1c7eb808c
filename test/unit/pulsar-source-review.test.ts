// PulsarSource (pulsar-in's delivery) against a stand-in consumer, as in test/unit/pulsar-source.test.ts.
import assert from "node:assert/strict";
import { test } from "node:test";
import { PulsarSource, type PulsarMsg } from "../../src/bridge/pulsar-source";
import { BridgeError } from "../../src/common/errors";
import type { Consumer, ReceivedMessage } from "../../src/pulsar/types";

function message(i: number, payload: string, redeliveryCount = 0): ReceivedMessage {
  return {
    payload: Buffer.from(payload),
    properties: { origin: "device-7" },
    nullValue: false,
    publishTime: 1000 + i,
    producerName: "p",
    sequenceId: i,
    messageId: { ledgerId: 1, entryId: i, partition: -1, batchIndex: -1 },
    topic: "persistent://public/default/t",
    redeliveryCount,
  };
}

function standIn() {
  const queue: ReceivedMessage[] = [];
  const waiting: ((m: ReceivedMessage) => void)[] = [];
  const acked: number[] = [];
  const nacked: number[] = [];
  const consumer: Consumer = {
    topic: "t",
    subscription: "s",
    receive: () => {
      const m = queue.shift();
      return m ? Promise.resolve(m) : new Promise((r) => waiting.push(r));
    },
    acknowledge: (m) => {
      acked.push(m.messageId.entryId);
      return Promise.resolve();
    },
    negativeAcknowledge: (m) => nacked.push(m.messageId.entryId),
    close: () => Promise.resolve(),
  };
  const push = (m: ReceivedMessage) => {
    const w = waiting.shift();
    if (w) w(m);
    else queue.push(m);
  };
  return { consumer, push, acked, nacked };
}

const flush = async () => {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function source(o: { maxTries: number; settleTimeoutMs?: number }) {
  const sent: PulsarMsg[] = [];
  const dead: { id: number; tries: number; properties: Record<string, string>; reason: string }[] = [];
  let n = 0;
  const s = new PulsarSource(
    {
      valueFormat: "auto",
      maxInFlight: 100,
      nackDelayMs: 10,
      maxTries: o.maxTries,
      settleTimeoutMs: o.settleTimeoutMs ?? 0,
      nextMsgId: () => `m${++n}`,
      describeNode: (id) => id,
      writeDeadLetter: (m, reason, tries) => {
        dead.push({ id: m.messageId.entryId, tries, properties: { ...m.properties }, reason });
        return Promise.resolve();
      },
    },
    {
      send: (m) => {
        sent.push(m);
        s.delivered(m._msgid, "in", "out");
      },
      decodeFailed: () => undefined,
      deadLettered: () => undefined,
      changed: () => undefined,
    },
  );
  return { s, sent, dead, finish: (m: PulsarMsg, e?: unknown) => s.completed(m._msgid, "out", e) };
}

test("review 33 F5 Shared: the broker's redeliveryCount counts the nacks of destination failures, so after an outage the first ordinary failure dead-letters", async () => {
  const { consumer, push, nacked } = standIn();
  const { s, sent, dead, finish } = source({ maxTries: 3 });
  s.start(consumer);
  // kafka-out's topic not authorized for a while (destination: never counted) -> nacked, redelivered
  // (Shared and Key_Shared: the broker increments redeliveryCount on each REDELIVER_UNACKNOWLEDGED_MESSAGES)
  const denied = Object.assign(new Error("Not authorized to access topics"), {
    name: "KafkaJSProtocolError",
    type: "TOPIC_AUTHORIZATION_FAILED",
    retriable: false,
  });
  for (let r = 0; r < 10; r++) {
    push(message(1, "x", r));
    await flush();
    finish(sent.at(-1) as PulsarMsg, denied);
    await flush();
  }
  assert.equal(nacked.length, 10);
  assert.deepEqual(dead, []);
  // the ACL is fixed; the next try fails once for an ordinary reason (a function's throw, a timeout)
  push(message(1, "x", 10));
  await flush();
  finish(sent.at(-1) as PulsarMsg, new Error("transient"));
  await flush();
  await s.close(10);
  assert.deepEqual(
    dead,
    [],
    `first counted failure of 3 allowed; dead-lettered with tries=${String((dead[0] as { tries?: number } | undefined)?.tries)}`,
  );
});

test("review 33 F6 the dead-letter copy carries what the flow did to msg.properties (msg.properties is the received message's own object)", async () => {
  const { consumer, push } = standIn();
  const { s, sent, dead, finish } = source({ maxTries: 1 });
  s.start(consumer);
  push(message(2, "x"));
  await flush();
  const msg = sent[0];
  // a change node between pulsar-in and kafka-out: set msg.properties.target, delete origin
  msg.properties.target = "edge-3";
  delete msg.properties.origin;
  finish(msg, new BridgeError("kafka-out.errors.record", "msg.key must be a string", false));
  await flush();
  await s.close(10);
  assert.equal(dead.length, 1);
  const own: Record<string, string> = { ...(dead[0] as { properties: Record<string, string> }).properties };
  for (const k of Object.keys(own))
    if (k.startsWith("dlq.") || k === "REAL_TOPIC" || k === "ORIGIN_MESSAGE_ID") delete own[k];
  assert.deepEqual(own, { origin: "device-7" }, "the message's own properties, as Pulsar had them");
});

test("review 33 F8 an acknowledgement that rejects (the pulsar-client engine's acknowledge is native.acknowledge's promise) is an unhandled rejection: Node-RED exits", async () => {
  const { consumer, push } = standIn();
  consumer.acknowledge = () => Promise.reject(new Error("Failed to acknowledge: AlreadyClosed"));
  const unhandled: unknown[] = [];
  const listener = (e: unknown) => unhandled.push(e);
  process.on("unhandledRejection", listener);
  const { s, sent, finish } = source({ maxTries: 3 });
  s.start(consumer);
  push(message(4, "x"));
  await flush();
  finish(sent[0]);
  await flush();
  await sleep(20);
  process.off("unhandledRejection", listener);
  await s.close(10);
  assert.deepEqual(unhandled.map(String), [], "no unhandled rejection");
});
