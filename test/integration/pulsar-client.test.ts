// The builtin Pulsar client against the real broker, checked by readers we did not write: Pulsar's own
// CLI (pulsar-client consume, pulsar-perf produce) and its admin REST API.
import assert from "node:assert/strict";
import net from "node:net";
import { after, before, test } from "node:test";
import { createClient } from "../../src/pulsar/client";
import type { CompressionType, PulsarClient, ReceivedMessage } from "../../src/pulsar/types";
import {
  AlreadyClosedError,
  ConnectionError,
  InvalidTopicNameError,
  MessageTooBigError,
  PulsarError,
} from "../../src/pulsar/errors";
import { pulsarAdmin, pulsarHttpUrl, pulsarUrl, runToolOk, uniqueName } from "../support/brokers";
import { dedupNamespace, storedPayloads, subscribeEarliest } from "../support/pulsar";
import { waitFor } from "../support/wait";
import { connections } from "../support/sockets";

let client: PulsarClient;
before(() => {
  client = createClient({ serviceUrl: pulsarUrl });
});
after(async () => {
  await client.close();
});

interface CliMessage {
  key: string;
  properties: string;
  content: string;
  eventTime: string;
  producer: string;
  sequenceId: string;
}

/** Messages as `pulsar-client consume -mp` prints them. */
async function cliConsume(topic: string, subscription: string, n: number): Promise<CliMessage[]> {
  const r = await runToolOk("pulsar-client", ["consume", "-s", subscription, "-n", String(n), "-mp", topic]);
  const out: CliMessage[] = [];
  for (const line of r.stdout.split("\n")) {
    const m =
      /eventTime:\[(\d+)\], key:\[(.*?)\], properties:\[(.*?)\], content:(.*), event-time:.*producer-name:([^,]*), sequence-id:(-?\d+)/.exec(
        line,
      );
    if (m)
      out.push({
        eventTime: m[1] ?? "",
        key: m[2] ?? "",
        properties: m[3] ?? "",
        content: m[4] ?? "",
        producer: m[5] ?? "",
        sequenceId: m[6] ?? "",
      });
  }
  return out;
}

async function receiveAll(topic: string, n: number): Promise<ReceivedMessage[]> {
  const consumer = await client.subscribe({
    topic,
    subscription: uniqueName("sub"),
    initialPosition: "earliest",
  });
  const out: ReceivedMessage[] = [];
  try {
    while (out.length < n) out.push(await consumer.receive(20_000));
  } finally {
    await consumer.close();
  }
  return out;
}

test("our producer, batched and not, with each codec: the official CLI reads the same content, keys, properties and event time", async () => {
  for (const compression of ["none", "lz4", "zlib", "zstd", "snappy"] as CompressionType[]) {
    const topic = `persistent://public/default/${uniqueName(`codec-${compression}`)}`;
    await subscribeEarliest(topic, "oracle");
    const batched = await client.createProducer({ topic, compression, batchingEnabled: true });
    const single = await client.createProducer({ topic, compression, batchingEnabled: false });
    const text = `reading ${"ünïcødé ".repeat(20)}`;
    await Promise.all([
      batched.send({
        payload: Buffer.from(`b1 ${text}`),
        key: "sensor-1",
        properties: { unit: "C", n: "1" },
        eventTime: 1700000000001,
      }),
      batched.send({
        payload: Buffer.from(`b2 ${text}`),
        key: "sensor-2",
        properties: { unit: "F" },
        eventTime: 1700000000002,
      }),
    ]);
    await single.send({
      payload: Buffer.from(`s1 ${text}`),
      key: Buffer.from([0xff, 0x01]),
      properties: { kind: "single" },
      eventTime: 1700000000003,
    });
    await batched.close();
    await single.close();
    const got = await cliConsume(topic, "oracle", 3);
    assert.equal(got.length, 3, `${compression}: the CLI read 3 messages`);
    const byContent = new Map(got.map((m) => [m.content.slice(0, 2), m]));
    assert.equal(byContent.get("b1")?.content, `b1 ${text}`, compression);
    assert.equal(byContent.get("b1")?.key, "sensor-1");
    assert.match(byContent.get("b1")?.properties ?? "", /unit=C/);
    assert.match(byContent.get("b1")?.properties ?? "", /n=1/);
    assert.equal(byContent.get("b1")?.eventTime, "1700000000001");
    assert.equal(byContent.get("b2")?.key, "sensor-2");
    assert.equal(byContent.get("s1")?.content, `s1 ${text}`);
    assert.equal(
      byContent.get("s1")?.key,
      Buffer.from([0xff, 0x01]).toString("base64"),
      "binary key sent base64",
    );
    assert.equal(byContent.get("s1")?.properties, "kind=single");
    assert.equal(byContent.get("s1")?.eventTime, "1700000000003");
  }
});

