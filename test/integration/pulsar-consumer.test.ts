// Our consumer against the real broker: subscription types, initial positions, partitioned topics, flow
// control, batch acks and ordering. Where one producer writes plain messages, it is Pulsar's own CLI
// (pulsar-client produce), so that only the consumer is ours; our producer writes what the CLI cannot
// (per-message keys, batches, compression). Each test fails if its feature is broken (checked by breaking
// the consumer on purpose: a wrong subType, position or ack, permits, decoding order).
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { createClient } from "../../src/pulsar/client";
import { ConsumerBusyError, TimeoutError } from "../../src/pulsar/errors";
import type { Consumer, PulsarClient, ReceivedMessage } from "../../src/pulsar/types";
import { pulsarAdmin, pulsarUrl, runToolOk, uniqueName } from "../support/brokers";

const TEST_TIMEOUT = 240_000;

// Two clients, so that competing consumers have their own connections, as two applications would.
let client: PulsarClient;
let other: PulsarClient;
before(() => {
  client = createClient({ serviceUrl: pulsarUrl });
  other = createClient({ serviceUrl: pulsarUrl });
});
after(async () => {
  await Promise.all([client.close(), other.close()]);
});

const topicName = (prefix: string) => `persistent://public/default/${uniqueName(prefix)}`;
const texts = (prefix: string, from: number, to: number) =>
  Array.from({ length: to - from }, (_, i) => `${prefix}${from + i}`);
const text = (m: ReceivedMessage) => m.payload.toString();

/** Sends `messages` with the official CLI, unbatched (so a partitioned topic gets them round-robin). */
async function cliProduce(topic: string, messages: string[]): Promise<void> {
  const r = await runToolOk("pulsar-client", ["produce", "-db", "-m", messages.join(","), topic], {
    timeoutMs: 180_000,
  });
  assert.match(r.stdout + r.stderr, new RegExp(`${messages.length} messages successfully produced`));
}

/**
 * Receives on every consumer at once until `total` messages arrived altogether, acknowledging each one
 * `ack` selects (all by default). Returns what each consumer got, in order.
 */
async function receiveOnAll(
  consumers: Consumer[],
  total: number,
  ack: (m: ReceivedMessage) => boolean = () => true,
  deadlineMs = 90_000,
): Promise<ReceivedMessage[][]> {
  const got: ReceivedMessage[][] = consumers.map(() => []);
  const count = () => got.reduce((n, list) => n + list.length, 0);
  const deadline = Date.now() + deadlineMs;
  await Promise.all(
    consumers.map(async (consumer, i) => {
      while (count() < total && Date.now() < deadline) {
        try {
          const m = await consumer.receive(500);
          got[i]?.push(m);
          if (ack(m)) await consumer.acknowledge(m);
        } catch (err) {
          if (!(err instanceof TimeoutError)) throw err;
        }
      }
    }),
  );
  assert.equal(count(), total, `received ${count()} of ${total} messages`);
  return got;
}

/** Asserts that no consumer receives anything more within `quietMs`: no duplicate, no redelivery. */
async function assertQuiet(consumers: Consumer[], quietMs = 3000): Promise<void> {
  const extra = await Promise.all(
    consumers.map((c) =>
      c.receive(quietMs).then(
        (m) => text(m),
        (err: unknown) => {
          if (err instanceof TimeoutError) return undefined;
          throw err;
        },
      ),
    ),
  );
  assert.deepEqual(
    extra,
    consumers.map(() => undefined),
    "no further message arrives",
  );
}

