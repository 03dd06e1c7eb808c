// The client-wide memory limit (as the Java client's memoryLimitBytes): the bytes of messages sent and not
// yet acknowledged, over all of a client's producers. A send that does not fit waits until a receipt of
// any producer frees room (or is refused without blockIfQueueFull); one message larger than the limit
// still goes alone.
import assert from "node:assert/strict";
import { test } from "node:test";
import { createProducer } from "../../src/pulsar/producer";
import { MemoryLimit } from "../../src/pulsar/memory-limit";
import { ProducerQueueFullError } from "../../src/pulsar/errors";
import { partitionedClient, StandIn } from "../support/pulsar-standin";

const tick = () => new Promise((r) => setTimeout(r, 0));

/** A producer over two partitions (two partition producers on one client) with the client's memory limit. */
async function twoPartitions(memoryLimitBytes: number) {
  const b = new StandIn();
  b.partitions = 2;
  b.memoryLimitBytes = memoryLimitBytes;
  const { client, answerAll } = partitionedClient(b);
  const producer = await createProducer(client, {
    topic: "t",
    producerName: "p",
    routingMode: "key-or-sequence",
    batchingEnabled: false,
  });
  return { b, client, answerAll, producer };
}

test("memory limit: a send waits while the client's unacknowledged bytes (another producer's) fill it, and goes once a receipt frees room", async () => {
  const { b, client, answerAll, producer } = await twoPartitions(1000);
  const payload = Buffer.alloc(600);
  const first = producer.send({ payload, sequenceId: 0 }); // partition 0
  const second = producer.send({ payload, sequenceId: 1 }); // partition 1: 1200 > 1000
  await tick();
  assert.equal(b.written.length, 1, "the second waits: its bytes do not fit");
  assert.equal(client.memory.usedBytes, 600);
  answerAll(); // partition 0's receipt
  assert.equal((await first).sequenceId, 0);
  await tick();
  assert.equal(b.written.length, 1, "now written");
  answerAll();
  assert.equal((await second).sequenceId, 1);
  assert.equal(client.memory.usedBytes, 0, "every byte given back");
  await producer.close();
});

test("memory limit: refused at once without blockIfQueueFull; a message larger than the limit goes alone; a failed send gives its bytes back", async () => {
  const b = new StandIn();
  b.memoryLimitBytes = 1000;
  const client = b.client();
  const producer = await createProducer(client, {
    topic: "t",
    producerName: "p",
    batchingEnabled: false,
    blockIfQueueFull: false,
  });
  const big = producer.send({ payload: Buffer.alloc(1500), sequenceId: 0 });
  await tick();
  assert.equal(b.written.length, 1, "larger than the limit, but nothing else is held: it goes");
  await assert.rejects(producer.send({ payload: Buffer.alloc(10), sequenceId: 1 }), (err: Error) => {
    assert.ok(err instanceof ProducerQueueFullError);
    assert.match(err.message, /memory limit \(1000 bytes/);
    return true;
  });
  b.receipt(0);
  await big;
  assert.equal(client.memory.usedBytes, 0);
  // a send that fails (the producer closed before any receipt) gives its bytes back too
  const keepAlive = setTimeout(() => undefined, 10_000); // the close waits for receipts on unref'd timers
  const pending = producer.send({ payload: Buffer.alloc(10), sequenceId: 1 });
  await tick();
  assert.equal(client.memory.usedBytes, 10);
  await producer.close();
  clearTimeout(keepAlive);
  await assert.rejects(pending, /closed/);
  assert.equal(client.memory.usedBytes, 0);
});

test("memory limit 0: no limit", () => {
  const m = new MemoryLimit(0);
  assert.equal(m.tryTake(1e12), true);
  assert.equal(m.usedBytes, 0);
});

test("memory limit: first come, first served across producers: a small later send does not overtake one waiting for room", async () => {
  const { b, answerAll, producer } = await twoPartitions(1000);
  const sizes: number[] = [];
  const send = (bytes: number, sequenceId: number) => {
    const r = producer.send({ payload: Buffer.alloc(bytes), sequenceId });
    void r.then(() => sizes.push(bytes));
    return r;
  };
  const a = send(600, 0); // partition 0
  const big = send(600, 1); // partition 1: waits for room
  const small = send(300, 2); // partition 0: would fit (900), but queues behind the waiting one
  await tick();
  assert.equal(b.written.length, 1, "only the first is written");
  answerAll();
  await a;
  await tick();
  assert.equal(b.written.length, 2, "the waiting one goes first (600), then the small one (900 in all)");
  answerAll();
  await Promise.all([big, small]);
  assert.deepEqual(sizes, [600, 600, 300]);
  await producer.close();
});