test("binary payloads are stored byte for byte (read back through the admin REST API)", async () => {
  const topic = uniqueName("binary");
  const full = `persistent://public/default/${topic}`;
  await subscribeEarliest(full, "peek");
  const producer = await client.createProducer({ topic: full, batchingEnabled: false });
  const payload = Buffer.from([0x00, 0xff, 0xc3, 0x28, 0x0a, 0x0d, 0x80]);
  await producer.send({ payload });
  await producer.close();
  const res = await fetch(
    `${pulsarHttpUrl}/admin/v2/persistent/public/default/${topic}/subscription/peek/position/1`,
  );
  assert.equal(res.status, 200);
  assert.deepEqual(Buffer.from(await res.arrayBuffer()), payload);
});

test("keys land in the same partition as with the official CLI producer (JavaStringHash, UTF-16)", async () => {
  const name = uniqueName("partitioned");
  const topic = `persistent://public/default/${name}`;
  const created = await pulsarAdmin("PUT", `/admin/v2/persistent/public/default/${name}/partitions`, 4);
  assert.equal(created.status, 204);
  const keys = ["key-1", "hello", "sensor/42", "Ünïcødé-ключ"];
  for (const key of keys) await runToolOk("pulsar-client", ["produce", "-k", key, "-m", `cli|${key}`, topic]);
  const producer = await client.createProducer({ topic, batchingEnabled: true });
  await Promise.all(keys.map((key) => producer.send({ payload: Buffer.from(`ours|${key}`), key })));
  await producer.close();
  const partitionOf = new Map<string, number>();
  for (let p = 0; p < 4; p++) {
    const stats = await pulsarAdmin(
      "GET",
      `/admin/v2/persistent/public/default/${name}-partition-${p}/stats`,
    );
    const count = (stats.json as { msgInCounter: number }).msgInCounter;
    if (count === 0) continue;
    for (const m of await receiveAll(`${topic}-partition-${p}`, count)) {
      const [who, key] = m.payload.toString().split("|");
      const seen = partitionOf.get(`${who}|${key}`);
      assert.equal(seen, undefined);
      partitionOf.set(`${who}|${key}`, p);
    }
  }
  for (const key of keys) {
    assert.notEqual(partitionOf.get(`cli|${key}`), undefined, `CLI message for ${key} found`);
    assert.equal(partitionOf.get(`ours|${key}`), partitionOf.get(`cli|${key}`), `same partition for ${key}`);
  }
});

test("partitions added to a topic are used by a running producer (and not when the update is off)", async () => {
  const name = uniqueName("growing");
  const topic = `persistent://public/default/${name}`;
  const path = `/admin/v2/persistent/public/default/${name}/partitions`;
  assert.equal((await pulsarAdmin("PUT", path, 2)).status, 204);
  const options = { topic, batchingEnabled: false, routingMode: "round-robin" as const };
  const updating = await client.createProducer({ ...options, partitionsUpdateIntervalMs: 300 });
  const fixed = await client.createProducer({ ...options, partitionsUpdateIntervalMs: 0 });
  assert.equal(updating.lastSequenceIds.length, 2);
  assert.equal((await pulsarAdmin("POST", path, 4)).status, 204);
  await waitFor("the producer sees 4 partitions", () => updating.lastSequenceIds.length === 4, 20_000);
  // round-robin without batching moves on every message: 40 messages reach all four partitions
  await Promise.all(Array.from({ length: 40 }, (_, i) => updating.send({ payload: Buffer.from(`u${i}`) })));
  await Promise.all(Array.from({ length: 40 }, (_, i) => fixed.send({ payload: Buffer.from(`f${i}`) })));
  assert.equal(fixed.lastSequenceIds.length, 2);
  await updating.close();
  await fixed.close();
  const stored = new Map<number, string[]>();
  for (let p = 0; p < 4; p++) stored.set(p, await storedPayloads(client, `${topic}-partition-${p}`, 2000));
  for (const p of [2, 3]) {
    const there = stored.get(p) ?? [];
    assert.ok(there.length > 0, `partition ${p} got messages`);
    assert.ok(
      there.every((m) => m.startsWith("u")),
      `only the updating producer wrote to new partition ${p}: ${there.join(",")}`,
    );
  }
  const all = [...stored.values()].flat().sort();
  assert.equal(all.length, 80, "every message stored once");
});