test(
  "exclusive: a second consumer is refused at once with ConsumerBusyError while the first keeps receiving",
  { timeout: TEST_TIMEOUT },
  async () => {
    const topic = topicName("exclusive");
    const first = await client.subscribe({ topic, subscription: "only", subscriptionType: "exclusive" });
    try {
      for (const subscriptionType of ["exclusive", undefined] as const) {
        const started = Date.now();
        await assert.rejects(
          other.subscribe({ topic, subscription: "only", subscriptionType }),
          (e: unknown) => {
            assert.ok(e instanceof ConsumerBusyError, String(e));
            assert.equal(e.code, "ConsumerBusy");
            assert.equal(e.retriable, false);
            // the code is said once, by the class name
            assert.equal(String(e).match(/ConsumerBusy/g)?.length, 1, String(e));
            return true;
          },
          `a second ${subscriptionType ?? "default (exclusive)"} consumer is refused`,
        );
        // refused, not retried until the 30 s operation timeout
        assert.ok(Date.now() - started < 10_000, `refused after ${Date.now() - started} ms`);
      }
      await cliProduce(topic, ["e0", "e1"]);
      const [got] = await receiveOnAll([first], 2);
      assert.deepEqual(got?.map(text), ["e0", "e1"], "the holder of the subscription is undisturbed");
    } finally {
      await first.close();
    }
    // once released, the subscription can be taken over
    const second = await other.subscribe({ topic, subscription: "only", subscriptionType: "exclusive" });
    await second.close();
  },
);

