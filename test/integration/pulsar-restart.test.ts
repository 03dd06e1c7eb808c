// Pulsar restarted while one producer sends 50k messages: every send is acknowledged, in order, exactly
// once (deduplication on). Runs against a Pulsar of its own (other ports, own data), never the shared one.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { createClient } from "../../src/pulsar/client";
import { ownBrokers, type OwnBrokers } from "../support/own-brokers";

const TOTAL = 50_000;
let pulsar: OwnBrokers;

before(async () => {
  pulsar = await ownBrokers({ PULSAR_DEDUP: "1" });
  await pulsar.brokers("start", "pulsar");
});

after(async () => {
  await pulsar.dispose();
});

test("a Pulsar restart during 50k sends: all acknowledged, in order, exactly once", async () => {
  const client = createClient({
    serviceUrl: pulsar.serviceUrl,
    maxBackoffMs: 2000,
    operationTimeoutMs: 60_000,
  });
  const topic = "persistent://public/default/restart";
  const producer = await client.createProducer({
    topic,
    producerName: "restart-test",
    sendTimeoutMs: 0,
    maxPendingMessages: 2000,
  });
  const receipts: Promise<{ sequenceId: number }>[] = [];
  const failures: unknown[] = [];
  let restarted: Promise<void> | undefined;
  for (let i = 0; i < TOTAL; i++) {
    const receipt = producer.send({ payload: Buffer.from(`m${i}`) });
    // a handler at once: a failed send is reported with its cause, not as an unhandled rejection
    receipt.catch((err: unknown) => failures.push(err));
    receipts.push(receipt);
    if (i === 15_000) {
      // restart in the background while the sends go on (they wait in the bounded queue)
      restarted = (async () => {
        await new Promise((r) => setTimeout(r, 200));
        await pulsar.restart("pulsar");
      })();
    }
    if (i % 1000 === 999) await new Promise((r) => setImmediate(r));
  }
  const results = await Promise.all(receipts).catch((err: unknown) => {
    throw new Error(
      `${failures.length} sends failed; first: ${(failures[0] as Error)?.stack ?? String(err)}`,
    );
  });
  await restarted;
  assert.equal(results.length, TOTAL);
  results.forEach((r, i) => assert.equal(r.sequenceId, i));
  await producer.close();

  const consumer = await client.subscribe({
    topic,
    subscription: "check",
    initialPosition: "earliest",
    receiverQueueSize: 5000,
  });
  const got: string[] = [];
  for (;;) {
    const m = await consumer.receive(5000).catch(() => undefined);
    if (!m) break;
    got.push(m.payload.toString());
  }
  await consumer.close();
  await client.close();
  assert.equal(got.length, TOTAL, "exactly once");
  for (let i = 0; i < TOTAL; i++)
    if (got[i] !== `m${i}`) assert.fail(`message ${i} is ${got[i]}: out of order or missing`);
});