test("messages produced by pulsar-perf with each compression are decoded by our consumer", async () => {
  for (const z of ["NONE", "LZ4", "ZLIB", "ZSTD", "SNAPPY"]) {
    const topic = `persistent://public/default/${uniqueName(`perf-${z.toLowerCase()}`)}`;
    await subscribeEarliest(topic, "ours");
    await runToolOk("pulsar-perf", ["produce", "-m", "200", "-r", "1000", "-s", "300", "-z", z, topic], {
      timeoutMs: 120_000,
    });
    const consumer = await client.subscribe({ topic, subscription: "ours" });
    try {
      for (let i = 0; i < 200; i++) {
        const m = await consumer.receive(20_000);
        assert.equal(m.payload.length, 300, `${z}: message ${i} decoded to its full size`);
      }
    } finally {
      await consumer.close();
    }
  }
});

test("deduplication: sequence ids at or below the last are duplicates; a new producer of the same name learns the last id", async () => {
  const ns = await dedupNamespace("dedup");
  const topic = `persistent://public/${ns}/events`;
  const name = "bridge-partition-0";
  const first = await client.createProducer({ topic, producerName: name, batchingEnabled: true });
  assert.equal(first.lastSequenceId, -1);
  await Promise.all(
    Array.from({ length: 10 }, (_, i) => first.send({ payload: Buffer.from(`m${i}`), sequenceId: 100 + i })),
  );
  await first.close();
  const second = await client.createProducer({ topic, producerName: name, batchingEnabled: false });
  assert.equal(second.lastSequenceId, 109);
  const dup = await second.send({ payload: Buffer.from("again"), sequenceId: 105 });
  assert.equal(dup.duplicate, true);
  const fresh = await second.send({ payload: Buffer.from("m10"), sequenceId: 110 });
  assert.equal(fresh.duplicate, false);
  await second.close();
  // What the broker stored: every payload once, the duplicate not at all.
  const stored = await storedPayloads(client, topic);
  assert.deepEqual(
    stored,
    Array.from({ length: 11 }, (_, i) => `m${i}`),
  );
});

test("deduplication with batching: a replay that runs past the last stored id loses nothing (never batched with newer ids)", async () => {
  const ns = await dedupNamespace("replay");
  const topic = `persistent://public/${ns}/events`;
  const producer = await client.createProducer({
    topic,
    producerName: "replaying",
    batchingEnabled: true,
    batchingMaxMessages: 1000,
    batchingMaxPublishDelayMs: 50,
  });
  const send = (from: number, to: number) =>
    Promise.all(
      Array.from({ length: to - from }, (_, i) =>
        producer.send({ payload: Buffer.from(`m${from + i}`), sequenceId: from + i }),
      ),
    );
  await send(0, 100);
  // What a bridge does after Kafka redelivers from an earlier offset: 50..99 again, then new ones.
  const replay = await send(50, 150);
  await producer.close();
  assert.deepEqual(
    replay.map((r) => r.duplicate),
    Array.from({ length: 100 }, (_, i) => i < 50),
    "the replayed ids are duplicates, the new ones are not",
  );
  const stored = await storedPayloads(client, topic);
  assert.deepEqual(
    stored,
    Array.from({ length: 150 }, (_, i) => `m${i}`),
  );
});

