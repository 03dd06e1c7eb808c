// Deduplication on the real broker: a new producer session (the broker has 0..110 of its name) writes
// 111..120 in a batch that the network loses, they time out, and the replay sends 90..125 again. The
// potential duplicates (below the next id, 121) go on the wire one by one: 90..110 come back as duplicates,
// proven stored, and 111..125 are stored. Batched together, 90..120 would be judged by 90 and dropped whole,
// 111..120 with them. Read back with our consumer and the official pulsar-client tool. The producer reaches the shared
// broker through a TCP proxy the test cuts (the lookup's answer is pointed at the proxy).
import assert from "node:assert/strict";
import { test } from "node:test";
import { BuiltinClient } from "../../src/pulsar/client";
import { javaStringHash } from "../../src/pulsar/hash";
import { TimeoutError } from "../../src/pulsar/errors";
import type { SendReceipt } from "../../src/pulsar/types";
import { pulsarAdmin, pulsarUrl, runToolOk, uniqueName } from "../support/brokers";
import { freePort } from "../support/node-red-process";
import { dedupNamespace, storedPayloads, subscribeEarliest } from "../support/pulsar";
import { tcpProxy } from "../support/tcp-proxy";

test("a replay with potential duplicates after a new producer session stores the new ids, once each", async (t) => {
  const ns = await dedupNamespace("dedup");
  t.after(() => pulsarAdmin("DELETE", `/admin/v2/namespaces/public/${ns}?force=true`).catch(() => undefined));
  const topic = `persistent://public/${ns}/replayed`;
  const producerName = uniqueName("dedup-producer");
  const send = (p: { send(m: { payload: Buffer; sequenceId: number }): Promise<SendReceipt> }, seq: number) =>
    p.send({ payload: Buffer.from(`m${seq}`), sequenceId: seq });
  const ids = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

  // the producer's first session: 0..110 stored
  const direct = new BuiltinClient({ serviceUrl: pulsarUrl });
  try {
    const first = await direct.createProducer({ topic, producerName, batchingMaxPublishDelayMs: 5 });
    const receipts = await Promise.all(ids(0, 110).map((seq) => send(first, seq)));
    assert.ok(receipts.every((r) => !r.duplicate));
    await first.close();
  } finally {
    await direct.close();
  }

  const broker = new URL(pulsarUrl.replace(/^pulsar:/, "http:"));
  const proxy = await tcpProxy(
    { host: "127.0.0.1", port: await freePort() },
    { host: broker.hostname, port: Number(broker.port) },
  );
  t.after(() => proxy.close());
  const client = new BuiltinClient({ serviceUrl: pulsarUrl, initialBackoffMs: 100, maxBackoffMs: 500 });
  t.after(() => client.close());
  const lookup = client.lookup.bind(client);
  client.lookup = async (name) => ({
    ...(await lookup(name)),
    physical: { host: proxy.host, port: proxy.port },
  });

  const producer = await client.createProducer({
    topic,
    producerName,
    batchingMaxPublishDelayMs: 5,
    sendTimeoutMs: 2000,
  });
  assert.equal(producer.lastSequenceId, 110);
  // 111..120 go into a connection that passes nothing on, then breaks: the broker never gets them
  proxy.cut();
  const lost = ids(111, 120).map((seq) => send(producer, seq));
  await new Promise((r) => setTimeout(r, 200));
  proxy.cut({ reset: true });
  for (const r of lost) await assert.rejects(r, TimeoutError);
  proxy.heal();

  // the replay from 90: the next id is 121, so 90..120 are potential duplicates
  const replay = await Promise.all(ids(90, 125).map((seq) => send(producer, seq)));
  await producer.close();
  assert.deepEqual(
    replay.map((r) => `${r.sequenceId}:${r.duplicate}:${r.duplicateProven}`),
    [...ids(90, 110).map((seq) => `${seq}:true:true`), ...ids(111, 125).map((seq) => `${seq}:false:false`)],
  );

  // everything stored, each once: all of the topic through our consumer (it stops when nothing more comes)
  assert.deepEqual(
    await storedPayloads(client, topic),
    ids(0, 125).map((seq) => `m${seq}`),
  );
  // and the official tool reads the same
  const subscription = uniqueName("check");
  await subscribeEarliest(topic, subscription);
  const consumed = await runToolOk("pulsar-client", ["consume", "-s", subscription, "-n", "126", topic]);
  const contents = [...consumed.stdout.matchAll(/content:(m\d+)/g)].map((m) => m[1]);
  assert.deepEqual(
    contents,
    ids(0, 125).map((seq) => `m${seq}`),
  );
});

