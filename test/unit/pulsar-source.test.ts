// pulsar-in's delivery (PulsarSource) against a stand-in consumer: a message is acknowledged once the
// flow settled it, negatively acknowledged when a node fails it, dead-lettered after its last try (or at
// once when it can never be delivered as it is) and then acknowledged; failures about the destination and
// interruptions do not use up tries; at most maxInFlight messages are in the flow. The real broker is in
// test/integration/pulsar-in.test.ts.
import assert from "node:assert/strict";
import { test } from "node:test";
import { PulsarSource, type PulsarMsg } from "../../src/bridge/pulsar-source";
import { BridgeError } from "../../src/common/errors";
import type { Consumer, ReceivedMessage } from "../../src/pulsar/types";

function message(i: number, payload: string, redeliveryCount = 0): ReceivedMessage {
  return {
    payload: Buffer.from(payload),
    properties: { p: String(i) },
    nullValue: false,
    publishTime: 1000 + i,
    producerName: "perf",
    sequenceId: i,
    messageId: { ledgerId: 1, entryId: i, partition: -1, batchIndex: -1 },
    topic: "persistent://public/default/t",
    redeliveryCount,
  };
}

/** A consumer that hands out the messages pushed to it, and records acks and nacks. */
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
  return { consumer, push, acked, nacked, queue };
}

const flush = async () => {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
};

function source(o: { maxInFlight?: number; maxTries?: number; dlq?: boolean } = {}) {
  const sent: PulsarMsg[] = [];
  const dead: { id: number; reason: string; tries: number }[] = [];
  let n = 0;
  const s = new PulsarSource(
    {
      valueFormat: "auto",
      maxInFlight: o.maxInFlight ?? 100,
      nackDelayMs: 10,
      maxTries: o.maxTries ?? 3,
      settleTimeoutMs: 0,
      nextMsgId: () => `m${++n}`,
      describeNode: (id) => id,
      writeDeadLetter:
        o.dlq === false
          ? undefined
          : (m, reason, tries) => {
              dead.push({ id: m.messageId.entryId, reason, tries });
              return Promise.resolve();
            },
    },
    {
      // the flow: pulsar-in -> fn (Node-RED raises preDeliver in the turn of the send)
      send: (m) => {
        sent.push(m);
        s.delivered(m._msgid, "in", "fn");
      },
      decodeFailed: () => undefined,
      deadLettered: () => undefined,
      changed: () => undefined,
    },
  );
  /** fn finishes the msg (with an error or not). */
  const finish = (msg: PulsarMsg, error?: unknown) => s.completed(msg._msgid, "fn", error);
  return { s, sent, dead, finish };
}

test("pulsar-in: a settled msg acknowledges its message; the msg carries payload, key, properties, times and provenance", async () => {
  const { consumer, push, acked, nacked } = standIn();
  const { s, sent, finish } = source();
  s.start(consumer);
  push({
    ...message(1, "hello"),
    key: "AAE=",
    keyBytes: Buffer.from([0, 1]),
    keyBase64: true,
    eventTime: 77,
  });
  await flush();
  assert.equal(sent.length, 1);
  const m = sent[0];
  assert.equal(m.payload, "hello");
  assert.deepEqual(m.key, Buffer.from([0, 1]));
  assert.deepEqual(m.properties, { p: "1" });
  assert.equal(m.eventTime, 77);
  assert.equal(m.publishTime, 1001);
  assert.deepEqual(m.pulsar, {
    topic: "persistent://public/default/t",
    messageId: "1:1:-1:-1",
    redeliveryCount: 0,
    producerName: "perf",
    sequenceId: 1,
  });
  assert.deepEqual(acked, []);
  finish(m);
  await flush();
  assert.deepEqual(acked, [1]);
  assert.deepEqual(nacked, []);
  await s.close(10);
});

test("pulsar-in: a failed msg is negatively acknowledged; after its last try it is dead-lettered, then acknowledged; a record failure goes at once; destination failures never use up tries", async () => {
  const { consumer, push, acked, nacked } = standIn();
  const { s, sent, dead, finish } = source({ maxTries: 3 });
  s.start(consumer);
  const oops = new Error("function threw");
  for (let attempt = 0; attempt < 3; attempt++) {
    push(message(5, "bad", attempt));
    await flush();
    finish(sent.at(-1) as PulsarMsg, oops);
    await flush();
  }
  assert.deepEqual(nacked, [5, 5], "twice delivered again");
  assert.deepEqual(dead, [{ id: 5, reason: "function threw", tries: 3 }]);
  assert.deepEqual(acked, [5], "acknowledged once dead-lettered");
  // a msg that can never be delivered as it is (a record-scope error) goes at once
  push(message(6, "x"));
  await flush();
  finish(
    sent.at(-1) as PulsarMsg,
    new BridgeError("pulsar-out.errors.schema-payload", "does not fit", false),
  );
  await flush();
  assert.equal(dead.at(-1)?.id, 6);
  // the destination refuses everything: tried without end
  for (let attempt = 0; attempt < 5; attempt++) {
    push(message(7, "y", attempt));
    await flush();
    finish(
      sent.at(-1) as PulsarMsg,
      new BridgeError("pulsar-out.errors.schema-registry", "registry away", true),
    );
    await flush();
  }
  assert.equal(nacked.filter((x) => x === 7).length, 5);
  assert.ok(!dead.some((d) => d.id === 7));
  await s.close(10);
});

test("pulsar-in: without a dead-letter topic a failing message is tried without end; at most maxInFlight messages are in the flow", async () => {
  const { consumer, push, nacked } = standIn();
  const { s, sent, finish } = source({ maxInFlight: 2, dlq: false });
  s.start(consumer);
  for (let i = 1; i <= 5; i++) push(message(i, `v${i}`, 9));
  await flush();
  assert.equal(sent.length, 2, "two in the flow");
  finish(sent[0]);
  await flush();
  assert.equal(sent.length, 3, "one more once one settled");
  finish(sent[1], new Error("no"));
  await flush();
  assert.deepEqual(nacked, [2], "nacked, not dead-lettered (none configured)");
  assert.equal(sent.length, 4);
  assert.equal(s.pending, 2);
  await s.close(10);
});