test(
  "shared: two consumers split the messages; with acks, every message arrives exactly once",
  { timeout: TEST_TIMEOUT },
  async () => {
    const topic = topicName("shared");
    const o = { topic, subscription: "workers", subscriptionType: "shared" } as const;
    const a = await client.subscribe({ ...o, consumerName: "a" });
    const b = await other.subscribe({ ...o, consumerName: "b" });
    try {
      const sent = texts("s", 0, 200);
      await cliProduce(topic, sent);
      const [gotA = [], gotB = []] = await receiveOnAll([a, b], sent.length);
      await assertQuiet([a, b]);
      assert.ok(gotA.length > 0 && gotB.length > 0, `split ${gotA.length}/${gotB.length}`);
      const all = [...gotA, ...gotB].map(text);
      assert.equal(new Set(all).size, all.length, "no message twice");
      assert.deepEqual(all.sort(), [...sent].sort(), "every message");
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  },
);

test(
  "failover: only the active consumer receives; when it closes the standby gets the unacked and the rest",
  { timeout: TEST_TIMEOUT },
  async () => {
    const topic = topicName("failover");
    const o = { topic, subscription: "pair", subscriptionType: "failover" } as const;
    const a = await client.subscribe({ ...o, consumerName: "a" });
    const b = await other.subscribe({ ...o, consumerName: "b" });
    let closedActive = false;
    let active = a;
    let standby = b;
    try {
      await cliProduce(topic, texts("f", 0, 10));
      // nothing acked yet: the active consumer holds all ten
      const [gotA = [], gotB = []] = await receiveOnAll([a, b], 10, () => false);
      await assertQuiet([a, b]);
      assert.ok(
        (gotA.length === 10 && gotB.length === 0) || (gotA.length === 0 && gotB.length === 10),
        `only one consumer receives (a ${gotA.length}, b ${gotB.length})`,
      );
      const held = gotA.length > 0 ? gotA : gotB;
      if (gotB.length > 0) [active, standby] = [b, a];
      assert.deepEqual(held.map(text), texts("f", 0, 10), "in order");
      for (const m of held.slice(0, 5)) await active.acknowledge(m);
      await active.close();
      closedActive = true;
      await cliProduce(topic, texts("f", 10, 20));
      const [taken = []] = await receiveOnAll([standby], 15);
      await assertQuiet([standby]);
      assert.deepEqual(
        taken.map(text),
        texts("f", 5, 20),
        "the standby gets the five unacked (redelivered) and then the new ones, in order; the acked never",
      );
    } finally {
      await Promise.all([closedActive ? undefined : active.close(), standby.close()]);
    }
  },
);

test(
  "key_shared: all messages of a key go to one consumer, in order, and both consumers get keys",
  { timeout: TEST_TIMEOUT },
  async () => {
    const topic = topicName("key-shared");
    const o = { topic, subscription: "by-key", subscriptionType: "key-shared" } as const;
    const a = await client.subscribe({ ...o, consumerName: "a" });
    const b = await other.subscribe({ ...o, consumerName: "b" });
    try {
      // Unbatched: the broker dispatches a batch by its first key, so mixed-key batches would blur the test.
      const producer = await client.createProducer({ topic, batchingEnabled: false });
      const keys = Array.from({ length: 24 }, (_, i) => `device-${i}`);
      const sends: Promise<unknown>[] = [];
      for (let round = 0; round < 5; round++)
        for (const key of keys) sends.push(producer.send({ payload: Buffer.from(`${key}|${round}`), key }));
      await Promise.all(sends);
      await producer.close();
      const got = await receiveOnAll([a, b], keys.length * 5);
      await assertQuiet([a, b]);
      const owner = new Map<string, number>();
      got.forEach((list, consumer) => {
        const rounds = new Map<string, number[]>();
        for (const m of list) {
          const [key = "", round = ""] = text(m).split("|");
          assert.equal(m.key, key, "the key arrives with the message");
          const seen = owner.get(key);
          assert.ok(seen === undefined || seen === consumer, `${key} went to both consumers`);
          owner.set(key, consumer);
          rounds.set(key, [...(rounds.get(key) ?? []), Number(round)]);
        }
        for (const [key, list] of rounds) assert.deepEqual(list, [0, 1, 2, 3, 4], `${key} in order`);
      });
      assert.equal(owner.size, keys.length, "every key arrived");
      assert.equal(new Set(owner.values()).size, 2, "both consumers own keys");
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  },
);

test(
  "initial position: a new subscription starts at the earliest or the latest message (latest by default)",
  { timeout: TEST_TIMEOUT },
  async () => {
    const topic = topicName("position");
    await cliProduce(topic, ["old0", "old1", "old2"]);
    const earliest = await client.subscribe({ topic, subscription: "e", initialPosition: "earliest" });
    const latest = await client.subscribe({ topic, subscription: "l", initialPosition: "latest" });
    const byDefault = await client.subscribe({ topic, subscription: "d" });
    try {
      await cliProduce(topic, ["new0", "new1"]);
      const [fromEarliest = []] = await receiveOnAll([earliest], 5);
      assert.deepEqual(fromEarliest.map(text), ["old0", "old1", "old2", "new0", "new1"]);
      const [fromLatest = []] = await receiveOnAll([latest], 2);
      assert.deepEqual(fromLatest.map(text), ["new0", "new1"]);
      const [fromDefault = []] = await receiveOnAll([byDefault], 2);
      assert.deepEqual(fromDefault.map(text), ["new0", "new1"]);
      await assertQuiet([earliest, latest, byDefault]);
    } finally {
      await Promise.all([earliest.close(), latest.close(), byDefault.close()]);
    }
    // The position only applies to a new subscription: an existing one resumes after its acks.
    const again = await client.subscribe({ topic, subscription: "l", initialPosition: "earliest" });
    try {
      await assertQuiet([again]);
    } finally {
      await again.close();
    }
  },
);

test(
  "partitioned topic: every partition's messages arrive, in order per partition, and acks reach each partition",
  { timeout: TEST_TIMEOUT },
  async () => {
    const name = uniqueName("partitioned-consumer");
    const topic = `persistent://public/default/${name}`;
    const created = await pulsarAdmin("PUT", `/admin/v2/persistent/public/default/${name}/partitions`, 3);
    assert.equal(created.status, 204);
    const consumer = await client.subscribe({ topic, subscription: "all" });
    const sent = texts("p", 0, 30);
    try {
      assert.equal(consumer.topic, topic);
      await cliProduce(topic, sent);
      const [got = []] = await receiveOnAll([consumer], sent.length);
      await assertQuiet([consumer]);
      assert.deepEqual(got.map(text).sort(), [...sent].sort(), "every message once");
      for (let p = 0; p < 3; p++) {
        const mine = got.filter((m) => m.messageId.partition === p);
        for (const m of mine) assert.equal(m.topic, `${topic}-partition-${p}`);
        const stats = await pulsarAdmin(
          "GET",
          `/admin/v2/persistent/public/default/${name}-partition-${p}/stats`,
        );
        const stored = (stats.json as { msgInCounter: number }).msgInCounter;
        assert.ok(stored > 0, `the CLI wrote to partition ${p}`);
        assert.equal(mine.length, stored, `every message of partition ${p}`);
        const order = mine.map((m) => Number(text(m).slice(1)));
        assert.deepEqual(
          order,
          [...order].sort((x, y) => x - y),
          `partition ${p} in order`,
        );
      }
    } finally {
      await consumer.close();
    }
    // every ack reached its partition: the subscription has nothing left to deliver
    const again = await client.subscribe({ topic, subscription: "all" });
    try {
      await assertQuiet([again]);
    } finally {
      await again.close();
    }
  },
);

test(
  "flow control: the broker sends no more than the receiver queue until the application takes messages",
  { timeout: TEST_TIMEOUT },
  async () => {
    const name = uniqueName("flow");
    const topic = `persistent://public/default/${name}`;
    const consumer = await client.subscribe({ topic, subscription: "slow", receiverQueueSize: 10 });
    try {
      const producer = await client.createProducer({ topic, batchingEnabled: false });
      const sent = texts("q", 0, 100);
      await Promise.all(sent.map((t) => producer.send({ payload: Buffer.from(t) })));
      await producer.close();
      await sleep(3000);
      const stats = await pulsarAdmin("GET", `/admin/v2/persistent/public/default/${name}/stats`);
      const subscription = (stats.json as { subscriptions: Record<string, { msgOutCounter: number }> })
        .subscriptions.slow;
      assert.equal(subscription?.msgOutCounter, 10, "only the queue's worth was dispatched");
      const [got = []] = await receiveOnAll([consumer], sent.length);
      assert.deepEqual(got.map(text), sent, "taking messages frees permits for the rest");
    } finally {
      await consumer.close();
    }
  },
);

test(
  "batches: acknowledging some messages of a batch leaves the batch unacknowledged",
  { timeout: TEST_TIMEOUT },
  async () => {
    const topic = topicName("batch-ack");
    const first = await client.subscribe({ topic, subscription: "part" });
    const producer = await client.createProducer({
      topic,
      batchingEnabled: true,
      batchingMaxPublishDelayMs: 200,
    });
    await Promise.all(["b0", "b1", "b2"].map((t) => producer.send({ payload: Buffer.from(t) })));
    await producer.close();
    try {
      const [got = []] = await receiveOnAll([first], 3, (m) => text(m) !== "b2");
      assert.deepEqual(
        got.map((m) => [text(m), m.messageId.batchIndex]),
        [
          ["b0", 0],
          ["b1", 1],
          ["b2", 2],
        ],
        "one batch of three",
      );
    } finally {
      await first.close();
    }
    // b2 was not acknowledged: the whole entry comes back
    const again = await client.subscribe({ topic, subscription: "part" });
    try {
      const [redelivered = []] = await receiveOnAll([again], 3);
      assert.deepEqual(redelivered.map(text), ["b0", "b1", "b2"]);
      await assertQuiet([again]);
    } finally {
      await again.close();
    }
    // now all three were acknowledged: the entry is done
    const last = await client.subscribe({ topic, subscription: "part" });
    try {
      await assertQuiet([last]);
    } finally {
      await last.close();
    }
  },
);

test(
  "entries of mixed compression are handed out in the order they were stored",
  { timeout: TEST_TIMEOUT },
  async () => {
    const topic = topicName("mixed-codecs");
    const zstd = await client.createProducer({ topic, compression: "zstd", batchingEnabled: false });
    const plain = await client.createProducer({ topic, batchingEnabled: false });
    const sent = texts("c", 0, 40);
    for (const [i, t] of sent.entries()) await (i % 2 ? plain : zstd).send({ payload: Buffer.from(t) });
    await Promise.all([zstd.close(), plain.close()]);
    // subscribing after the fact: the broker dispatches the stored entries in a burst
    const consumer = await other.subscribe({ topic, subscription: "ordered", initialPosition: "earliest" });
    try {
      const [got = []] = await receiveOnAll([consumer], sent.length);
      assert.deepEqual(got.map(text), sent);
    } finally {
      await consumer.close();
    }
  },
);