test("a named producer on a topic given more partitions starts new sequences: a record never stored is stored, not taken for a duplicate of another key's higher id", async (t) => {
  const ns = await dedupNamespace("dedup-parts");
  t.after(() => pulsarAdmin("DELETE", `/admin/v2/namespaces/public/${ns}?force=true`).catch(() => undefined));
  const topic = `persistent://public/${ns}/grown`;
  assert.equal(
    (await pulsarAdmin("PUT", `/admin/v2/persistent/public/${ns}/grown/partitions`, 2)).status,
    204,
  );
  // kA: partition 0 of 2, partition 1 of 3; kB: partition 1 of both
  const keyWith = (of2: number, of3: number) => {
    for (let i = 0; ; i++) {
      const h = javaStringHash(`k${i}`);
      if (h % 2 === of2 && h % 3 === of3) return `k${i}`;
    }
  };
  const kA = keyWith(0, 1);
  const kB = keyWith(1, 1);
  const producerName = uniqueName("grown-producer");
  const options = { topic, producerName, nameCarriesPartitionCount: true, partitionsUpdateIntervalMs: 0 };
  const client = new BuiltinClient({ serviceUrl: pulsarUrl });
  t.after(() => client.close());

  // with 2 partitions, offset 10 (key kB) is stored on partition 1; offset 5 (key kA, partition 0) is not
  // stored (say the process died before its retry)
  const before = await client.createProducer(options);
  const r10 = await before.send({ payload: Buffer.from("m10"), key: kB, sequenceId: 10 });
  assert.equal(r10.duplicate, false);
  assert.equal(r10.producerName, `${producerName}-2p`);
  assert.match(r10.topic, /-partition-1$/);
  await before.close();

  // the topic gets a third partition; the record is delivered again, and kA now routes to partition 1,
  // where the old name's last id is 10
  assert.equal(
    (await pulsarAdmin("POST", `/admin/v2/persistent/public/${ns}/grown/partitions`, 3)).status,
    204,
  );
  const after = await client.createProducer(options);
  assert.deepEqual(after.lastSequenceIds, [-1, -1, -1], "new sequences on every partition");
  const r5 = await after.send({ payload: Buffer.from("m5"), key: kA, sequenceId: 5 });
  assert.match(r5.topic, /-partition-1$/);
  assert.equal(r5.producerName, `${producerName}-3p`);
  assert.equal(r5.duplicate, false, "stored, not dropped as a duplicate of offset 10");
  await after.close();

  // the official tool reads both
  const subscription = uniqueName("check");
  await subscribeEarliest(topic, subscription);
  const consumed = await runToolOk("pulsar-client", ["consume", "-s", subscription, "-n", "2", topic]);
  const contents = [...consumed.stdout.matchAll(/content:(m\d+)/g)].map((m) => m[1]).sort();
  assert.deepEqual(contents, ["m10", "m5"]);
});

test("issue 13 audit L2: an id the broker passed as a duplicate without storing it stays unproven for the next producer of the name on the client (a redeploy), whose broker's last id is above it", async (t) => {
  const ns = await dedupNamespace("dedup-hole");
  t.after(() => pulsarAdmin("DELETE", `/admin/v2/namespaces/public/${ns}?force=true`).catch(() => undefined));
  const topic = `persistent://public/${ns}/holed`;
  const producerName = uniqueName("dedup-hole");
  const send = (p: { send(m: { payload: Buffer; sequenceId: number }): Promise<SendReceipt> }, seq: number) =>
    p.send({ payload: Buffer.from(`m${seq}`), sequenceId: seq });
  const client = new BuiltinClient({ serviceUrl: pulsarUrl });
  t.after(() => client.close());
  const first = await client.createProducer({ topic, producerName, batchingMaxPublishDelayMs: 0 });
  for (const seq of [0, 1, 2, 5]) assert.equal((await send(first, seq)).duplicate, false);
  // 3 comes after 5 was stored: the broker passes it without storing it
  const hole = await send(first, 3);
  assert.deepEqual([hole.duplicate, hole.duplicateProven], [true, false]);
  assert.deepEqual([(await send(first, 2)).duplicateProven], [true], "2 was stored by this producer");
  await first.close();

  // the same name again on this client (pulsar-out redeployed): the broker's last id is 5
  const second = await client.createProducer({ topic, producerName, batchingMaxPublishDelayMs: 0 });
  assert.equal(second.lastSequenceId, 5);
  const again = await send(second, 3);
  assert.deepEqual([again.duplicate, again.duplicateProven], [true, false], "still not taken for stored");
  const before = await send(second, 1);
  assert.deepEqual([before.duplicate, before.duplicateProven], [true, true], "stored before: proven");
  await second.close();

  // and indeed the topic has no m3 (the official tool reads it)
  const subscription = uniqueName("check");
  await subscribeEarliest(topic, subscription);
  const consumed = await runToolOk("pulsar-client", ["consume", "-s", subscription, "-n", "4", topic]);
  assert.deepEqual(
    [...consumed.stdout.matchAll(/content:(m\d+)/g)].map((m) => m[1]),
    ["m0", "m1", "m2", "m5"],
  );
});