test("a full pending queue: blocked sends go out in call order; without blocking they fail at once", async () => {
  const topic = `persistent://public/default/${uniqueName("full")}`;
  const blocking = await client.createProducer({
    topic,
    batchingEnabled: true,
    batchingMaxMessages: 7,
    batchingMaxPublishDelayMs: 5,
    maxPendingMessages: 10,
    blockIfQueueFull: true,
  });
  // 2000 sends against room for 10: all but the first 10 wait, and must be admitted oldest first
  const receipts = await Promise.all(
    Array.from({ length: 2000 }, (_, i) => blocking.send({ payload: Buffer.from(`b${i}`) })),
  );
  await blocking.close();
  assert.deepEqual(
    receipts.map((r) => r.sequenceId),
    Array.from({ length: 2000 }, (_, i) => i),
    "sequence ids follow the order of the send calls",
  );
  assert.deepEqual(
    await storedPayloads(client, topic),
    Array.from({ length: 2000 }, (_, i) => `b${i}`),
  );

  const failing = await client.createProducer({
    topic,
    batchingEnabled: true,
    batchingMaxPublishDelayMs: 1000,
    maxPendingMessages: 10,
    blockIfQueueFull: false,
  });
  const results = await Promise.allSettled(
    Array.from({ length: 15 }, (_, i) => failing.send({ payload: Buffer.from(`f${i}`) })),
  );
  assert.deepEqual(
    results.map((r) => r.status),
    [...Array<string>(10).fill("fulfilled"), ...Array<string>(5).fill("rejected")],
  );
  for (const r of results.slice(10))
    assert.match(String((r as PromiseRejectedResult).reason), /pending queue .* is full \(10 messages\)/);
  await failing.close();
});

test("one connection per broker: producers, consumers and lookups share it (standalone answers lookups through the service URL)", async () => {
  const port = Number(new URL(pulsarUrl.replace("pulsar://", "http://")).port);
  const before = connections(process.pid, [port]);
  const own = createClient({ serviceUrl: pulsarUrl });
  try {
    const producer = await own.createProducer({ topic: uniqueName("shared-a") });
    const consumer = await own.subscribe({ topic: uniqueName("shared-b"), subscription: "s" });
    await producer.send({ payload: Buffer.from("x") });
    assert.equal(connections(process.pid, [port]) - before, 1);
    await consumer.close();
    await producer.close();
  } finally {
    await own.close();
  }
});

test("bad input gives typed errors without hanging", async () => {
  const closedPort = await new Promise<number>((resolve) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
  const unreachable = createClient({
    serviceUrl: `pulsar://127.0.0.1:${closedPort}`,
    connectionTimeoutMs: 3000,
    operationTimeoutMs: 4000,
  });
  await assert.rejects(
    unreachable.createProducer({ topic: "x" }),
    (e: unknown) => e instanceof ConnectionError,
  );
  await unreachable.close();
  assert.throws(() => createClient({ serviceUrl: "http://127.0.0.1:8080" }), /not a Pulsar service URL/);

  await assert.rejects(
    client.createProducer({ topic: "a/b/c/d" }),
    (e: unknown) => e instanceof InvalidTopicNameError,
  );
  await assert.rejects(
    client.createProducer({ topic: "persistent://public/default/has space" }),
    (e: unknown) => e instanceof InvalidTopicNameError,
  );
  await assert.rejects(
    client.createProducer({ topic: `persistent://no-such-tenant/default/${uniqueName("t")}` }),
    (e: unknown) => e instanceof PulsarError && !e.retriable,
  );
  await assert.rejects(
    client.createProducer({ topic: `persistent://public/no-such-ns/${uniqueName("t")}` }),
    (e: unknown) => e instanceof PulsarError && !e.retriable,
  );

  const producer = await client.createProducer({ topic: uniqueName("limits") });
  await assert.rejects(
    producer.send({ payload: Buffer.alloc(6 * 1024 * 1024) }),
    (e: unknown) => e instanceof MessageTooBigError,
  );
  await producer.send({ payload: Buffer.from("still usable") });
  await producer.close();
  await assert.rejects(
    producer.send({ payload: Buffer.from("late") }),
    (e: unknown) => e instanceof AlreadyClosedError,
  );
});
